//! `control-plane`: starts a real etcd + kube-apiserver (building them first if needed), prints the
//! admin kubeconfig path, and stays up until Ctrl-C.

use anyhow::Context as _;
use clap::Parser;
use pressure_testkit::ControlPlane;

/// A real Kubernetes API server on 127.0.0.1 with RBAC on, for trying `pressured` and `oom-tracer`
/// by hand. Everything (certificates, etcd data, logs) lives in one temporary directory removed on exit.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Register this many Nodes (`node-N`), each with a kubelet stand-in serving the Summary API.
    #[arg(long, default_value_t = 0)]
    nodes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if ControlPlane::binaries().is_err() {
        eprintln!(
            "building kube-apiserver and etcd with {} (about 5 min the first time)",
            ControlPlane::build_script().display()
        );
        ControlPlane::build().context("building the control plane")?;
    }
    let cp = ControlPlane::start().context("starting the control plane")?;
    let kubelets = (0..args.nodes)
        .map(|i| cp.kubelet(&format!("node-{i}")))
        .collect::<Result<Vec<_>, _>>()
        .context("registering nodes")?;
    println!("server:     {}", cp.server());
    println!("kubeconfig: {}", cp.admin_kubeconfig().display());
    println!("logs:       {}", cp.dir().display());
    for k in &kubelets {
        println!("node {} -> kubelet stand-in at {}", k.name(), k.addr());
    }
    println!(
        "try: kubectl --kubeconfig {} get nodes   (Ctrl-C stops it)",
        cp.admin_kubeconfig().display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    drop(kubelets);
    cp.stop();
    Ok(())
}
