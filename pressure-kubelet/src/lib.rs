//! Kubernetes API and kubelet Summary API access for pressure: pod caches, quantities, OOMKilled detection, annotations and Events.
#![deny(missing_docs)]
