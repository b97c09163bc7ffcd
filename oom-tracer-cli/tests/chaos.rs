//! Issue 16, "nothing lost": real kube-apiserver outages (pressure-testkit's control plane, the API
//! server killed and restarted on the same port while etcd keeps the state) around a real memcg OOM
//! kill. `oom-tracer` runs as its chart's ServiceAccount; after the API server is back, the victim's
//! pod gets the annotation and exactly one Warning Event, also when `oom-tracer` itself was restarted
//! during the outage (the state file). Each test has a control plane of its own: the shared one
//! serves other tests that must not see an outage.

use std::path::Path;
use std::time::{Duration, Instant};

use pressure_testkit::{ControlPlane, KubeletV1Pod, require_v1_memcg, skip_or_fail, wait_for};
use serde_json::{Value, json};

use crate::k8s_real_apiserver::{
    KEY, Tracer, annotations, chart, oom_kill, pod_with_cgroup, start_tracer_with,
};

/// A control plane of the test's own, a namespace with the chart's RBAC, a victim pod with its
/// kubelet-shaped cgroup, and the ServiceAccount kubeconfig.
struct Scene {
    cp: ControlPlane,
    ns: String,
    node: String,
    kubeconfig: std::path::PathBuf,
    victim: KubeletV1Pod,
}

fn scene(test: &str) -> Option<Scene> {
    let root = require_v1_memcg(test)?;
    let cp = match ControlPlane::start() {
        Ok(cp) => cp,
        Err(e) => {
            skip_or_fail(test, &format!("a control plane of its own: {e}"));
            return None;
        }
    };
    let ns = cp.create_namespace("chaos").expect("namespace");
    let node = format!("{ns}-node");
    let rbac = cp
        .apply_chart_rbac(&chart(), &ns, &ns, &json!({}))
        .expect("the chart's RBAC");
    let sa = ControlPlane::chart_service_account(&rbac).expect("the chart's ServiceAccount");
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let (_, victim) = pod_with_cgroup(&cp, &root, &ns, "victim", &node, json!({"team": "a"}));
    Some(Scene {
        cp,
        ns,
        node,
        kubeconfig,
        victim,
    })
}

impl Scene {
    fn tracer(&self, state: &Path) -> Tracer {
        start_tracer_with(
            &self.kubeconfig,
            &self.node,
            &[&format!("--state-file={}", state.display())],
        )
    }

    /// The Events about the victim's pod, read as the admin.
    fn events(&self) -> Vec<Value> {
        self.cp.events_about(&self.ns, "victim")
    }

    /// After the outage: the annotation (others kept), then exactly one Warning Event of the kill.
    fn assert_marked_once(&self, pid: u32) {
        let ann = wait_for(
            "the annotation after the outage",
            Duration::from_secs(90),
            || {
                let a = annotations(&self.cp, &self.ns, "victim");
                (a[KEY] == "true").then_some(a)
            },
        );
        assert_eq!(ann["team"], "a", "other annotations kept: {ann}");
        let events = wait_for(
            "the Event after the outage",
            Duration::from_secs(60),
            || {
                let e = self.events();
                (!e.is_empty()).then_some(e)
            },
        );
        assert_eq!(events.len(), 1, "exactly one Event: {events:#?}");
        let e = &events[0];
        assert_eq!(
            (e["type"].as_str(), e["reason"].as_str()),
            (Some("Warning"), Some("OOMKilled"))
        );
        assert!(
            e["series"].is_null(),
            "posted once, not folded into a series: {e}"
        );
        let note = e["note"].as_str().unwrap_or_default();
        assert!(note.contains(&format!("pid {pid}")), "{note}");
    }
}

/// The pending gauge of `tracer` reaches `n`.
fn wait_pending(tracer: &Tracer, n: usize, timeout: Duration) {
    let line = format!("\noom_tracer_pending_marks {n}\n");
    wait_for(&format!("oom_tracer_pending_marks {n}"), timeout, || {
        tracer.metrics().contains(&line).then_some(())
    });
}

/// A kill while the API server is down for `outage`: kept pending, marked once after it is back.
fn kill_during_outage(test: &str, outage: Duration) {
    let Some(s) = scene(test) else { return };
    let state = tempfile::tempdir().expect("tempdir");
    let tracer = s.tracer(&state.path().join("pending.json"));

    s.cp.stop_apiserver().expect("stop kube-apiserver");
    let down = Instant::now();
    let pid = oom_kill(&s.victim);
    let line = tracer.wait_line("OOM mark pending", Duration::from_secs(30));
    assert!(line.contains("victim"), "{line}");
    wait_pending(&tracer, 1, Duration::from_secs(10));
    // The outage's length is the point of the test: the rest of it is waited out on purpose.
    std::thread::sleep(outage.saturating_sub(down.elapsed()));
    s.cp.restart_apiserver().expect("restart kube-apiserver");
    eprintln!("{test}: kube-apiserver was down for {:?}", down.elapsed());

    tracer.wait_line("pending OOM mark made", Duration::from_secs(90));
    s.assert_marked_once(pid);
    wait_pending(&tracer, 0, Duration::from_secs(10));
    let m = tracer.metrics();
    for want in [
        r#"oom_tracer_marked_victims_total{stage="marked",reason="annotation_applied"} 1"#,
        r#"oom_tracer_events_total{stage="error",reason="annotation_failed"} 1"#,
        r#"oom_tracer_pending_marks_dropped_total{reason="expired"} 0"#,
        r#"oom_tracer_pending_marks_dropped_total{reason="capacity"} 0"#,
    ] {
        assert!(m.contains(want), "missing {want:?} in\n{m}");
    }
}

#[test]
fn issue_16_kill_during_a_20s_apiserver_outage_is_marked_once_after_it() {
    kill_during_outage(
        "issue_16_kill_during_a_20s_apiserver_outage_is_marked_once_after_it",
        Duration::from_secs(20),
    );
}

#[test]
fn issue_16_kill_during_a_60s_apiserver_outage_is_marked_once_after_it() {
    kill_during_outage(
        "issue_16_kill_during_a_60s_apiserver_outage_is_marked_once_after_it",
        Duration::from_secs(60),
    );
}

#[test]
fn issue_16_kill_during_an_outage_survives_a_restart_of_oom_tracer() {
    const TEST: &str = "issue_16_kill_during_an_outage_survives_a_restart_of_oom_tracer";
    let Some(s) = scene(TEST) else { return };
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("pending.json");
    let first = s.tracer(&state);

    s.cp.stop_apiserver().expect("stop kube-apiserver");
    let down = Instant::now();
    let pid = oom_kill(&s.victim);
    first.wait_line("OOM mark pending", Duration::from_secs(30));
    assert!(state.is_file(), "the pending mark is in the state file");
    // SIGKILL: nothing is written at exit; the state file was written when the mark was queued.
    drop(first);

    // The second process starts while the API server is still down: it restores the mark and
    // traces (after the pod list's start-up wait) without a pod list.
    let second = s.tracer(&state);
    let restored = second.wait_line("restored from the state file", Duration::from_secs(5));
    // It may already have been logged before `tracer` returned: then it is in the backlog above.
    assert!(restored.contains("restored=1"), "{restored}");
    assert!(
        s.cp.apiserver_pid().is_none(),
        "the restart happened during the outage"
    );
    s.cp.restart_apiserver().expect("restart kube-apiserver");
    eprintln!("{TEST}: kube-apiserver was down for {:?}", down.elapsed());

    second.wait_line("pending OOM mark made", Duration::from_secs(90));
    s.assert_marked_once(pid);
    assert!(
        !state.exists(),
        "nothing pending: the state file is removed"
    );
}
