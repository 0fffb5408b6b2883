//! Syslog over TLS (RFC 5425): a source's TCP listener with `tls = { cert, key, client_ca }`
//! completes a TLS handshake before its frames are read (the same octet-counted or LF framing
//! as plain TCP). rustls with ring, TLS 1.3 and 1.2.
//!
//! ```text
//!  start: read cert, key (and client_ca) ─▶ PEM? key matches cert? ─▶ Acceptor
//!                                 no ─▶ refused at start, naming the source and the file
//!  TCP conn ─▶ handshake (10 s at most) ─ fails ─▶ haven_ingest_tls_handshake_failures_total{school}
//!                 └─ ok ─▶ frames as plain TCP          (the listener goes on either way)
//! ```
//! With `client_ca`, the sender must present a certificate that CA signed: how a school's
//! system proves it is that school's beyond reaching the listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::config::TlsSpec;

/// How long a sender has to complete the handshake: a connection that never does holds a
/// task and a socket, so it is closed (and counted) at this limit.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a source's TLS could not be set up; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct TlsError {
    pub file: PathBuf,
    pub reason: String,
}

fn error(file: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError { file: file.to_owned(), reason: reason.to_string() }
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|e| error(file, format!("cannot read: {e}")))
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(file)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(file, format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(error(file, "no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
    }
    Ok(certificates)
}

/// The acceptor for a source's TLS listener, or why not.
pub fn acceptor(spec: &TlsSpec) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let chain = certificates(&spec.cert)?;
    let key_pem = read(&spec.key)?;
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| error(&spec.key, format!("not a PEM private key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| error(&spec.cert, e))?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => builder.with_client_cert_verifier(client_verifier(ca_file, provider)?),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| error(&spec.key, format!("does not go with the certificate {}: {e}", spec.cert.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn client_verifier(
    ca_file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca_file)? {
        roots.add(certificate).map_err(|e| error(ca_file, format!("not a usable CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| error(ca_file, format!("not usable to verify clients: {e}")))
}
