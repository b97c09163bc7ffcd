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
                reqwest::Client::builder()
                    .user_agent(concat!("pressured/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

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
