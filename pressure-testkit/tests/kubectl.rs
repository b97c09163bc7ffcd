//! The real `kubectl` against the fake API server: list, get, watch, annotate, patch, events, TLS and
//! tokens, paging, faults.

use std::time::{Duration, Instant};

use pressure_testkit::{ContainerUsage, FakeApiServer, Fault, FaultRule, Options};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{Kubectl, fixture_world, kubectl_path};

const NS: &str = "kube-system";
const POD: &str = "kube-proxy-8k9zt";
const NODE: &str = "datagen-1-35";

async fn setup() -> Option<(FakeApiServer, Kubectl)> {
    let bin = kubectl_path()?;
    let server = FakeApiServer::start(fixture_world())
        .await
        .expect("server starts");
    let k = Kubectl::new(bin, server.url());
    Some((server, k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_all_namespaces_lists_every_fixture_pod() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let out = k.ok(&["get", "pods", "-A"]).await;
    let header = out.lines().next().expect("a header line");
    for col in ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(header.contains(col), "header {header:?} lacks {col}");
    }
    let fixture: Vec<String> = fixture_world()
        .objects()
        .iter()
        .filter(|o| o["kind"] == "Pod")
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(out.lines().count() - 1, fixture.len());
    for name in &fixture {
        assert!(out.contains(name.as_str()), "{name} missing from:\n{out}");
    }
    let line = out
        .lines()
        .find(|l| l.contains(POD))
        .expect("kube-proxy row");
    assert!(
        line.starts_with(NS) && line.contains("1/1") && line.contains("Running"),
        "{line}"
    );
    // Chunked listing pages through `limit`/`continue` and still shows every pod.
    let paged = k
        .ok(&["get", "pods", "-A", "--chunk-size=4", "-o", "name"])
        .await;
    assert_eq!(paged.lines().count(), fixture.len());
    assert!(
        server.requests().iter().any(|r| r.contains("continue=")),
        "no continue request in {:?}",
        server.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pod_json_and_nodes() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let pod: Value =
        serde_json::from_str(&k.ok(&["get", "pod", "-n", NS, POD, "-o", "json"]).await)
            .expect("json");
    let stored = server.pod(NS, POD).expect("stored pod");
    assert_eq!(pod["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["nodeName"], NODE);
    let nodes = k.ok(&["get", "nodes", "-o", "wide"]).await;
    let row = nodes
        .lines()
        .find(|l| l.starts_with(NODE))
        .expect("node row");
    assert!(
        row.contains("Ready")
            && row.contains("control-plane")
            && row.contains("192.168.67.2")
            && row.contains("v1.35.0"),
        "{row}"
    );
    let missing = k.run(&["get", "pod", "-n", NS, "nope"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    // Selectors are applied by the server.
    let by_node = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            &format!("spec.nodeName={NODE},metadata.name={POD}"),
            "-o",
            "name",
        ])
        .await;
    assert_eq!(by_node.trim(), format!("pod/{POD}"));
    let by_label = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "-l",
            "k8s-app in (kube-dns)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(by_label.trim(), "pod/coredns-7d764666f9-qdcxt");
    let none = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=other",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(none.trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotate_patches_and_conflicts() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let before = server.pod(NS, POD).expect("pod")["metadata"]["resourceVersion"].clone();
    k.ok(&[
        "annotate",
        "pod",
        "-n",
        NS,
        POD,
        "pressure.dev/oom-victim=app",
    ])
    .await;
    let pod = server.pod(NS, POD).expect("pod");
    assert_eq!(
        pod["metadata"]["annotations"]["pressure.dev/oom-victim"],
        "app"
    );
    assert_ne!(pod["metadata"]["resourceVersion"], before);
    // Without --overwrite kubectl refuses; a stale --resource-version gets 409 Conflict.
    let again = k
        .run(&[
            "annotate",
            "pod",
            "-n",
            NS,
            POD,
            "pressure.dev/oom-victim=other",
        ])
        .await;
    assert!(!again.status.success());
    let stale = k
        .run(&[
            "annotate",
            "--overwrite",
            "pod",
            "-n",
            NS,
            POD,
            "pressure.dev/oom-victim=other",
            "--resource-version=1",
        ])
        .await;
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("Conflict"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    assert_eq!(
        server.pod(NS, POD).expect("pod")["metadata"]["annotations"]["pressure.dev/oom-victim"],
        "app"
    );
    // The three patch types.
    k.ok(&[
        "patch",
        "pod",
        "-n",
        NS,
        POD,
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "pod",
        "-n",
        NS,
        POD,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/jsonpatched","value":"yes"}]"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "pod",
        "-n",
        NS,
        POD,
        "--type=strategic",
        "-p",
        r#"{"spec":{"containers":[{"name":"kube-proxy","image":"example/proxy:2"}]}}"#,
    ])
    .await;
    let pod = server.pod(NS, POD).expect("pod");
    assert_eq!(pod["metadata"]["labels"]["merged"], "yes");
    assert_eq!(pod["metadata"]["labels"]["jsonpatched"], "yes");
    assert_eq!(pod["spec"]["containers"][0]["image"], "example/proxy:2");
    assert!(
        pod["spec"]["containers"][0]["command"].is_array(),
        "strategic merge kept the other container fields"
    );
    let bad = k
        .run(&[
            "patch",
            "pod",
            "-n",
            NS,
            POD,
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/metadata/name","value":"x"}]"#,
        ])
        .await;
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let mut child = k
        .command(&[
            "get",
            "pods",
            "-n",
            NS,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_ns = fixture_world()
        .objects()
        .iter()
        .filter(|o| o["kind"] == "Pod" && o["metadata"]["namespace"] == NS)
        .count();
    let mut seen_added = 0;
    let mut modified = false;
    let mut deleted = false;
    while Instant::now() < deadline && !(modified && deleted) {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
        else {
            break;
        };
        // kubectl prints one compact JSON watch event per line.
        let ev: Value = serde_json::from_str(&line).expect("watch event json");
        match ev["type"].as_str() {
            Some("ADDED") => {
                seen_added += 1;
                if seen_added == in_ns {
                    assert!(
                        server.update_pod(NS, POD, |p| p["metadata"]["labels"]["watched"] =
                            json!("1"))
                    );
                    assert!(server.delete_pod(NS, "storage-provisioner"));
                }
            }
            Some("MODIFIED") => {
                assert_eq!(ev["object"]["metadata"]["name"], POD);
                assert_eq!(ev["object"]["metadata"]["labels"]["watched"], "1");
                modified = true;
            }
            Some("DELETED") => {
                assert_eq!(ev["object"]["metadata"]["name"], "storage-provisioner");
                deleted = true;
            }
            other => panic!("unexpected event type {other:?}"),
        }
    }
    let _ = child.kill().await;
    assert_eq!(seen_added, in_ns, "one ADDED per kube-system pod");
    assert!(
        modified && deleted,
        "saw MODIFIED {modified}, DELETED {deleted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_both_groups_show_in_get_events() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let uid = server.pod(NS, POD).expect("pod")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ev.json");
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "kube-proxy.oom", "namespace": NS},
        "eventTime": "2026-06-26T10:14:40.000000Z", "reportingController": "pressure.dev/oom-tracer", "reportingInstance": "oom-tracer-node",
        "action": "Killed", "reason": "OOMKilled", "type": "Warning", "note": "container kube-proxy hit its memory limit (170Mi)",
        "regarding": {"kind": "Pod", "apiVersion": "v1", "name": POD, "namespace": NS, "uid": uid},
    });
    std::fs::write(&file, ev.to_string()).expect("write");
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        file.to_str().unwrap_or_default(),
    ])
    .await;
    let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "legacy.1", "namespace": NS},
        "involvedObject": {"kind": "Node", "name": NODE}, "reason": "Pressure", "message": "node memory is high", "type": "Normal",
        "count": 3, "firstTimestamp": "2026-06-26T10:00:00Z", "lastTimestamp": "2026-06-26T10:10:00Z", "source": {"component": "pressured"}});
    std::fs::write(&file, core.to_string()).expect("write");
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        file.to_str().unwrap_or_default(),
    ])
    .await;
    let out = k.ok(&["get", "events", "-A", "-o", "wide"]).await;
    let row = out
        .lines()
        .find(|l| l.contains("OOMKilled"))
        .expect("OOMKilled row");
    assert!(
        row.contains(&format!("pod/{POD}"))
            && row.contains("hit its memory limit")
            && row.contains("pressure.dev/oom-tracer"),
        "{row}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("Pressure"))
        .expect("legacy row");
    assert!(
        row.contains(&format!("node/{NODE}")) && row.contains(" 3 "),
        "{row}"
    );
    // The same Event through events.k8s.io/v1, and describe finds it by involvedObject uid.
    let v1: Value = serde_json::from_str(
        &k.ok(&[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            NS,
            "kube-proxy.oom",
            "-o",
            "json",
        ])
        .await,
    )
    .expect("json");
    assert_eq!(
        v1["note"],
        "container kube-proxy hit its memory limit (170Mi)"
    );
    assert_eq!(v1["regarding"]["uid"], uid.as_str());
    let describe = k.ok(&["describe", "pod", "-n", NS, POD]).await;
    assert!(describe.contains("OOMKilled"), "{describe}");
    // A series update patches the count; kubectl shows it.
    k.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "-n",
        NS,
        "kube-proxy.oom",
        "--type=merge",
        "-p",
        r#"{"series":{"count":4,"lastObservedTime":"2026-06-26T10:20:00.000000Z"}}"#,
    ])
    .await;
    let out = k
        .ok(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "reason=OOMKilled",
            "-o",
            "wide",
        ])
        .await;
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains(" 4 ")),
        "{out}"
    );
    assert_eq!(server.events().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_bearer_token_and_rotation() {
    let Some(bin) = kubectl_path() else { return };
    let options = Options {
        tls: true,
        token: Some("token-one".into()),
        ..Options::default()
    };
    let server = FakeApiServer::start_with(fixture_world(), options)
        .await
        .expect("server");
    assert!(server.url().starts_with("https://"));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let ca = dir.path().join("ca.crt");
    let good = Kubectl::new(bin.clone(), server.url()).with_args(&[
        "--token=token-one",
        &format!("--certificate-authority={}", ca.display()),
    ]);
    assert!(
        good.ok(&["get", "nodes", "-o", "name"])
            .await
            .contains(NODE)
    );
    let out = tokio::process::Command::new(&bin)
        .args(["get", "pods", "-A", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = Kubectl::new(bin.clone(), server.url()).with_args(&[
        "--token=nope",
        &format!("--certificate-authority={}", ca.display()),
    ]);
    let denied = wrong.run(&["get", "nodes"]).await;
    assert!(!denied.status.success());
    // client-go's wording for 401.
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("provide credentials"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    server.rotate_token("token-two");
    assert!(
        !good.run(&["get", "nodes"]).await.status.success(),
        "the rotated-out token is expired"
    );
    let rotated = Kubectl::new(bin, server.url()).with_args(&[
        "--token=token-two",
        &format!("--certificate-authority={}", ca.display()),
    ]);
    assert!(
        rotated
            .ok(&["get", "nodes", "-o", "name"])
            .await
            .contains(NODE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_reach_kubectl() {
    let Some((server, k)) = setup().await else {
        return;
    };
    k.ok(&["get", "nodes"]).await; // warm the discovery cache
    server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("/api/v1/nodes")
            .times(1),
    );
    let failed = k.run(&["get", "nodes"]).await;
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("InternalError"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(
        k.ok(&["get", "nodes"]).await.contains(NODE),
        "the fault was used up"
    );
    // client-go honours Retry-After on 429 and retries: the command succeeds, a second later.
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 1,
        })
        .path_contains("/api/v1/nodes")
        .times(1),
    );
    let t = Instant::now();
    assert!(k.ok(&["get", "nodes"]).await.contains(NODE));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "retried after {:?}",
        t.elapsed()
    );
    server.add_fault(
        FaultRule::new(Fault::Latency(Duration::from_millis(300)))
            .path_contains("/api/v1/nodes")
            .times(1),
    );
    let t = Instant::now();
    k.ok(&["get", "nodes"]).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_through_the_node_proxy_follows_usage() {
    let Some((server, k)) = setup().await else {
        return;
    };
    let path = format!("/api/v1/nodes/{NODE}/proxy/stats/summary");
    let s: Value = serde_json::from_str(&k.ok(&["get", "--raw", &path]).await).expect("json");
    assert_eq!(s["node"]["nodeName"], NODE);
    let pods = s["pods"].as_array().expect("pods");
    let running = fixture_world()
        .objects()
        .iter()
        .filter(|o| {
            o["kind"] == "Pod"
                && o["spec"]["nodeName"] == NODE
                && !matches!(o["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .count();
    assert_eq!(pods.len(), running, "every running pod of the node");
    server.set_usage(
        NS,
        POD,
        "kube-proxy",
        ContainerUsage::working_set(150 << 20),
    );
    let s: Value = serde_json::from_str(&k.ok(&["get", "--raw", &path]).await).expect("json");
    let pod = s["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["podRef"]["name"] == POD)
        .expect("kube-proxy")
        .clone();
    assert_eq!(
        pod["podRef"]["uid"],
        server.pod(NS, POD).expect("pod")["metadata"]["uid"]
    );
    assert_eq!(
        pod["containers"][0]["memory"]["workingSetBytes"],
        150u64 << 20
    );
    assert_eq!(pod["memory"]["workingSetBytes"], 150u64 << 20);
}
