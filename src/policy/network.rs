//! Addresses: `listen`, `admin_listen`, `upstream` (plain or TLS, typed) and `trusted_proxies`.
//! Parsing only; nothing binds or connects here.

use std::net::SocketAddr;

/// The legacy backend. `"host:port"` and `"http://host:port"` are plain; `"https://…"` is TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Server name for TLS; empty when `host` is an IP address (SNI carries names only).
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
        let sni = if host.parse::<std::net::IpAddr>().is_ok() {
            String::new()
        } else {
            host.to_ascii_lowercase()
        };
        Ok(Upstream {
            tls,
            host,
            port,
            sni,
        })
    }
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
