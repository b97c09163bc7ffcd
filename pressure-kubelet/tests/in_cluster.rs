//! The client stack of the service account and URL sources (this crate's own, not kube-rs's kubeconfig
//! stack) against a real kube-apiserver: the files of a pod's service account mount, the API server's
//! certificate checked against `ca.crt` (or not at all, for a kubelet's), the token re-read when the
//! kubelet rotates it.

use std::path::Path;

use pressure_kubelet::k8s_openapi::api::core::v1::Pod;
use pressure_kubelet::kube::{self, Api};
use pressure_kubelet::{ClientSource, KubeletError};
use pressure_testkit::{ControlPlane, require_control_plane};
use serde_json::json;

/// A namespace with pod `web` and ServiceAccount `reader`, allowed to get pods there; its token.
fn scene(cp: &ControlPlane, prefix: &str) -> (String, String) {
    let ns = cp.create_namespace(prefix).expect("namespace");
    cp.apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: reader, namespace: {ns}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: reader, namespace: {ns}}}\n\
         rules: [{{apiGroups: [\"\"], resources: [pods], verbs: [get]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: reader, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}\n\
         subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]\n"
    ))
    .expect("RBAC");
    cp.create(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns},
                "spec": {"nodeName": "n0", "containers": [{"name": "app", "image": "app:1"}]}}),
    )
    .expect("pod");
    let token = cp.service_account_token(&ns, "reader").expect("token");
    (ns, token)
}

/// The kubelet's way of updating a projected file: a new file renamed over the old.
fn rotate(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The whole error chain, for matching the cause.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[tokio::test]
async fn in_cluster_files_reach_the_real_apiserver_and_a_rotated_token_is_used() {
    const TEST: &str = "in_cluster_files_reach_the_real_apiserver_and_a_rotated_token_is_used";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let (ns, token) = scene(cp, "pincluster");
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("token"), &token).unwrap();
    std::fs::write(mount.path().join("ca.crt"), cp.ca_pem()).unwrap();
    std::fs::write(mount.path().join("namespace"), &ns).unwrap();
    let client = ClientSource::InCluster {
        service_account_dir: mount.path().to_owned(),
        api_server: Some(cp.server()),
    }
    .connect()
    .await
    .expect("client");
    assert_eq!(client.default_namespace(), ns, "from the namespace file");
    let pods: Api<Pod> = Api::default_namespaced(client);
    let web = pods.get("web").await.expect("get as the ServiceAccount");
    assert_eq!(web.metadata.namespace.as_deref(), Some(ns.as_str()));

    // A token the API server does not know: 401, read from the file at this request.
    rotate(&mount.path().join("token"), "not-a-token");
    let e = pods.get("web").await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 401), "{e:?}");
    // The kubelet's next rotation: a fresh token, used without a new client.
    let fresh = cp.service_account_token(&ns, "reader").expect("token");
    rotate(&mount.path().join("token"), &fresh);
    pods.get("web").await.expect("get with the rotated token");
}

#[tokio::test]
async fn url_source_checks_the_apiserver_certificate_against_its_ca_file_or_not_at_all() {
    const TEST: &str =
        "url_source_checks_the_apiserver_certificate_against_its_ca_file_or_not_at_all";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let (ns, token) = scene(cp, "purltls");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let right = dir.path().join("ca.crt");
    std::fs::write(&right, cp.ca_pem()).unwrap();
    // Another CA (self-signed, not the API server's issuer).
    let other = rcgen::generate_simple_self_signed(vec!["other-ca".to_owned()]).unwrap();
    let wrong = dir.path().join("other.crt");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let source = |ca_file: Option<&Path>, insecure: bool| ClientSource::Url {
        url: cp.server(),
        token_file: Some(token_file.clone()),
        ca_file: ca_file.map(Path::to_owned),
        insecure,
    };
    let get = |source: ClientSource| {
        let ns = ns.clone();
        async move {
            let client = source.connect().await.expect("client");
            Api::<Pod>::namespaced(client, &ns).get("web").await
        }
    };

    get(source(Some(&right), false))
        .await
        .expect("the API server's CA");
    let e = get(source(Some(&wrong), false)).await.unwrap_err();
    let text = chain(&e);
    assert!(text.contains("UnknownIssuer"), "{text}");
    // The system's trust store does not know the test CA either.
    let e = get(source(None, false)).await.unwrap_err();
    let text = chain(&e);
    assert!(text.contains("certificate"), "{text}");
    // No verification (a kubelet's self-signed serving certificate), the handshake still signed.
    get(source(Some(&wrong), true))
        .await
        .expect("without verification");

    // A CA file that holds no certificate fails at connect, naming the file.
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let Err(e) = source(Some(&empty), false).connect().await else {
        panic!("a CA file without certificates was taken")
    };
    assert!(
        matches!(&e, KubeletError::Tls { path: Some(p), .. } if *p == empty),
        "{e:?}"
    );
}
