//! Turns a kubelet Summary into per-container memory samples, the way `pressured` does.
//!
//! ```text
//! # from a file (e.g. `kubectl get --raw /api/v1/nodes/$NODE/proxy/stats/summary > s.json`)
//! cargo run -p pressure-kubelet --example summary -- pressure-kubelet/testdata/stats_summary_1_35.json
//! # live, through the API server (needs `nodes/proxy` get); `-` uses $KUBECONFIG or ~/.kube/config
//! cargo run -p pressure-kubelet --example summary -- --kubeconfig - NODE
//! ```
//!
//! It also shows [`Quantity`]: resource quantities parsed exactly, as the kubelet reads them.

use std::error::Error;
use std::path::PathBuf;
use std::time::SystemTime;

use pressure_kubelet::{ClientSource, Quantity, Summary, SummarySource, parse_bytes};

const USAGE: &str = "usage: summary SUMMARY.json | summary --kubeconfig PATH|- NODE";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    for text in ["128Mi", "1.5Gi", "500M", "1e3", "250m"] {
        let q: Quantity = text.parse()?;
        match parse_bytes(text) {
            Ok(bytes) => println!("{text:>6} = {q} = {bytes} bytes"),
            Err(e) => println!("{text:>6} = {q} ({e})"),
        }
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let summary = match args.as_slice() {
        [file] => Summary::parse(file, &std::fs::read_to_string(file)?)?,
        [flag, kubeconfig, node] if flag == "--kubeconfig" => {
            let source = ClientSource::Kubeconfig {
                path: (kubeconfig != "-").then(|| PathBuf::from(kubeconfig)),
                context: None,
            };
            SummarySource::ApiProxy(source.connect().await?)
                .fetch(node)
                .await?
        }
        _ => return Err(USAGE.into()),
    };

    // Without a pod cache (`|_| None`) the summary's own names are used and the limit is inferred
    // from `availableBytes + workingSetBytes`.
    let samples = summary.samples(SystemTime::now(), |_| None);
    println!(
        "node {}: {} containers",
        summary.node.node_name,
        samples.len()
    );
    for s in samples {
        let name = format!(
            "{}/{}/{}",
            s.target.namespace.as_deref().unwrap_or("?"),
            s.target.pod_name.as_deref().unwrap_or("?"),
            s.target.container_name.as_deref().unwrap_or("?"),
        );
        let limit = s
            .reading
            .limit_bytes
            .map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
        println!(
            "{name:60} working set {:>12} limit {limit:>12}",
            s.reading.working_set_bytes
        );
    }
    Ok(())
}
