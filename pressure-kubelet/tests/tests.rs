//! pressure-kubelet against the fake API server (faults) and a real one (pressure-testkit's control
//! plane).

mod api;
mod chaos;
mod in_cluster;
mod mark_queue;
mod poller;
mod probes;
mod real_apiserver;
