//! Integration tests of the fake API server (driving the real `kubectl` against it) and of the real
//! control plane.

mod control_plane;
mod kubectl;
mod raw;
mod util;
