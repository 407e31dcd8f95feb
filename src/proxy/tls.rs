//! TLS on both sides, from the PEM files the policy read (`policy::TlsFiles`): the listener's
//! rustls configuration (TLS 1.2 and 1.3, rustls's default cipher suites over ring, ALPN `h2` and
//! `http/1.1`, optional client certificates), built once per policy snapshot so a rotated
//! Secret serves new connections as soon as the watcher reloads it; the server handshake itself,
//! run by `conn.rs` after a connection was admitted and within the header timeout; and the CA
//! list an `https://` upstream is verified against. It reads no file and keeps no state.

use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::tls::Acceptor;
use pingora::protocols::Stream;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::tls::CaType;
use pingora::utils::tls::WrappedX509;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::policy::{PemFile, TlsFiles};

/// The listener's TLS configuration of one policy snapshot, and what `/status` shows of it.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// Subject of the leaf certificate (RFC 4514 form).
    pub subject: String,
    /// The leaf certificate's notAfter, Unix seconds.
    pub not_after: i64,
    /// Hex SHA-256 of the leaf certificate's DER (what `openssl x509 -fingerprint -sha256` shows).
    pub sha256: String,
    /// Clients must present a certificate signed by `tls.client_ca_file`.
    pub client_auth: bool,
    /// Hex SHA-256 over the certificate, key and client CA files' bytes: equal when nothing
    /// changed.
    pub files_sha256: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("sha256", &self.sha256)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// ALPN identifiers, in our order of preference.
const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(f: &PemFile) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(&f.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", f.path.display()))
}

impl ServerTls {
    /// The listener configuration for `files` (`None` when the policy has no `tls:`). `h2`:
    /// offer HTTP/2 by ALPN (else `http/1.1` only).
    pub fn build(files: &TlsFiles, h2: bool) -> Result<Option<Arc<Self>>, String> {
        let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
            return Ok(None);
        };
        let chain = certificates(cert)?;
        let Some(leaf) = chain.first() else {
            return Err(format!("{}: no certificate", cert.path.display()));
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("{}: leaf certificate: {e}", cert.path.display()))?;
        let subject = parsed.subject().to_string();
        let not_after = parsed.validity().not_after.timestamp();
        let sha256 = crate::policy::sha256_hex(leaf.as_ref());
        let private = PrivateKeyDer::from_pem_slice(&key.bytes)
            .map_err(|e| format!("{}: {e}", key.path.display()))?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certificates(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", ca.path.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, private)
            .map_err(|e| format!("{} with {}: {e}", cert.path.display(), key.path.display()))?;
        config.alpn_protocols = if h2 {
            vec![H2.to_vec(), HTTP11.to_vec()]
        } else {
            vec![HTTP11.to_vec()]
        };
        let mut all = Vec::new();
        for f in [&files.cert, &files.key, &files.client_ca]
            .into_iter()
            .flatten()
        {
            all.extend_from_slice(f.sha256.as_bytes());
        }
        Ok(Some(Arc::new(Self {
            config: Arc::new(config),
            subject,
            not_after,
            sha256,
            client_auth: files.client_ca.is_some(),
            files_sha256: crate::policy::sha256_hex(&all),
        })))
    }
}

/// The CAs an `https://` upstream's certificate must chain to (`upstream_tls.ca_file`), in the
/// form Pingora's connector takes; `None`: the system roots.
pub fn upstream_ca(files: &TlsFiles) -> Result<Option<Arc<CaType>>, String> {
    let Some(ca) = &files.upstream_ca else {
        return Ok(None);
    };
    let mut list = Vec::new();
    let mut check = RootCertStore::empty();
    for c in certificates(ca)? {
        // Pingora parses these again when it connects, and panics on what does not parse:
        // refuse it here instead, as a configuration error.
        x509_parser::parse_x509_certificate(c.as_ref())
            .map_err(|e| format!("{}: {e}", ca.path.display()))?;
        check
            .add(c.clone())
            .map_err(|e| format!("{}: {e}", ca.path.display()))?;
        list.push(WrappedX509::new(
            c.as_ref().to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    Ok(Some(Arc::from(list.into_boxed_slice())))
}

/// Why a client's TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client closed before sending a byte (a TCP health check, a port scan).
    Closed,
    /// Not within the header timeout.
    Timeout,
    /// The client sent something that is not a TLS handshake we accept (wrong version, no
    /// common cipher, a certificate our client CA did not sign, plain HTTP ...).
    Failed(String),
}

/// The server side of a handshake on an accepted connection, within `within`.
pub async fn accept(
    stream: Stream,
    tls: &ServerTls,
    within: Duration,
) -> Result<Stream, HandshakeError> {
    // Pingora's listener hands plain connections over as its L4 stream.
    let mut l4 = stream
        .into_any()
        .downcast::<L4Stream>()
        .map_err(|_| HandshakeError::Failed("not a TCP stream".into()))?;
    let acceptor = Acceptor::from_server_config(tls.config.clone());
    let handshake = async {
        use pingora::protocols::Peek as _;
        // A connection closed before its first byte is no failed handshake.
        if l4.try_peek(&mut [0u8; 1]).await.is_err() {
            return Err(HandshakeError::Closed);
        }
        acceptor
            .tls_handshake(*l4)
            .await
            .map_err(|e| HandshakeError::Failed(e.to_string()))
    };
    match tokio::time::timeout(within, handshake).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HandshakeError::Timeout),
    }
}
