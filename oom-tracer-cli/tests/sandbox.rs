//! `oom-tracer` run the way its chart's security context runs it, in its own PID, cgroup and mount
//! namespaces: uid 0 with every capability dropped but the chart's (`CAP_BPF`, `CAP_PERFMON`,
//! `CAP_SYSLOG`, read by [`ChartSecurity::oom_tracer`] from the chart's values), `no_new_privs`,
//! the host's cgroupfs read-only. Real memcg OOM kills in kubelet-shaped cgroups of both drivers'
//! layouts must each still map to their pod and container, from the BPF source, with the kernel
//! log readable.
//!
//! Needs root, BTF, the v1 memory hierarchy, `unshare` and `setpriv`: skipped with a message
//! otherwise, failed under `CI=true`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pressure_testkit::{
    Capability, ChartSecurity, Hog, HogExit, HogSpec, KubeletV1Pod, require_all, require_v1_memcg,
};

/// The `unshare` wrapper; SIGKILL on drop (its `--kill-child` takes `oom-tracer` along).
struct Sandboxed(Child);

impl Drop for Sandboxed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text
}

#[test]
fn with_only_the_charts_capabilities_in_its_own_pid_namespace_every_kill_maps_to_its_pod() {
    let test =
        "with_only_the_charts_capabilities_in_its_own_pid_namespace_every_kill_maps_to_its_pod";
    let Some(root) = require_v1_memcg(test) else {
        return;
    };
    let tools = [
        Capability::Bpf,
        Capability::Program {
            name: "unshare",
            install: "Debian util-linux",
        },
        Capability::Program {
            name: "setpriv",
            install: "Debian util-linux",
        },
    ];
    if !require_all(test, &tools) {
        return;
    }
    let chart = ChartSecurity::oom_tracer();
    // As root in the new mount namespace: cgroup mounts read-only (as the chart's hostPath mount),
    // then drop to the chart's security context.
    let script = r#"set -e
mount --make-rprivate /
for m in /sys/fs/cgroup /sys/fs/cgroup/*; do
  if mountpoint -q "$m"; then mount -o remount,bind,ro "$m"; fi
done
exec setpriv "$@""#;
    let mut child = Command::new("unshare")
        .args(["--pid", "--cgroup", "--mount", "--fork", "--kill-child"])
        .args(["--mount-proc", "--", "sh", "-c", script, "sh"])
        .args(chart.setpriv_args())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_oom-tracer"))
        .args(["--no-kubernetes", "--metrics_bind_address", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oom-tracer");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let unshare = child.id();
    let _tracer = Sandboxed(child);

    let (port_tx, port_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("oom-tracer: {line}");
            if let Some(p) = line.split("address=127.0.0.1:").nth(1) {
                let _ = port_tx.send(p.trim().parse::<u16>().unwrap_or(0));
            }
        }
    });
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("metrics endpoint address in the log");

    // It runs as the chart says: the sole child of unshare, PID 1 of its namespace.
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
        .expect("children of unshare");
    let inner = children.split_whitespace().next().expect("oom-tracer");
    let status = std::fs::read_to_string(format!("/proc/{inner}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name}:\n{status}"))
            .to_owned()
    };
    assert_eq!(field("CapEff:"), format!("{:016x}", chart.effective_mask()));
    assert_eq!(field("CapBnd:"), format!("{:016x}", chart.bounding_mask()));
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("NSpid:").split_whitespace().last(), Some("1"));
    let uid = chart.uid;
    assert_eq!(field("Uid:"), format!("{uid}\t{uid}\t{uid}\t{uid}"));

    let pods = [
        KubeletV1Pod::create(&root, "burstable", 32 << 20).expect("cgroupfs pod"),
        KubeletV1Pod::create_systemd(&root, "", 32 << 20).expect("systemd pod"),
    ];
    for pod in &pods {
        let mut hog = Hog::spawn_in(&pod.procs(), HogSpec::four_mib_per_100ms()).expect("hog");
        let pid = hog.pid();
        assert_eq!(
            hog.wait_timeout(Duration::from_secs(60)).expect("wait"),
            Some(HogExit::Signaled(9)),
            "the kernel killed the hog"
        );
        let kill = loop {
            let line = line_rx
                .recv_timeout(Duration::from_secs(15))
                .expect("a JSON line for the kill");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            if v["pid"] == pid {
                break v;
            }
        };
        eprintln!("kill: {kill}");
        assert_eq!(kill["kind"], "memcg", "{kill}");
        assert_eq!(kill["pod_uid"], pod.pod_uid.as_str(), "{kill}");
        assert_eq!(kill["container_id"], pod.container_id.as_str(), "{kill}");
        assert_eq!(kill["source"], "bpf", "{kill}");
    }
    let metrics = get(port, "/metrics");
    // The kernel log is readable (CAP_SYSLOG) next to the BPF source.
    let want = "oom_tracer_source_info{bpf=\"tp_btf\",kmsg=\"true\"} 1";
    assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    // Other tests on this machine kill too: at least ours were counted.
    let kills: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("oom_tracer_kills_total{kind=\"memcg\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no memcg kill count in\n{metrics}"));
    assert!(kills >= 2, "{kills} memcg kills counted");
}
