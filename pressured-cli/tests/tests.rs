//! Tests that run the real `pressured` binary.

mod cli;
mod k8s_cgroup_tree;
mod k8s_cluster;
mod k8s_real_apiserver;
mod lua_runaway;
mod metrics;
mod system_cgroup;
mod system_sandbox;
mod top;
mod util;
