//! System tests of the `oom-tracer` binary.

mod chaos;
mod cli;
mod k8s_real_apiserver;
mod sandbox;
