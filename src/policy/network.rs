//! Addresses: `listen`, `admin_listen`, `upstream` (plain or TLS, typed), `upstream_tls` and
//! `trusted_proxies`. Parsing only; nothing binds or connects here, and no file is read (the CA
//! file's bytes are read with the other PEM files, `tls_files.rs`).

use std::net::SocketAddr;

use super::error::Diag;
use super::reader::{MapReader, opt_string};
use super::yaml::Node;

/// The legacy backend. `"host:port"` and `"http://host:port"` are plain; `"https://…"` is TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// The name a TLS upstream's certificate is checked against: the host as written (lower
    /// case), an IP address included (then matched against the certificate's IP SANs; rustls
    /// sends no SNI for an address). Empty for a plain upstream. Never empty over TLS: Pingora's
    /// connector skips certificate verification altogether for an empty name.
    pub sni: String,
}

impl Upstream {
    /// Resolve once at start; a name that does not resolve is a configuration error.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        use std::net::ToSocketAddrs as _;
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("upstream {}: {e}", self.address()))?
            .next()
            .ok_or_else(|| format!("upstream {}: no address", self.address()))
    }

    /// `host:port` as a connector wants it (brackets restored for IPv6).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.address()
        )
    }
}

impl std::str::FromStr for Upstream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{s:?}: {why}; expected \"host:port\", \"http://host:port\" or \"https://host:port\""
            )
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(bad("unsupported scheme"));
        } else {
            (false, s)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "an upstream is an address, without path, query or user",
            ));
        }
        let auth: http::uri::Authority = rest.parse().map_err(|_| bad("not a valid address"))?;
        let host = auth
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match (auth.port_u16(), s.contains("://")) {
            (Some(p), _) => p,
            (None, true) => {
                if tls {
                    443
                } else {
                    80
                }
            }
            (None, false) => return Err(bad("missing port")),
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        let sni = if tls {
            host.to_ascii_lowercase()
        } else {
            String::new()
        };
        Ok(Upstream {
            tls,
            host,
            port,
            sni,
        })
    }
}

/// `upstream_tls:` — how an `https://` upstream is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM bundle of the CAs that may sign the upstream's certificate; `None`: the system roots.
    pub ca_file: Option<String>,
    /// Name checked against the certificate (and sent as SNI when it is a DNS name) instead of
    /// the upstream's host: for an upstream reached by address whose certificate names a host.
    pub server_name: Option<String>,
}

pub(crate) fn parse_upstream_tls(d: &mut Diag, n: &Node, path: &str) -> UpstreamTls {
    let mut t = UpstreamTls::default();
    let Some(m) = MapReader::new(d, n, path, &["ca_file", "server_name"]) else {
        return t;
    };
    if let Some((n, p)) = m.get("ca_file") {
        t.ca_file = opt_string(d, n, &p).filter(|s| {
            let ok = !s.is_empty();
            if !ok {
                d.err(n.pos, &p, "empty path");
            }
            ok
        });
    }
    if let Some((n, p)) = m.get("server_name") {
        t.server_name = opt_string(d, n, &p).and_then(|s| {
            let lower = s.to_ascii_lowercase();
            match rustls::pki_types::ServerName::try_from(lower.as_str()) {
                Ok(_) => Some(lower),
                Err(_) => {
                    d.err(
                        n.pos,
                        &p,
                        format!("{s:?} is not a DNS name or an IP address"),
                    );
                    None
                }
            }
        });
    }
    t
}

pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an IP:PORT address (e.g. \"0.0.0.0:8080\" or \"[::]:8080\"; host names are not resolved here)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        let u: Upstream = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.sni.as_str()),
            (false, "127.0.0.1", 8081, "")
        );
        let u: Upstream = "https://Backend.internal:8443".parse().unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.sni.as_str()),
            (true, "Backend.internal", 8443, "backend.internal")
        );
        let u: Upstream = "https://backend".parse().unwrap();
        assert_eq!(u.port, 443);
        // An address over TLS is still checked: against the certificate's IP SANs.
        let u: Upstream = "https://127.0.0.1:8443".parse().unwrap();
        assert_eq!(u.sni, "127.0.0.1");
        let u: Upstream = "http://backend:80".parse().unwrap();
        assert_eq!(u.sni, "");
        let u: Upstream = "http://[::1]:9000".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.address()),
            ("::1", "[::1]:9000".to_string())
        );
        for bad in [
            "backend",
            "ftp://h:1",
            "http://h:1/path",
            "h:0",
            ":80",
            "h:99999",
            "http://u@h:1",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }
}
