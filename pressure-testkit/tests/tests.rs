//! Integration tests of the fake API server, driving the real `kubectl` against it.

mod kubectl;
mod raw;
mod util;
