//! Integration tests of pressure-pprof, in one binary.

mod api;
mod encode;
mod golden;
mod hostile;
mod synthetic;
