//! Kubernetes API and kubelet Summary API access for pressure.
//!
//! - [`ClientSource`] builds a kube-rs client from the in-cluster service account (the projected token
//!   and CA re-read whenever they rotate), a kubeconfig (the `kubeconfig` feature), `kubectl proxy` or a
//!   URL.
//! - [`PodCache`] keeps pods from watches scoped by [`PodScope`] (namespaces, label selector,
//!   `spec.nodeName`), indexed by pod UID and container ID, and publishes [`PodUpdate`]s. It keeps a
//!   slim [`PodInfo`] per pod (names, node, IP, annotations, per container its limit, IDs and
//!   terminations), not the API object; the watches decode pods as [`SlimPod`]s, which declare only
//!   those fields, so no code to decode a whole k8s-openapi `Pod` is linked.
//! - [`Quantity`] parses resource quantities exactly (`Ki`..`Ei`, `k`..`E`, `m`, exponents).
//! - [`SummarySource`] reads the kubelet [`Summary`] through the API server or from the kubelet and
//!   turns it into `pressure_core::Sample`s.
//! - [`OomTracker`] finds OOM kills ([`StatusOomKill`]) in pod status, each reported once.
//! - [`EventRecorder`] records `events.k8s.io/v1` Events, folding repeats into a series; [`event_spec`]
//!   words the Event of an engine event or an OOM-kill victim ([`EventSubject`]) for both binaries.
//! - [`Annotator`] adds an annotation only when absent, retrying 409/429/5xx with [`Backoff`].
//! - [`LeaderElector`] elects one leader among replicas with a `coordination.k8s.io/v1` Lease.
//! - [`ClusterPoller`] is cluster mode's loop: summaries of every node that hosts a watched pod, fed to
//!   a `pressure_core::Engine`, with optional leader election ([`PollerOptions`], [`LeaseOptions`]),
//!   until a stop future completes.
//! - [`PodDirectory`] names cgroup-derived targets (pod, container, IP, annotations) from this node's
//!   pods or the own pod, for the cgroup watch loops.
//! - [`ProbeServer`] serves `/metrics`, `/healthz`, `/readyz`; [`parse_bind_address`] reads its address.
//! - [`VictimMarker`] maps an OOM-kill [`Victim`] to its pod (UID, else container ID), annotates it and
//!   posts a Warning Event.
//! - [`MarkQueue`] makes every victim's mark through API outages and restarts: what fails is kept in a
//!   bounded [`PendingMarks`] queue ([`PendingOptions`]: maximum age, capacity, backoff), retried by
//!   [`MarkQueue::run`], and saved in a [`StateFile`].
//!
//! Every network call goes through a `kube::Client`, which takes any tower service: tests run against
//! `pressure_testkit::FakeApiServer`.
#![deny(missing_docs)]

mod annotate;
mod client;
mod directory;
mod error;
mod events;
mod lease;
mod mark_queue;
mod oom;
mod pending;
mod pods;
mod poller;
mod probes;
mod quantity;
mod slim;
mod summary;
mod tls;
mod victim;

pub use annotate::{AnnotateOutcome, Annotator, Backoff};
pub use client::{ClientSource, SERVICE_ACCOUNT_DIR};
pub use directory::PodDirectory;
pub use error::KubeletError;
pub use events::{EventKind, EventRecorder, EventSpec, EventSubject, Recorded, event_spec};
pub use lease::LeaderElector;
pub use mark_queue::{Clock, MarkQueue, MarkQueueStats, SystemClock};
pub use oom::{OomTracker, StatusOomKill};
pub use pending::{
    DropReason, MAX_PENDING_CAPACITY, MAX_STATE_FILE_BYTES, MarkTarget, PendingEvent, PendingMark,
    PendingMarks, PendingOptions, StateFile, unix_ms,
};
pub use pods::{
    ContainerInfo, PodCache, PodInfo, PodScope, PodUpdate, Termination, bare_container_id,
    container_ids, current_container_id, memory_limit, target_for,
};
pub use poller::{ClusterPoller, LeaseOptions, MAX_IN_FLIGHT, PollerOptions, SUMMARY_TIMEOUT};
pub use probes::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, ProbeServer, parse_bind_address};
pub use quantity::{Quantity, parse_bytes};
pub use slim::SlimPod;
pub use summary::{
    ContainerStats, MAX_SUMMARY_BYTES, NodeStats, PodReference, PodStats, PsiData, PsiStats,
    Summary, SummaryMemory, SummarySource,
};
pub use victim::{Victim, VictimMarker, VictimOutcome};

/// Re-exported so callers name the same types.
pub use k8s_openapi;
/// Re-exported so callers name the same types.
pub use kube;
