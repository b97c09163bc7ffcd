//! The control plane's PKI, made with rcgen: one CA, the API server's serving certificate, client
//! certificates for the admin and for the API server's kubelet client, and the service-account
//! signing key. Written as PEM files into the control plane's directory.

use std::path::{Path, PathBuf};

use super::KubeError;

/// Paths of the PEM files [`write_pki`] wrote.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_pem: String,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) kubelet_client_cert: PathBuf,
    pub(crate) kubelet_client_key: PathBuf,
    pub(crate) sa_key: PathBuf,
    pub(crate) sa_pub: PathBuf,
    /// DER forms, for the in-process HTTPS client.
    pub(crate) ca_der: rustls::pki_types::CertificateDer<'static>,
    pub(crate) admin_cert_der: rustls::pki_types::CertificateDer<'static>,
    pub(crate) admin_key_der: Vec<u8>,
}

fn tls_err(e: rcgen::Error) -> KubeError {
    KubeError::Pki(e.to_string())
}

fn client_params(cn: &str, org: &str) -> Result<rcgen::CertificateParams, KubeError> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    Ok(p)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, KubeError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| KubeError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Makes the PKI and writes it under `dir`.
pub(crate) fn write_pki(dir: &Path) -> Result<Pki, KubeError> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pressure-testkit-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_err)?;

    // The names clients use: 127.0.0.1 from the tests, and the in-cluster names and first service IP
    // a real cluster's certificate carries (nothing routes there; they only keep clients that check
    // them content).
    let mut serving = rcgen::CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "10.96.0.1".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ])
    .map_err(tls_err)?;
    serving
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let serving_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let serving_cert = serving.signed_by(&serving_key, &ca).map_err(tls_err)?;

    // system:masters bypasses RBAC: the admin sets the scene; the binaries under test never get it.
    let admin_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let admin_cert = client_params("pressure-testkit-admin", "system:masters")?
        .signed_by(&admin_key, &ca)
        .map_err(tls_err)?;
    // What kubeadm names the API server's client identity towards kubelets (node proxy).
    let kubelet_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let kubelet_cert = client_params("kube-apiserver-kubelet-client", "system:masters")?
        .signed_by(&kubelet_key, &ca)
        .map_err(tls_err)?;
    // ECDSA P-256 (rcgen's default): kube-apiserver signs service-account tokens with ES256.
    let sa_key = rcgen::KeyPair::generate().map_err(tls_err)?;

    let ca_pem = ca.pem();
    Ok(Pki {
        ca_cert: write(dir, "ca.crt", &ca_pem)?,
        ca_pem,
        serving_cert: write(
            dir,
            "apiserver.crt",
            &format!("{}{}", serving_cert.pem(), ca.pem()),
        )?,
        serving_key: write(dir, "apiserver.key", &serving_key.serialize_pem())?,
        admin_cert: write(dir, "admin.crt", &admin_cert.pem())?,
        admin_key: write(dir, "admin.key", &admin_key.serialize_pem())?,
        kubelet_client_cert: write(dir, "kubelet-client.crt", &kubelet_cert.pem())?,
        kubelet_client_key: write(dir, "kubelet-client.key", &kubelet_key.serialize_pem())?,
        sa_key: write(dir, "sa.key", &sa_key.serialize_pem())?,
        // --service-account-key-file takes public keys (or RSA/EC private keys, not PKCS#8 ones).
        sa_pub: write(dir, "sa.pub", &sa_key.public_key_pem())?,
        ca_der: ca.der().clone(),
        admin_cert_der: admin_cert.der().clone(),
        admin_key_der: admin_key.serialize_der(),
    })
}

/// A self-signed serving certificate for a kubelet stand-in at `ip` (the API server's node proxy does
/// not verify kubelets without `--kubelet-certificate-authority`, as on most clusters).
pub(crate) fn kubelet_serving(
    ip: &str,
) -> Result<
    (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    KubeError,
> {
    let key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let mut params = rcgen::CertificateParams::new(vec![ip.to_owned(), "localhost".to_owned()])
        .map_err(tls_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubelet-stand-in");
    let cert = params.self_signed(&key).map_err(tls_err)?;
    Ok((
        cert.der().clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    ))
}
