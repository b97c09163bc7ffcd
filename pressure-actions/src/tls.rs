//! The one rustls crypto provider of the process: ring.

/// Installs ring as the process's rustls crypto provider unless one is installed already.
///
/// reqwest is built without a provider of its own (`rustls-no-provider`: its default would be
/// aws-lc-rs) and object_store signs with ring, so ring is the only provider compiled in (issue 19);
/// kube-rs uses it too. Every HTTP client this crate builds, object_store's included, calls this first.
pub(crate) fn install_ring() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
