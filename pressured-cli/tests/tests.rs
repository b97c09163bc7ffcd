//! Tests that run the real `pressured` binary.

mod cli;
mod system_cgroup;
