//! Splitting a request-target (RFC 9112 §3.2) into what the derived components need, without
//! normalising anything: `@path` and `@query` are the bytes the client sent.

/// The four request-target forms, borrowed from the request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/path?query`
    Origin {
        path: &'a str,
        query: Option<&'a str>,
    },
    /// `scheme://authority/path?query`
    Absolute {
        scheme: &'a str,
        authority: &'a str,
        path: &'a str,
        query: Option<&'a str>,
    },
    /// `host:port` (CONNECT)
    Authority(&'a str),
    /// `*` (OPTIONS)
    Asterisk,
}

impl<'a> Target<'a> {
    pub fn parse(target: &'a str) -> Option<Self> {
        if target == "*" {
            return Some(Target::Asterisk);
        }
        if target.starts_with('/') {
            let (path, query) = split_query(target);
            return Some(Target::Origin { path, query });
        }
        if let Some((scheme, rest)) = target.split_once("://") {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            {
                return None;
            }
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path_query) = rest.split_at(end);
            let (path, query) = split_query(path_query);
            return Some(Target::Absolute {
                scheme,
                authority,
                path,
                query,
            });
        }
        if !target.is_empty() && !target.contains(['/', '?', '#', ' ']) {
            return Some(Target::Authority(target));
        }
        None
    }

    /// `@path`: the path, `/` when empty (RFC 9421 §2.2.6).
    pub fn path(&self) -> Option<&'a str> {
        match *self {
            Target::Origin { path, .. } | Target::Absolute { path, .. } => {
                Some(if path.is_empty() { "/" } else { path })
            }
            _ => None,
        }
    }

    /// The query without its `?`; `None` when the target has none.
    pub fn query(&self) -> Option<&'a str> {
        match *self {
            Target::Origin { query, .. } | Target::Absolute { query, .. } => query,
            _ => None,
        }
    }
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    // A fragment never reaches a server; if one does, it is part of neither path nor query.
    let s = s.split_once('#').map_or(s, |(a, _)| a);
    match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    }
}

/// `@authority` normalisation (RFC 9421 §2.2.3 → RFC 9110 §4.2.3): host lowercased, the
/// scheme's default port dropped.
pub fn normalize_authority(authority: &str, scheme: &str, out: &mut String) {
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let a = match default_port {
        Some(p) if authority.ends_with(p) => &authority[..authority.len() - p.len()],
        _ => authority,
    };
    // userinfo is deprecated in http(s) URIs and is not part of the authority a server sees.
    let a = a.rsplit_once('@').map_or(a, |(_, host)| host);
    out.extend(a.chars().map(|c| c.to_ascii_lowercase()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Target::parse("/path?param=value"),
            Some(Target::Origin {
                path: "/path",
                query: Some("param=value")
            })
        );
        assert_eq!(
            Target::parse("https://www.example.com/path?param=value"),
            Some(Target::Absolute {
                scheme: "https",
                authority: "www.example.com",
                path: "/path",
                query: Some("param=value")
            })
        );
        assert_eq!(
            Target::parse("www.example.com:80"),
            Some(Target::Authority("www.example.com:80"))
        );
        assert_eq!(Target::parse("*"), Some(Target::Asterisk));
        assert_eq!(Target::parse(""), None);
        assert_eq!(Target::parse("no spaces/allowed"), None);
    }

    #[test]
    fn path_and_query() {
        let t = Target::parse("https://example.com").unwrap();
        assert_eq!(t.path(), Some("/"));
        assert_eq!(t.query(), None);
        let t = Target::parse("/p?").unwrap();
        assert_eq!(t.query(), Some(""));
        assert_eq!(
            Target::parse("/a%2Fb?x=%20").unwrap().path(),
            Some("/a%2Fb")
        );
    }

    #[test]
    fn authority_normalisation() {
        let n = |a: &str, s: &str| {
            let mut o = String::new();
            normalize_authority(a, s, &mut o);
            o
        };
        assert_eq!(n("WWW.Example.COM", "https"), "www.example.com");
        assert_eq!(n("example.com:443", "https"), "example.com");
        assert_eq!(n("example.com:443", "http"), "example.com:443");
        assert_eq!(n("example.com:80", "HTTP"), "example.com");
        assert_eq!(n("example.com:8080", "http"), "example.com:8080");
        assert_eq!(n("[::1]:443", "https"), "[::1]");
    }
}
