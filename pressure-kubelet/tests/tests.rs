//! pressure-kubelet against the fake API server.

mod api;
mod poller;
mod probes;
