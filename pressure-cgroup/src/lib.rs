//! Reads container memory from cgroup v1 and v2 (usage, working set, limit, OOM kills, PSI) and maps cgroup paths to Kubernetes pods and containers.
#![deny(missing_docs)]
