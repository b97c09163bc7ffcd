//! `fake-apiserver`: runs the fake Kubernetes API server until interrupted and prints its URL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use pressure_testkit::{FakeApiServer, Fault, FaultRule, Options, World};

/// A fake Kubernetes API server for tests and benchmarks.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// YAML or JSON file with Nodes and Pods (a List, an array or YAML documents); repeatable.
    #[arg(long)]
    world: Vec<PathBuf>,
    /// Add this many synthetic nodes (`node-N`).
    #[arg(long, default_value_t = 0)]
    synthetic_nodes: usize,
    /// Running pods per synthetic node.
    #[arg(long, default_value_t = 0)]
    synthetic_pods_per_node: usize,
    /// Serve HTTPS with a fresh self-signed CA.
    #[arg(long)]
    tls: bool,
    /// Require this bearer token.
    #[arg(long)]
    token: Option<String>,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Write a kubeconfig (and ca.crt) into this directory.
    #[arg(long)]
    kubeconfig_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut world = World::synthetic(args.synthetic_nodes, args.synthetic_pods_per_node);
    for path in &args.world {
        world.extend(World::from_path(path)?);
    }
    let options = Options {
        listen: args.listen,
        tls: args.tls,
        token: args.token,
        ..Options::default()
    };
    let server = FakeApiServer::start_with(world, options).await?;
    if args.latency_ms > 0 {
        server.add_fault(FaultRule::new(Fault::Latency(Duration::from_millis(
            args.latency_ms,
        ))));
    }
    if let Some(dir) = &args.kubeconfig_dir {
        let path = server
            .write_kubeconfig(dir)
            .with_context(|| format!("writing a kubeconfig into {}", dir.display()))?;
        eprintln!("kubeconfig: {}", path.display());
    }
    println!("{}", server.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
