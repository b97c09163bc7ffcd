//! TLS of the fake API server: a throw-away CA and a server certificate for localhost.

use std::sync::Arc;

use crate::apiserver::FakeApiError;

/// Makes a CA and a server certificate for localhost / 127.0.0.1; returns the TLS config and CA PEM.
pub(crate) fn make_tls() -> Result<(Arc<rustls::ServerConfig>, String), FakeApiError> {
    let e = |e: &dyn std::fmt::Display| FakeApiError::Tls(e.to_string());
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|x| e(&x))?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-apiserver-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().map_err(|x| e(&x))?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|x| e(&x))?;
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|x| e(&x))?;
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-apiserver");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().map_err(|x| e(&x))?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(|x| e(&x))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| e(&x))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .map_err(|x| e(&x))?;
    // HTTP/1.1 only (the server speaks nothing else); kubectl, which would take h2, falls back to it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca.pem()))
}
