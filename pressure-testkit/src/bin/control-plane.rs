//! `control-plane`: starts a real etcd + kube-apiserver (building them first if needed), prints the
//! admin kubeconfig path, and stays up until Ctrl-C (or stdin closes, for scripts).

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use pressure_testkit::{ContainerUsage, ControlPlane, KubeletStandIn};
use serde_json::{Value, json};

/// A real Kubernetes API server on 127.0.0.1 with RBAC on, for trying `pressured` and `oom-tracer`
/// by hand and for benchmarks. Everything (certificates, etcd data, logs) lives in one temporary
/// directory removed on exit.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Register this many Nodes (`node-N`), each with a kubelet stand-in serving the Summary API.
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Create this many running pods (`pod-N-M` in namespace `ns-M % 10`, 256Mi limit) per node,
    /// reported by its kubelet stand-in with a 64 MiB working set.
    #[arg(long, default_value_t = 0)]
    pods_per_node: usize,
    /// Apply this chart's RBAC (`--chart-values` JSON) as release `bench` in namespace `bench` and
    /// write a kubeconfig for its ServiceAccount to `<dir>/sa.kubeconfig`.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Helm values (JSON) for `--chart`.
    #[arg(long, default_value = "{}")]
    chart_values: String,
    /// Requests in flight while creating the pods (each pod is a create and a status patch).
    #[arg(long, default_value_t = 16)]
    create_parallelism: usize,
    /// Exit when standard input closes (for scripts), not only on Ctrl-C.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn pod(ns: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1",
            "resources": {"limits": {"memory": "256Mi"}}}]},
    })
}

/// Creates the pods of every node, `parallelism` requests at a time (one connection each: the API
/// server's CPU, not this client, is the limit once both cores are busy).
fn populate(
    cp: &ControlPlane,
    kubelets: &[KubeletStandIn],
    per_node: usize,
    parallelism: usize,
) -> anyhow::Result<()> {
    for i in 0..10 {
        let ns = format!("ns-{i}");
        cp.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    let work: Vec<(usize, usize)> = (0..kubelets.len())
        .flat_map(|n| (0..per_node).map(move |m| (n, m)))
        .collect();
    let work = Arc::new(std::sync::Mutex::new(work));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..parallelism.max(1))
            .map(|_| {
                let work = work.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    loop {
                        let Some((n, m)) = work.lock().ok().and_then(|mut w| w.pop()) else {
                            return Ok(());
                        };
                        let k = &kubelets[n];
                        let ns = format!("ns-{}", m % 10);
                        let name = format!("pod-{n}-{m}");
                        cp.create(&format!("/api/v1/namespaces/{ns}/pods"), &pod(&ns, &name, k.name()))?;
                        let running = cp.merge_patch(
                            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
                            &json!({"status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", n / 250, n % 250, m % 250 + 1),
                                "containerStatuses": [{"name": "app", "image": "app:1", "imageID": "", "ready": true,
                                "restartCount": 0, "containerID": format!("containerd://{:064x}", n * 100_000 + m),
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}),
                        )?;
                        k.set_pod(&running, &[Some(ContainerUsage::working_set(64 << 20))]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("populate thread panicked"))??;
        }
        Ok(())
    })
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
    if args.pods_per_node > 0 {
        let started = std::time::Instant::now();
        populate(&cp, &kubelets, args.pods_per_node, args.create_parallelism)
            .context("creating pods")?;
        eprintln!(
            "created {} pods in {:.1} s",
            kubelets.len() * args.pods_per_node,
            started.elapsed().as_secs_f64()
        );
    }
    println!("server:     {}", cp.server());
    println!("kubeconfig: {}", cp.admin_kubeconfig().display());
    println!("logs:       {}", cp.dir().display());
    if let Some(pid) = cp.apiserver_pid() {
        println!("apiserver pid: {pid}");
    }
    if let Some(chart) = &args.chart {
        let values: Value = serde_json::from_str(&args.chart_values).context("--chart-values")?;
        cp.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
        )?;
        let rbac = cp.apply_chart_rbac(chart, "bench", "bench", &values)?;
        let sa = ControlPlane::chart_service_account(&rbac)
            .context("the chart renders no ServiceAccount")?;
        let kc = cp.service_account_kubeconfig("bench", &sa)?;
        println!("sa kubeconfig: {}", kc.display());
    }
    for k in kubelets.iter().take(5) {
        println!("node {} -> kubelet stand-in at {}", k.name(), k.addr());
    }
    println!(
        "try: kubectl --kubeconfig {} get nodes   (Ctrl-C stops it)",
        cp.admin_kubeconfig().display()
    );
    println!("ready");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.exit_on_stdin_eof {
        // A plain thread: a blocked stdin read must not hold up the runtime's shutdown.
        let (tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            let _ = tx.send(());
        });
        rt.block_on(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = stdin_closed => {}
            }
        });
    } else {
        rt.block_on(tokio::signal::ctrl_c())?;
    }
    drop(kubelets);
    cp.stop();
    Ok(())
}
