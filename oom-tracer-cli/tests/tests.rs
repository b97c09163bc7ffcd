//! System tests of the `oom-tracer` binary.

mod cli;
mod k8s_victim;
mod sandbox;
