//! Integration tests of pressure-core: the engine's behaviour and its invariants.

mod engine;
mod properties;
mod util;
