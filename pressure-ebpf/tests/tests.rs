//! Integration and system tests of pressure-ebpf (one binary).

mod layout;
mod replay;
mod system;
