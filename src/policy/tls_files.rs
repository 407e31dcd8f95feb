//! The PEM files the policy names — the listener's certificate chain, private key and client CA
//! bundle (`tls:`) and the upstream's CA bundle (`upstream_tls.ca_file`) — read when the policy
//! is loaded, so that a change to any of them is a policy change (the watcher reloads it; the
//! last good set stays in force when the new one is bad) and a missing, empty or wrong file is a
//! configuration error at its key's line. It checks that each file holds what it should
//! (certificates; exactly one private key); building TLS configurations is `crate::proxy::tls`.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ConfigError;
use super::file::PolicyFile;
use super::read_limited;
use super::yaml::{Node, Pos, Value};

/// One PEM file as read. Its `Debug` shows the path and a digest, never the bytes (one of
/// these is a private key).
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemFile")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Every PEM file the policy names, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `tls.cert_file`: the listener's chain, leaf first.
    pub cert: Option<PemFile>,
    /// `tls.key_file`.
    pub key: Option<PemFile>,
    /// `tls.client_ca_file`.
    pub client_ca: Option<PemFile>,
    /// `upstream_tls.ca_file`.
    pub upstream_ca: Option<PemFile>,
}

impl TlsFiles {
    /// The paths to watch.
    pub fn paths(&self) -> Vec<PathBuf> {
        [&self.cert, &self.key, &self.client_ca, &self.upstream_ca]
            .into_iter()
            .flatten()
            .map(|f| f.path.clone())
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Holds {
    Certificates,
    PrivateKey,
}

/// Reads and checks the files `file` names; relative paths are relative to `base` (the
/// policy's directory). Errors go to `errors` at the position of the key that names the file.
pub(crate) fn gather(
    file: &PolicyFile,
    root: &Node,
    base: &Path,
    file_name: &str,
    errors: &mut Vec<ConfigError>,
) -> TlsFiles {
    let mut read = |keys: [&str; 2], name: Option<&str>, holds: Holds| -> Option<PemFile> {
        let name = name?;
        let path = base.join(name);
        let key_path = keys.join(".");
        let result = read_limited(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|bytes| check(&bytes, holds).map(|()| bytes))
            .map_err(|e| format!("{}: {e}", path.display()));
        match result {
            Ok(bytes) => Some(PemFile {
                sha256: super::sha256_hex(&bytes),
                path,
                bytes,
            }),
            Err(message) => {
                let pos = position(root, &keys);
                errors.push(ConfigError {
                    file: file_name.to_string(),
                    line: pos.line,
                    col: pos.col,
                    path: key_path,
                    message,
                });
                None
            }
        }
    };
    let tls = file.tls.as_ref();
    let files = TlsFiles {
        cert: read(
            ["tls", "cert_file"],
            tls.map(|t| t.cert_file.as_str()),
            Holds::Certificates,
        ),
        key: read(
            ["tls", "key_file"],
            tls.map(|t| t.key_file.as_str()),
            Holds::PrivateKey,
        ),
        client_ca: read(
            ["tls", "client_ca_file"],
            tls.and_then(|t| t.client_ca_file.as_deref()),
            Holds::Certificates,
        ),
        upstream_ca: read(
            ["upstream_tls", "ca_file"],
            file.upstream_tls.ca_file.as_deref(),
            Holds::Certificates,
        ),
    };
    if let (Some(cert), Some(key)) = (&files.cert, &files.key)
        && let Err(message) = key_matches(cert, key)
    {
        let pos = position(root, &["tls", "key_file"]);
        errors.push(ConfigError {
            file: file_name.to_string(),
            line: pos.line,
            col: pos.col,
            path: "tls.key_file".into(),
            message,
        });
    }
    files
}

/// The private key is the one of the chain's first (leaf) certificate, of a type rustls signs
/// with.
fn key_matches(cert: &PemFile, key: &PemFile) -> Result<(), String> {
    let chain = CertificateDer::pem_slice_iter(&cert.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let private = PrivateKeyDer::from_pem_slice(&key.bytes).map_err(|e| e.to_string())?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, private, &provider)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} does not go with the first certificate of {}: {e}",
                key.path.display(),
                cert.path.display()
            )
        })
}

fn check(bytes: &[u8], holds: Holds) -> Result<(), String> {
    match holds {
        Holds::Certificates => {
            let mut n = 0usize;
            for c in CertificateDer::pem_slice_iter(bytes) {
                c.map_err(|e| format!("not a PEM certificate file: {e}"))?;
                n += 1;
            }
            if n == 0 {
                return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into());
            }
        }
        Holds::PrivateKey => {
            PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_string()
                }
                e => format!("not a PEM private key file: {e}"),
            })?;
        }
    }
    Ok(())
}

/// Where `keys` (a path of mapping keys from the root) is written; the document start if absent.
fn position(root: &Node, keys: &[&str]) -> Pos {
    let mut node = root;
    for k in keys {
        let Value::Map(entries) = &node.value else {
            return node.pos;
        };
        match entries
            .iter()
            .find(|(key, _)| key.value == Value::Str((*k).into()))
        {
            Some((_, v)) => node = v,
            None => return node.pos,
        }
    }
    node.pos
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ3Rlc3Q=\n-----END CERTIFICATE-----\n";

    #[test]
    fn each_file_must_hold_what_its_key_says() {
        assert!(check(CERT.as_bytes(), Holds::Certificates).is_ok());
        let e = check(b"hello", Holds::Certificates).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = check(CERT.as_bytes(), Holds::PrivateKey).unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGVsZXBoYW50\n-----END PRIVATE KEY-----\n";
        assert!(check(key.as_bytes(), Holds::PrivateKey).is_ok());
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let f = PemFile {
            path: "k.pem".into(),
            bytes: b"SECRET".to_vec(),
            sha256: "ab".into(),
        };
        assert!(!format!("{f:?}").contains("SECRET"));
    }
}
