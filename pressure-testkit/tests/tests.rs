//! Integration tests of the fake API server, driving the real `kubectl` against it, and of the
//! prediction benchmark on the recorded corpus.

mod kubectl;
mod prediction;
mod raw;
mod util;
