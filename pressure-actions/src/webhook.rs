//! The `webhook` action: POSTs the event JSON to a URL with retries and exponential backoff.

use std::time::Duration;

use futures::future::BoxFuture;
use pressure_core::Event;

use crate::ActionsError;
use crate::action::{Action, ActionContext};
use crate::exec::matches;

/// `actions.webhook[].timeout_ms` default.
const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// `actions.webhook[].retries` default.
const DEFAULT_RETRIES: u32 = 3;
/// First backoff; doubled per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One `actions.webhook[]` entry.
#[derive(Debug)]
pub(crate) struct WebhookAction {
    config: crate::config::WebhookAction,
    /// Built on the first call, as for heap capture: building a client loads the system's CA
    /// certificates, and a system without them must fail the webhook, not the start-up.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl WebhookAction {
    pub(crate) fn new(config: crate::config::WebhookAction) -> Self {
        WebhookAction {
            config,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The HTTP client, or why it could not be built.
    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| {
                crate::tls::install_ring();
                reqwest::Client::builder()
                    .user_agent(concat!("pressured/", env!("CARGO_PKG_VERSION")))
                    .redirect(redirect_policy())
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Redirects a webhook follows: at most [`MAX_REDIRECTS`], only 307/308 (which keep the method and the
/// body) and only on the same origin (scheme, host, port), because the event and the custom headers
/// (`X-Api-Key`, …) must not reach another host. A 301/302/303 would turn the POST into a body-less GET
/// that is then "sent"; all of these fail the webhook instead (issue 16).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let status = attempt.status().as_u16();
        if !matches!(status, 307 | 308) {
            let message =
                format!("refused a {status} redirect: it would change the POST into a GET");
            return attempt.error(message);
        }
        let first = &attempt.previous()[0];
        let to = attempt.url();
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
            )
        };
        if origin(first) != origin(to) {
            let message = format!(
                "refused a redirect to another host ({}): the event and headers stay with {}",
                to.origin().ascii_serialization(),
                first.origin().ascii_serialization()
            );
            return attempt.error(message);
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        attempt.follow()
    })
}

/// Redirects followed per attempt.
const MAX_REDIRECTS: usize = 5;

impl Action for WebhookAction {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            let c = &self.config;
            if !matches(&c.events, event) {
                return Ok(());
            }
            if ctx.dry_run() {
                tracing::info!(url = %c.url, "dry run: webhook not sent");
                return Ok(());
            }
            let client = self.client().map_err(|e| ActionsError::Webhook {
                url: c.url.clone(),
                message: e.to_owned(),
            })?;
            let timeout = Duration::from_millis(c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
            let retries = c.retries.unwrap_or(DEFAULT_RETRIES);
            let body = event.to_json_line();
            let mut backoff = FIRST_BACKOFF;
            let mut last = String::new();
            let mut attempts = 0;
            for attempt in 0..=retries {
                attempts += 1;
                if attempt > 0 {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                let mut req = client
                    .post(&c.url)
                    .timeout(timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                for (k, v) in &c.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        tracing::info!(url = %c.url, status = resp.status().as_u16(), attempt, "webhook sent");
                        return Ok(());
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        last = format!("HTTP {}", status.as_u16());
                        // Client errors other than 408/429 will not change on retry.
                        if status.is_client_error()
                            && status != reqwest::StatusCode::REQUEST_TIMEOUT
                            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                        {
                            break;
                        }
                    }
                    Err(e) if e.is_redirect() => {
                        // A refused redirect is a configuration problem; retrying cannot change it.
                        last = std::error::Error::source(&e)
                            .map_or_else(|| e.to_string(), ToString::to_string);
                        break;
                    }
                    Err(e) => {
                        last = if e.is_timeout() {
                            format!("timed out after {} ms", timeout.as_millis())
                        } else {
                            e.to_string()
                        };
                    }
                }
                tracing::warn!(url = %c.url, attempt, "webhook attempt failed: {last}");
            }
            Err(ActionsError::Webhook {
                url: c.url.clone(),
                message: format!("{last} (after {attempts} attempt(s))"),
            })
        })
    }
}
