//! Integration tests of the fake API server (driving the real `kubectl` against it), of the real
//! control plane, and of the prediction benchmark on the recorded corpus.

mod control_plane;
mod kubectl;
mod prediction;
mod raw;
mod util;
