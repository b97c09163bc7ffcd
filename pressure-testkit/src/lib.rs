//! Test support for pressure: fake Kubernetes API server, cgroup fixtures, memory hogs and the qemu kernel-matrix harness. Not published.
#![deny(missing_docs)]
