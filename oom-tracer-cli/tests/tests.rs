//! System tests of the `oom-tracer` binary.

mod cli;
