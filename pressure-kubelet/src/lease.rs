//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several replicas acts.
//!
//! The algorithm of client-go's `leaderelection` with a Lease lock: the holder renews `renewTime` every
//! `duration / 3`; a candidate takes the Lease over once `renewTime + leaseDurationSeconds` has passed.
//! Every write carries the `resourceVersion` read, so two candidates racing for an expired Lease get one
//! success and one 409 conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

use crate::error::KubeletError;

/// A candidate for the leadership of one Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("duration", &self.duration)
            .finish()
    }
}

impl LeaderElector {
    /// A candidate `identity` (e.g. the pod name) for Lease `namespace/name`, held for `duration`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    /// One round: acquires the Lease if it is free or expired, renews it if held. Returns whether this
    /// candidate now leads. A lost race (409) is `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, KubeletError> {
        let now = Timestamp::now();
        let what = || format!("lease {}", self.name);
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| KubeletError::api(what(), e))?;
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(KubeletError::api(what(), e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(seconds)) * 1000;
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|t| t.0.as_millisecond() + held_for < now.as_millisecond());
        if holder != self.identity {
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(KubeletError::api(what(), e)),
        }
    }

    /// Runs the election in the background: a round every `duration / 3`; the receiver says whether this
    /// candidate leads. An API error counts as not leading (a partitioned leader must stop before its
    /// Lease expires for the others).
    pub fn spawn(self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let period = (self.duration / 3).max(Duration::from_millis(100));
            loop {
                let leading = match self.try_acquire_or_renew().await {
                    Ok(leading) => leading,
                    Err(e) => {
                        tracing::warn!("leader election: {e}");
                        false
                    }
                };
                if *tx.borrow() != leading {
                    tracing::info!(lease = %self.name, identity = %self.identity, leading, "leadership changed");
                }
                if tx.send(leading).is_err() {
                    return;
                }
                tokio::time::sleep(period).await;
            }
        });
        rx
    }
}
