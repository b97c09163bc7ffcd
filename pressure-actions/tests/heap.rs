//! Heap-profile capture against a real Go program (`testdata/heapapp`, standard library
//! `net/http/pprof`) that retains 48 MiB in `main.retainLarge` and 8 MiB in `main.retainSmall`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pressure_actions::DispatchConfig;
use pressure_actions::{ANNOTATION_PPROF_ENABLED, ANNOTATION_PPROF_PORT, Dispatcher};
use pressure_core::{Event, EventType, Severity};
use serde_json::json;

use crate::util::{Rclone, assert_no_failures, config, event};

/// The Go program, built once per test into a temp dir and killed on drop.
struct HeapApp {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for HeapApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HeapApp {
    fn start() -> Option<HeapApp> {
        pressure_testkit::require("the heap-profile tests", &pressure_testkit::Capability::GO)?;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("heapapp");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/heapapp/main.go");
        let out = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .current_dir(dir.path())
            .env("GO111MODULE", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = Command::new(&bin).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected heapapp output {line:?}"));
        Some(HeapApp {
            child,
            port,
            _dir: dir,
        })
    }

    /// Makes the program retain `mb` MiB more in `main.leak`; returns once it has.
    fn leak(&self, mb: u32) {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            conn,
            "GET /leak?mb={mb} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    fn event(&self) -> Event {
        let mut e = event();
        Arc::make_mut(&mut e.target_mut().annotations)
            .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
        Arc::make_mut(&mut e.target_mut().annotations)
            .insert(ANNOTATION_PPROF_PORT.into(), self.port.to_string());
        e
    }
}

/// Runs one dispatcher over `events` and returns the follow-up events and the shutdown report.
async fn capture(
    config: &DispatchConfig,
    extra: Option<Arc<dyn pressure_actions::Storage>>,
    events: Vec<Event>,
    expect_followups: usize,
) -> (Vec<Event>, pressure_actions::ShutdownReport) {
    let mut b = Dispatcher::builder(config);
    if let Some(s) = extra {
        b = b.storage("s3", 100, s);
    }
    let mut d = b.build().unwrap();
    let mut rx = d.take_followups().unwrap();
    for e in events {
        assert!(d.submit(e));
    }
    let mut got = Vec::new();
    while got.len() < expect_followups {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(e)) => got.push(e),
            _ => break,
        }
    }
    let report = d.shutdown(Duration::from_secs(30)).await;
    while let Ok(e) = rx.try_recv() {
        got.push(e);
    }
    (got, report)
}

fn check_followup(f: &Event, trigger: &Event) -> String {
    assert_eq!(f.event_type, EventType::HeapProfile);
    assert_eq!(f.target.pod_name, trigger.target.pod_name);
    assert_eq!(f.target.namespace, trigger.target.namespace);
    let p = f.profile.as_ref().expect("profile summary");
    assert_eq!(p.sample_type, "inuse_space");
    assert!(p.size_bytes > 0);
    assert!(!p.top.is_empty());
    assert_eq!(p.top[0].function, "main.retainLarge", "{:#?}", p.top);
    // 48 MiB retained, every allocation in the profile (heapapp sets MemProfileRate = 1).
    assert!(p.top[0].flat_bytes > 40 << 20, "{:?}", p.top[0]);
    let small = p
        .top
        .iter()
        .find(|t| t.function == "main.retainSmall")
        .expect("retainSmall");
    assert!(small.flat_bytes < p.top[0].flat_bytes);
    // The follow-up serializes with its profile.
    let v: serde_json::Value = serde_json::from_str(&f.to_json_line()).unwrap();
    assert_eq!(v["event_type"], "heap_profile");
    assert_eq!(v["profile"]["top"][0]["function"], "main.retainLarge");
    p.location.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_profile_lands_in_local_storage_and_names_the_top_consumer() {
    let Some(app) = HeapApp::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hook_seen = dir.path().join("hook");
    let cfg = config(json!({
        "storage": {"enabled": true, "backend": "local", "path": dir.path().join("store")},
        // The follow-up event also reaches the other actions.
        "actions": {"exec": [{"command": ["tee", hook_seen], "events": ["heap_profile"]}]},
    }));
    let trigger = app.event();
    // Two events for the same pod: the cooldown allows one capture.
    let (followups, report) = capture(&cfg, None, vec![trigger.clone(), trigger.clone()], 1).await;
    assert_no_failures(&report);
    assert_eq!(followups.len(), 1, "{followups:#?}");
    let location = check_followup(&followups[0], &trigger);
    let stored = PathBuf::from(&location);
    assert!(
        stored.starts_with(dir.path().join("store/default/app-0/app")),
        "{location}"
    );
    let name = stored.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("heap-") && name.ends_with("Z-critical.pb.gz"),
        "{name}"
    );
    // The first capture of the container has nothing to compare with.
    assert!(followups[0].profile.as_ref().unwrap().growth.is_none());
    let bytes = std::fs::read(&stored).unwrap();
    assert_eq!(
        bytes.len() as u64,
        followups[0].profile.as_ref().unwrap().size_bytes
    );
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
    assert_eq!(
        std::fs::read_dir(stored.parent().unwrap()).unwrap().count(),
        1
    );
    let hook: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&hook_seen).unwrap().trim()).unwrap();
    assert_eq!(hook["event_type"], "heap_profile");
}

/// Issue 17: a capture at `predicted_oom` and another at `critical` (the per-pod cooldown used to
/// skip the second), and the second reports what grew in between, as `-diff_base` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_at_prediction_and_critical_report_the_growth_between_them() {
    let Some(app) = HeapApp::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({"storage": {"enabled": true, "backend": "local", "path": dir.path()}}));
    let mut d = Dispatcher::builder(&cfg).build().unwrap();
    let mut rx = d.take_followups().unwrap();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("a follow-up within 60 s")
            .expect("follow-up channel open")
    };
    let mut predicted = app.event();
    predicted.event_type = EventType::PredictedOom;
    predicted.severity = Severity::Warn;
    assert!(d.submit(predicted.clone()));
    let first = next().await;
    let first_location = check_followup(&first, &predicted);
    assert!(
        first_location.ends_with("-predicted_oom.pb.gz"),
        "{first_location}"
    );
    assert!(first.profile.as_ref().unwrap().growth.is_none());

    app.leak(24);
    let critical = app.event();
    assert!(d.submit(critical.clone()));
    let second = next().await;
    let second_location = check_followup(&second, &critical);
    assert!(
        second_location.ends_with("-critical.pb.gz"),
        "{second_location}"
    );
    let growth = second
        .profile
        .as_ref()
        .unwrap()
        .growth
        .as_ref()
        .expect("growth");
    assert_eq!(growth.base_location, first_location);
    assert!(growth.interval_seconds >= 0.0);
    assert_eq!(growth.top[0].function, "main.leak", "{:#?}", growth.top);
    // 24 MiB leaked, every allocation in the profile (heapapp sets MemProfileRate = 1).
    let leaked = growth.top[0].flat_bytes;
    assert!((20 << 20..28 << 20).contains(&leaked), "{leaked}");
    // What was there at both captures nets to (about) nothing.
    assert!(
        growth
            .top
            .iter()
            .filter(|t| t.function == "main.retainLarge")
            .all(|t| t.flat_bytes.abs() < 4 << 20),
        "{:#?}",
        growth.top
    );
    let v: serde_json::Value = serde_json::from_str(&second.to_json_line()).unwrap();
    assert_eq!(v["profile"]["growth"]["top"][0]["function"], "main.leak");

    // Both triggers are now in their cooldown: neither captures again.
    assert!(d.submit(predicted));
    assert!(d.submit(critical));
    let report = d.shutdown(Duration::from_secs(30)).await;
    assert_no_failures(&report);
    assert!(rx.try_recv().is_err(), "no third capture");
    let stored = std::fs::read_dir(dir.path().join("default/app-0/app"))
        .unwrap()
        .count();
    assert_eq!(stored, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_profile_lands_in_s3() {
    let Some(app) = HeapApp::start() else {
        return;
    };
    let Some(server) = Rclone::start("heaps") else {
        return;
    };
    let s3 = Arc::new(server.storage("heaps", "oom-dumps/", server.secret));
    let cfg = config(json!({}));
    let mut trigger = app.event();
    trigger.event_type = EventType::PredictedOom;
    trigger.severity = Severity::Warn;
    let (followups, report) = capture(&cfg, Some(s3), vec![trigger.clone()], 1).await;
    assert_no_failures(&report);
    assert_eq!(followups.len(), 1);
    let location = check_followup(&followups[0], &trigger);
    assert!(
        location.starts_with("s3://heaps/oom-dumps/default/app-0/app/heap-"),
        "{location}"
    );
    let key = location.trim_start_matches("s3://heaps/");
    let on_disk = server.dir.path().join("heaps").join(key);
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().len(),
        followups[0].profile.as_ref().unwrap().size_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capture_without_opt_in_in_dry_run_or_below_critical() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(json!({"storage": {"enabled": true, "path": store}}));
    let mut not_annotated = event();
    not_annotated.target_mut().pod_ip = Some("127.0.0.1".into());
    let mut warn = event();
    Arc::make_mut(&mut warn.target_mut().annotations)
        .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
    warn.severity = Severity::Warn;
    let mut dry = event();
    Arc::make_mut(&mut dry.target_mut().annotations)
        .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
    Arc::make_mut(&mut dry.target_mut().annotations)
        .insert(ANNOTATION_PPROF_PORT.into(), "1".into());
    dry.dry_run = true;
    let (followups, report) = capture(&cfg, None, vec![not_annotated, warn, dry], 0).await;
    assert_no_failures(&report);
    assert!(followups.is_empty());
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_pod_or_missing_storage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(json!({"storage": {"enabled": true, "path": dir.path()}}));
    let mut e = event();
    Arc::make_mut(&mut e.target_mut().annotations)
        .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
    Arc::make_mut(&mut e.target_mut().annotations).insert(ANNOTATION_PPROF_PORT.into(), "1".into());
    let (followups, report) = capture(&cfg, None, vec![e.clone()], 0).await;
    assert!(followups.is_empty());
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].action, "heap_profile");
    assert!(
        report.failures[0].message.contains("127.0.0.1:1"),
        "{report:?}"
    );
    let (_, report) = capture(&config(json!({})), None, vec![e], 0).await;
    assert!(
        report.failures[0].message.contains("no storage"),
        "{report:?}"
    );
}
