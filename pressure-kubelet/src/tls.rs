//! The rustls client configuration of the service account, URL and proxy sources: ring as the one
//! crypto provider, the CA bundle re-read whenever its file changes (the kubelet rotates projected
//! `ca.crt` files in place), or no certificate verification for a kubelet's self-signed serving
//! certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::KubeletError;
use crate::client::FileStamp;

/// Server certificate verification of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verify {
    /// The webpki roots of this PEM file, re-read when it changes.
    CaFile(PathBuf),
    /// The system's trust store (`rustls-platform-verifier`; on Linux the CA bundle of the distribution,
    /// e.g. `/etc/ssl/certs/ca-certificates.crt`), as client-go does without a configured CA.
    System,
    /// Any certificate (a kubelet's self-signed serving certificate); handshake signatures are still
    /// checked.
    Nothing,
}

/// A client configuration with ring, the safe default protocol versions and `verify`.
pub(crate) fn client_config(verify: &Verify) -> Result<rustls::ClientConfig, KubeletError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::CaFile(path) => Arc::new(Verifier {
            algorithms,
            roots: Roots::CaFile(CaFile::new(path.clone(), provider.clone())?),
        }),
        Verify::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                KubeletError::Tls {
                    path: None,
                    reason: format!("the system's trust store: {e}"),
                }
            })?,
        ),
        Verify::Nothing => Arc::new(Verifier {
            algorithms,
            roots: Roots::Any,
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeletError::Tls {
            path: None,
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// Checks the server's certificate against `roots` and the handshake's signatures with the provider's
/// algorithms (also when any certificate is taken: the server must hold the key of the one it sent).
#[derive(Debug)]
struct Verifier {
    algorithms: WebPkiSupportedAlgorithms,
    roots: Roots,
}

#[derive(Debug)]
enum Roots {
    /// The CA bundle of a file.
    CaFile(CaFile),
    /// Any certificate (a kubelet's self-signed serving certificate).
    Any,
}

/// The verifier of a PEM CA bundle, rebuilt when the file's modification time, size or inode changes;
/// a bundle that cannot be read or holds no certificate keeps the previous one (and is logged).
#[derive(Debug)]
struct CaFile {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<FileStamp>, Arc<WebPkiServerVerifier>)>,
}

impl CaFile {
    fn new(path: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, KubeletError> {
        let stamp = FileStamp::of(&path);
        let verifier = load(&path, &provider)?;
        Ok(Self {
            path,
            provider,
            current: Mutex::new((stamp, verifier)),
        })
    }

    fn current(&self) -> Arc<WebPkiServerVerifier> {
        let stamp = FileStamp::of(&self.path);
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stamp.is_some() && stamp != current.0 {
            match load(&self.path, &self.provider) {
                Ok(fresh) => *current = (stamp, fresh),
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the CA bundle read before");
                    current.0 = stamp;
                }
            }
        }
        current.1.clone()
    }
}

/// Reads a PEM CA bundle into a webpki verifier.
fn load(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, KubeletError> {
    let tls = |reason: String| KubeletError::Tls {
        path: Some(path.to_owned()),
        reason,
    };
    let pem = std::fs::read(path).map_err(|source| KubeletError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| tls(format!("not a PEM certificate bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| tls(format!("a certificate is not a usable CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls("holds no certificate".into()));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls(e.to_string()))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.roots {
            Roots::CaFile(file) => file.current().verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Roots::Any => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    /// A CA and a `localhost` certificate it signed.
    fn ca_and_leaf(name: &str) -> (String, CertificateDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (ca.pem(), leaf.der().clone())
    }

    fn verify(v: &Verifier, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("localhost").unwrap();
        v.verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    /// Kubelet-style rotation: the new file renamed over the old one.
    fn rotate(path: &Path, text: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn the_ca_bundle_is_reread_when_it_changes_and_a_bad_one_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        let (ca1, leaf1) = ca_and_leaf("ca-1");
        let (ca2, leaf2) = ca_and_leaf("ca-2");
        std::fs::write(&path, &ca1).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = Verifier {
            algorithms: provider.signature_verification_algorithms,
            roots: Roots::CaFile(CaFile::new(path.clone(), provider).unwrap()),
        };
        verify(&v, &leaf1).expect("signed by the CA in the file");
        let unknown = verify(&v, &leaf2).unwrap_err();
        assert!(
            matches!(
                unknown,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{unknown:?}"
        );

        rotate(&path, &ca2);
        verify(&v, &leaf2).expect("the rotated CA");
        assert!(verify(&v, &leaf1).is_err(), "the old CA is gone");

        // Half-written or empty: the last good bundle stays.
        rotate(&path, "");
        verify(&v, &leaf2).expect("the last good CA");
        rotate(&path, "-----BEGIN CERTIFICATE-----\nnot base64\n");
        verify(&v, &leaf2).expect("the last good CA");
        std::fs::remove_file(&path).unwrap();
        verify(&v, &leaf2).expect("the last good CA while the file is away");

        // A bundle of both.
        rotate(&path, &format!("{ca1}{ca2}"));
        verify(&v, &leaf1).expect("either CA");
        verify(&v, &leaf2).expect("either CA");
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "# nothing here\n").unwrap();
        let e = client_config(&Verify::CaFile(path.clone())).unwrap_err();
        assert!(
            matches!(&e, KubeletError::Tls { path: Some(p), .. } if *p == path),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("TLS {}: holds no certificate", path.display())
        );
        let missing = dir.path().join("missing.crt");
        let e = client_config(&Verify::CaFile(missing.clone())).unwrap_err();
        assert!(
            matches!(&e, KubeletError::Read { path, .. } if *path == missing),
            "{e:?}"
        );
    }
}
