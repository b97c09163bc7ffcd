//! Dispatch: a full queue drops and counts without waiting, shutdown drains or gives up at its deadline,
//! dry run, and an embedder's own actions and storages through the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use object_store::memory::InMemory;
use pressure_actions::{
    Action, ActionContext, ActionsError, DispatchConfig, Dispatcher, ObjectStorage, Storage,
};
use pressure_core::Event;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::util::{assert_no_failures, config, event, run};

/// Waits for a permit per event (so the test controls when it finishes), then counts.
#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    done: AtomicU64,
}

impl Action for Gate {
    fn handle<'a>(
        &'a self,
        _event: &'a Event,
        _ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            self.permits.acquire().await.unwrap().forget();
            self.done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_and_counts_and_submit_never_waits() {
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(0)),
        done: AtomicU64::new(0),
    });
    let cfg = config(json!({"actions": {"queue_capacity": 2}}));
    let d = Dispatcher::builder(&cfg)
        .action("gate", 10, gate.clone())
        .build()
        .unwrap();
    // The worker takes the first event and blocks in the gate; two more fill the queue.
    assert!(d.submit(event()));
    for _ in 0..100 {
        if d.stats().queued == 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            break;
        }
    }
    let accepted: Vec<bool> = (0..10).map(|_| d.submit(event())).collect();
    assert_eq!(accepted.iter().filter(|a| **a).count(), 2, "{accepted:?}");
    let stats = d.stats();
    assert_eq!(stats.dropped, 8);
    assert_eq!(stats.queued, 3);
    gate.permits.add_permits(3);
    let report = d.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained);
    assert_eq!(report.stats.processed, 3);
    assert_eq!(report.stats.dropped, 8);
    assert_eq!(gate.done.load(Ordering::SeqCst), 3);
}

/// Issue 16: a replay of 3,000 critical containers dropped 1,971 events; with `submit_wait` a full queue
/// makes the caller wait instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_submit_wait_applies_back_pressure_and_drops_nothing() {
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(0)),
        done: AtomicU64::new(0),
    });
    let cfg = config(json!({"actions": {"queue_capacity": 2}}));
    let d = Arc::new(
        Dispatcher::builder(&cfg)
            .action("gate", 10, gate.clone())
            .build()
            .unwrap(),
    );
    let producer = {
        let d = Arc::clone(&d);
        tokio::spawn(async move {
            for _ in 0..3000 {
                assert!(d.submit_wait(event()).await);
            }
        })
    };
    // The gate lets one event through at a time: the producer can only be ahead by the queue plus the
    // one running, so it must be waiting, not dropping.
    for _ in 0..3000 {
        gate.permits.add_permits(1);
        tokio::task::yield_now().await;
    }
    producer.await.unwrap();
    let d = Arc::into_inner(d).unwrap();
    let report = d.shutdown(Duration::from_secs(30)).await;
    assert!(report.drained);
    assert_eq!(report.stats.dropped, 0);
    assert_eq!(report.stats.processed, 3000);
    assert_eq!(gate.done.load(Ordering::SeqCst), 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_at_its_deadline() {
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(0)),
        done: AtomicU64::new(0),
    });
    let d = Dispatcher::builder(&config(json!({})))
        .action("stuck", 10, gate.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(d.submit(event()));
    }
    let report = d.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert_eq!(report.abandoned, 3);
    assert_eq!(report.stats.processed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_a_running_script_past_the_deadline() {
    // A long timeout: only the shutdown deadline can stop it.
    let cfg = config(
        json!({"plugins": {"lua": {"enabled": true, "timeout_ms": 600000,
        "inline_script": "function on_event(e, ctx) while true do end end"}}}),
    );
    let d = Dispatcher::from_config(&cfg).unwrap();
    assert!(d.submit(event()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = d.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert_eq!(report.abandoned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_after_shutdown_counts_as_dropped() {
    let d = Dispatcher::from_config(&config(json!({}))).unwrap();
    assert!(d.submit(event()));
    let report = d.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(report.stats.processed, 1);
    assert_eq!(report.stats.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedder_storage_with_higher_priority_serves_lua_and_named_lookup_works() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(
        ObjectStorage::new(Arc::new(InMemory::new()), "memory", "mine/", "memory://").unwrap(),
    );
    #[derive(Debug)]
    struct Probe {
        seen: std::sync::Mutex<Vec<String>>,
    }
    impl Action for Probe {
        fn handle<'a>(
            &'a self,
            _event: &'a Event,
            ctx: &'a ActionContext,
        ) -> BoxFuture<'a, Result<(), ActionsError>> {
            Box::pin(async move {
                let top = ctx.storage().unwrap();
                let local = ctx.storage_by_spec("storage:local").unwrap();
                assert!(ctx.storage_by_spec("storage:nope").is_none());
                self.seen
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", top.backend(), local.backend()));
                Ok(())
            })
        }
    }
    let probe = Arc::new(Probe {
        seen: Default::default(),
    });
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true,
            "inline_script": "function on_event(e, ctx) assert(storage.write('from-lua', 'x').ok) end"}},
        "storage": {"enabled": true, "path": dir.path()},
    }));
    let d = Dispatcher::builder(&cfg)
        .storage("memory", 500, memory.clone())
        .action("probe", 1, probe.clone())
        .build()
        .unwrap();
    assert!(d.submit(event()));
    let report = d.shutdown(Duration::from_secs(10)).await;
    assert_no_failures(&report);
    assert_eq!(*probe.seen.lock().unwrap(), ["memory local"]);
    assert_eq!(&memory.read("from-lua").await.unwrap()[..], b"x");
    assert_eq!(memory.location("from-lua"), "memory:///mine/from-lua");
    assert!(!dir.path().join("from-lua").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reaches_scripts_and_builtins_write_nothing() {
    let out = tempfile::tempdir().unwrap();
    let marker = out.path().join("exec-ran");
    let cfg = config(json!({
        "dry_run": true,
        "plugins": {"lua": {"enabled": true, "inline_script":
            "function on_event(e, ctx) assert(ctx.dry_run == true) end"}},
        "actions": {"exec": [{"command": ["touch", marker]}],
                    "webhook": [{"url": "http://127.0.0.1:1/never"}]},
    }));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    assert!(!marker.exists(), "exec ran in dry run");
    // The event's own dry_run flag counts too.
    let cfg = config(json!({"actions": {"exec": [{"command": ["touch", marker]}]}}));
    let mut e = event();
    e.dry_run = true;
    let report = run(&cfg, vec![e]).await;
    assert_no_failures(&report);
    assert!(!marker.exists());
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_name_the_key() {
    // A config built in code skips `validate`; the builder still names the key.
    let mut cfg = DispatchConfig::default();
    cfg.storage.enabled = true;
    cfg.storage.path = String::new();
    let e = Dispatcher::builder(&cfg).build().unwrap_err();
    assert!(e.to_string().contains("storage.path"), "{e}");
    let cfg = config(
        json!({"plugins": {"lua": {"enabled": true, "scripts_dir": "/nonexistent/pressure-test"}}}),
    );
    let e = Dispatcher::from_config(&cfg).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/pressure-test"), "{e}");
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    let e = Dispatcher::from_config(&config(json!({}))).unwrap_err();
    assert!(matches!(e, ActionsError::NoRuntime(_)), "{e}");
}
