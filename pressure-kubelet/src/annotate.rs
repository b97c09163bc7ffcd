//! Annotating pods: a JSON merge patch `{"metadata":{"annotations":{KEY:VALUE}}}`, sent only when
//! the key is absent, retried with backoff on 409, 429, 5xx and transport errors. A 429 whose Status
//! asks for a wait (`details.retryAfterSeconds`, what kube-apiserver sends) is returned at once as
//! [`KubeletError::TooManyRequests`], so the caller waits that long instead of this short backoff.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::KubeletError;
use crate::error::retryable;
use crate::slim::SlimPod;

/// What [`Annotator::annotate_if_absent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnotateOutcome {
    /// The annotation was added.
    Annotated {
        /// Attempts it took (1 = first try).
        attempts: u32,
    },
    /// The key was already there (possibly set by a concurrent writer); nothing was changed.
    AlreadyPresent,
    /// The pod does not exist (any more).
    PodNotFound,
}

/// Exponential backoff: `initial`, doubling up to `max`, at most `attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts in total.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
            attempts: 8,
        }
    }
}

impl Backoff {
    /// Delay after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(self.max)
    }
}

/// Adds annotations to pods.
#[derive(Clone)]
pub struct Annotator {
    client: Client,
    backoff: Backoff,
    field_manager: String,
}

impl std::fmt::Debug for Annotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotator")
            .field("backoff", &self.backoff)
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl Annotator {
    /// An annotator writing as `field_manager` (e.g. `oom-tracer`).
    pub fn new(client: Client, field_manager: &str) -> Self {
        Self {
            client,
            backoff: Backoff::default(),
            field_manager: field_manager.to_owned(),
        }
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets `key: value` on pod `namespace/name` unless `key` is present. The patch carries the
    /// resourceVersion just read, so a concurrent change gives 409 and the check is repeated.
    pub async fn annotate_if_absent(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<AnnotateOutcome, KubeletError> {
        // The patch's answer is decoded as a `SlimPod`, not a whole `Pod` (see `SlimPod`).
        let api: Api<SlimPod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("annotating pod {namespace}/{name} with {key}");
        let mut last = String::new();
        for attempt in 1..=self.backoff.attempts {
            if attempt > 1 {
                tokio::time::sleep(self.backoff.delay(attempt - 1)).await;
            }
            let meta = match api.get_metadata_opt(name).await {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(AnnotateOutcome::PodNotFound),
                Err(e) => {
                    if let Some(wait) = retry_after(&e) {
                        return Err(KubeletError::TooManyRequests {
                            what,
                            retry_after: Some(wait),
                        });
                    }
                    if retryable(&e) {
                        last = e.to_string();
                        continue;
                    }
                    return Err(KubeletError::api(what, e));
                }
            };
            if meta
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(key))
            {
                return Ok(AnnotateOutcome::AlreadyPresent);
            }
            let patch = json!({"metadata": {"annotations": {key: value}, "resourceVersion": meta.metadata.resource_version}});
            match api
                .patch(
                    name,
                    &PatchParams {
                        field_manager: Some(self.field_manager.clone()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return Ok(AnnotateOutcome::Annotated { attempts: attempt }),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Ok(AnnotateOutcome::PodNotFound);
                }
                Err(e) => {
                    if let Some(wait) = retry_after(&e) {
                        return Err(KubeletError::TooManyRequests {
                            what,
                            retry_after: Some(wait),
                        });
                    }
                    if !retryable(&e) {
                        return Err(KubeletError::api(what, e));
                    }
                    last = e.to_string();
                }
            }
        }
        Err(KubeletError::GaveUp {
            what,
            attempts: self.backoff.attempts,
            last,
        })
    }
}

/// The wait a 429 asks for in its Status (`details.retryAfterSeconds`), when more than 0.
fn retry_after(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) if s.code == 429 => s
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|&n| n > 0)
            .map(|n| Duration::from_secs(n.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(50));
        assert_eq!(b.delay(2), Duration::from_millis(100));
        assert_eq!(b.delay(6), Duration::from_millis(1600));
        assert_eq!(b.delay(7), Duration::from_secs(2));
        assert_eq!(b.delay(40), Duration::from_secs(2));
    }
}
