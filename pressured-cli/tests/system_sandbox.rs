//! System tests: the real `pressured` sidecar run the way the chart runs it in a real pod, against
//! real kernel OOM kills in kubelet-shaped v1 memcgs.
//!
//! The pod gets two container cgroups: the app's (128 MiB limit, where the hog runs) and the
//! sidecar's. `pressured` joins the sidecar's cgroup, then `unshare` gives it new cgroup, PID and
//! mount namespaces (so `/proc/self/cgroup` reads `/` and it is PID 1) with the host's cgroupfs
//! remounted read-only in its mount namespace (as a read-only hostPath mount of `/sys/fs/cgroup`),
//! and `setpriv` runs it as the chart's security contexts say ([`ChartSecurity::pressured`], read
//! from the chart's values: uid/gid 65532, every capability dropped, `no_new_privs`). Layouts: kubelet's cgroupfs driver (`kubepods/burstable/pod<uid>/<id>`)
//! and systemd driver (`kubepods.slice/…/cri-containerd-<id>.scope`), with and without `POD_UID`.
//!
//! Unprivileged, v1 OOM wake-ups are refused (`cgroup.event_control` is root's, and the mount is
//! read-only): the start-up line says `oom_wakeups=false`, and `oom_killed` comes within one poll
//! interval of the kill instead.
//!
//! Needs root, the v1 memory hierarchy, `unshare` and `setpriv` (util-linux): skipped with a
//! message otherwise, failed under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pressure_testkit::{Capability, ChartSecurity, KubeletV1Pod, require_all, require_v1_memcg};

use crate::system_cgroup::{Pressured, config, config_file, hog_until_killed_and_check_within};

const LIMIT: u64 = 128 << 20;
const POLL_MS: u64 = 100;

const UNSHARE: Capability = Capability::Program {
    name: "unshare",
    install: "Debian util-linux",
};
const SETPRIV: Capability = Capability::Program {
    name: "setpriv",
    install: "Debian util-linux",
};

/// The memory root, when this machine can run these tests.
fn require(test: &str) -> Option<PathBuf> {
    let root = require_v1_memcg(test)?;
    require_all(test, &[UNSHARE, SETPRIV]).then_some(root)
}

/// Starts `pressured -c <config>` in `cgroup_dir`, in new cgroup, PID and mount namespaces with
/// `/sys/fs/cgroup` read-only, as uid 65532 without capabilities; `env` as the downward API sets it.
fn start_sandboxed(cgroup_dir: &Path, config: &str, env: &[(&str, &str)]) -> Pressured {
    let file = config_file(config);
    // The mount script runs as root in the new mount namespace (private, so nothing leaks to the
    // host): every cgroup mount becomes read-only there, then the process drops to the chart's user.
    let script = r#"set -e
mount --make-rprivate /
for m in /sys/fs/cgroup /sys/fs/cgroup/*; do
  if mountpoint -q "$m"; then mount -o remount,bind,ro "$m"; fi
done
exec setpriv "$@""#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        // Join the sidecar's cgroup first: the new cgroup namespace is rooted where the process is.
        .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
        .arg("sh")
        .arg(cgroup_dir)
        .args([
            "unshare",
            "--cgroup",
            "--pid",
            "--mount",
            "--fork",
            "--kill-child",
        ])
        .args(["--mount-proc", "--", "sh", "-c", script, "sh"])
        .args(ChartSecurity::pressured().setpriv_args())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_pressured"))
        .arg("-c")
        .arg(file.path())
        .args(["--metrics-bind-address", "127.0.0.1:0"]);
    Pressured::spawn(cmd, file, env)
}

/// The host PID of the sandboxed `pressured`: the one child of `unshare` (which ignores SIGTERM
/// while it waits, so the signal must go to `pressured` itself).
fn inner_pid(unshare: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            let pid: u32 = pid.parse().expect("a PID");
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.file_name() == Path::new(env!("CARGO_BIN_EXE_pressured")).file_name() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pressured under unshare ({unshare})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// GET /metrics of the endpoint the log announced (`serving /metrics… address=…`).
fn scrape(log: &str) -> String {
    use std::io::{Read as _, Write as _};
    let address = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("address=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"));
    let mut stream = std::net::TcpStream::connect(address).expect("connect /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// Checks that `pid` runs as the chart says (uid/gid, capabilities, `no_new_privs`) in its own PID
/// namespace (PID 1 there).
fn assert_sandboxed(pid: u32) {
    let chart = ChartSecurity::pressured();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .to_owned()
    };
    let (u, g) = (chart.uid, chart.gid);
    assert_eq!(field("Uid:"), format!("{u}\t{u}\t{u}\t{u}"));
    assert_eq!(field("Gid:"), format!("{g}\t{g}\t{g}\t{g}"));
    let groups: Vec<String> = chart.groups.iter().map(u32::to_string).collect();
    assert_eq!(field("Groups:"), groups.join(" "));
    let mask = |m: u64| format!("{m:016x}");
    assert_eq!(field("CapEff:"), mask(chart.effective_mask()));
    assert_eq!(field("CapPrm:"), mask(chart.effective_mask()));
    assert_eq!(field("CapBnd:"), mask(chart.bounding_mask()));
    assert_eq!(field("CapInh:"), mask(0));
    assert_eq!(field("CapAmb:"), mask(0));
    assert_eq!(
        field("NoNewPrivs:"),
        if chart.no_new_privs { "1" } else { "0" }
    );
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid")
        .split_whitespace()
        .collect();
    assert_eq!(nspid.last(), Some(&"1"), "PID 1 in its own PID namespace");
    assert!(nspid.len() >= 2, "{nspid:?}");
}

/// The whole run: pod (cgroupfs or systemd layout) with app and sidecar containers, the sandboxed
/// sidecar finds its pod, warns, goes critical and reports the kill within a poll interval.
fn finds_its_pod_and_reports_the_kill(test: &str, systemd: bool, with_pod_uid: bool) {
    let Some(root) = require(test) else {
        return;
    };
    let mut pod = if systemd {
        KubeletV1Pod::create_systemd(&root, "burstable", LIMIT)
    } else {
        KubeletV1Pod::create(&root, "burstable", LIMIT)
    }
    .expect("pod");
    let (_, sidecar_dir) = pod.add_container().expect("sidecar container");
    let mut env = vec![
        ("POD_NAME", "memhog-0"),
        ("POD_NAMESPACE", "system-test"),
        ("NODE_NAME", "node-a"),
    ];
    if with_pod_uid {
        env.push(("POD_UID", pod.pod_uid.as_str()));
    }
    let mut pressured = start_sandboxed(&sidecar_dir, &config("cgroup", POLL_MS), &env);
    pressured.wait_log(
        &format!("watching 3 cgroups (sidecar, pod {})", pod.pod_uid),
        Duration::from_secs(20),
    );
    let log = pressured.stderr_seen.join("\n");
    let found_by = if with_pod_uid {
        "own pod from POD_UID"
    } else {
        "own pod from the cgroup.procs listing this process"
    };
    assert!(log.contains(found_by), "{log}");
    // Told once, and the start-up line is truthful.
    assert_eq!(log.matches("OOM wake-ups refused").count(), 1, "{log}");
    let start_line = log.lines().last().expect("the start-up line");
    assert!(start_line.contains("oom_wakeups=false"), "{start_line}");
    let metrics = scrape(&log);
    assert!(
        metrics.lines().any(|l| l == "pressured_oom_wakeups 0"),
        "{metrics}"
    );
    let pid = inner_pid(pressured.child_id());
    pressured.term_pid = Some(pid);
    assert_sandboxed(pid);
    // No wake-up: the kill is seen at the next tick (plus scheduling slack on a busy machine).
    hog_until_killed_and_check_within(&mut pressured, &pod, POLL_MS as f64 + 400.0);
    assert_eq!(
        pressured
            .stderr_seen
            .join("\n")
            .matches("OOM wake-ups refused")
            .count(),
        1,
        "said once"
    );
    let status = pressured.terminate().expect("pressured stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    pod.remove();
}

#[test]
fn sandboxed_sidecar_cgroupfs_layout_without_pod_uid() {
    finds_its_pod_and_reports_the_kill(
        "sandboxed_sidecar_cgroupfs_layout_without_pod_uid",
        false,
        false,
    );
}

#[test]
fn sandboxed_sidecar_cgroupfs_layout_with_pod_uid() {
    finds_its_pod_and_reports_the_kill(
        "sandboxed_sidecar_cgroupfs_layout_with_pod_uid",
        false,
        true,
    );
}

#[test]
fn sandboxed_sidecar_systemd_layout_without_pod_uid() {
    finds_its_pod_and_reports_the_kill(
        "sandboxed_sidecar_systemd_layout_without_pod_uid",
        true,
        false,
    );
}

#[test]
fn sandboxed_sidecar_systemd_layout_with_pod_uid() {
    finds_its_pod_and_reports_the_kill("sandboxed_sidecar_systemd_layout_with_pod_uid", true, true);
}

#[test]
fn sandboxed_sidecar_outside_kubepods_without_pod_uid_exits_saying_what_is_missing() {
    let test = "sandboxed_sidecar_outside_kubepods_without_pod_uid_exits_saying_what_is_missing";
    let Some(root) = require(test) else {
        return;
    };
    // A container cgroup that is no kubelet pod's: its cgroup namespace shows `/` all the same.
    let mut dirs = pressure_testkit::CgroupDirs::new();
    let dir = root.join(format!(
        "pressure-test-{}",
        pressure_testkit::unique_pod_uid()
    ));
    dirs.create_all(&dir).expect("mkdir");
    let mut pressured = start_sandboxed(&dir, &config("cgroup", POLL_MS), &[]);
    let (status, log) = pressured
        .wait_exit(Duration::from_secs(20))
        .expect("pressured exits");
    assert!(!status.success(), "{status:?}\n{log}");
    assert!(log.contains("set POD_UID from the downward API"), "{log}");
    assert!(!log.contains("watching"), "watched something: {log}");
}
