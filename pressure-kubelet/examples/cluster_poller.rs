//! Cluster mode embedded in a few lines: [`ClusterPoller`] polls the kubelet summary of every node that
//! hosts a pod (through the API server) and prints the engine's events as JSON lines, until Ctrl-C or
//! `--seconds N`.
//!
//! ```text
//! cargo run -p pressure-kubelet --example cluster_poller -- --kubeconfig FILE \
//!     [--interval-ms 1000] [--warn-percent 70] [--seconds N]
//! # against the fake API server (16 MiB of 256 MiB per container: 6 %, so warn from 5 %):
//! cargo run -p pressure-testkit --bin fake-apiserver -- --synthetic-nodes 2 \
//!     --synthetic-pods-per-node 2 --kubeconfig-dir /tmp/fake &
//! cargo run -p pressure-kubelet --example cluster_poller -- --kubeconfig /tmp/fake/kubeconfig \
//!     --warn-percent 5 --seconds 3
//! ```
//!
//! Needs `pods` `list`/`watch` and `nodes/proxy` `get`. The test `example_cluster_poller` runs [`poll`].

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pressure_core::{Config, Engine, Event};
use pressure_kubelet::{ClientSource, ClusterPoller, PollerOptions};

const USAGE: &str =
    "usage: cluster_poller --kubeconfig FILE [--interval-ms MS] [--warn-percent P] [--seconds N]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (mut kubeconfig, mut interval_ms, mut warn, mut seconds) = (None, 1000, 70.0, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value)),
            "--interval-ms" => interval_ms = value.parse()?,
            "--warn-percent" => warn = value.parse()?,
            "--seconds" => seconds = Some(value.parse()?),
            _ => return Err(USAGE.into()),
        }
    }
    let kubeconfig = kubeconfig.ok_or(USAGE)?;
    let stop = async move {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    let options = PollerOptions {
        interval: Duration::from_millis(interval_ms),
        ..PollerOptions::default()
    };
    poll(
        kubeconfig,
        warn,
        options,
        |e: &Event| println!("{}", e.to_json_line()),
        stop,
    )
    .await
}

/// Runs a [`ClusterPoller`] with the API server of `kubeconfig`, warn at `warn_percent`, until `stop`.
pub(crate) async fn poll(
    kubeconfig: PathBuf,
    warn_percent: f64,
    options: PollerOptions,
    on_event: impl FnMut(&Event),
    stop: impl Future<Output = ()>,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let source = ClientSource::Kubeconfig {
        path: Some(kubeconfig),
        context: None,
    };
    let client = source.connect().await?;
    // Summaries back off per node on a 429 rather than inside the request.
    let summaries = source.connect_without_retries().await?;
    let mut config = Config::default();
    config.thresholds.warn_percent = warn_percent;
    config.thresholds.hysteresis_percent =
        config.thresholds.hysteresis_percent.min(warn_percent / 2.0);
    config.validate()?;
    let engine = Engine::new(&config.thresholds, config.dry_run);
    ClusterPoller::new(engine, client, summaries, options)
        .run(on_event, stop)
        .await?;
    Ok(())
}
