//! `routes:`: path-prefix (and optional method) rules, first match wins, and the per-request
//! lookup. Matching never trusts an unusual path as written: a path with dot segments, doubled
//! slashes or percent-escapes is also matched in normalized form and the stricter route wins, so
//! `/health/../api/x` cannot borrow `/health`'s `off`. It does not decide what a mode means.

use super::error::Diag;
use super::reader::{MapReader, boolean, choice, index, list, string};
use super::types::Mode;
use super::yaml::{Node, Pos};
use http::Method;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Starts with `/`; matched as a byte prefix of the request path (Nginx prefix semantics).
    pub path_prefix: String,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    pub mode: Mode,
    /// `None`: the top-level `dry_run`.
    pub dry_run: Option<bool>,
    /// Where the route was written, for messages.
    pub pos: Pos,
}

impl Route {
    fn matches(&self, method: &Method, path: &str) -> bool {
        path.starts_with(self.path_prefix.as_str())
            && self.methods.as_ref().is_none_or(|ms| ms.contains(method))
    }
}

/// The outcome of a route lookup: which rule applied and what it says. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRef<'a> {
    /// Index into `routes`; `None` for the top-level default.
    pub index: Option<usize>,
    /// `None` for the top-level default.
    pub route: Option<&'a Route>,
    pub mode: Mode,
    pub dry_run: bool,
}

/// First match wins; unmatched requests get `(default_mode, default_dry_run)`.
pub(crate) fn lookup<'a>(
    routes: &'a [Route],
    default_mode: Mode,
    default_dry_run: bool,
    method: &Method,
    path: &str,
) -> RouteRef<'a> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let find = |p: &str| {
        let hit = routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(method, p));
        match hit {
            Some((i, r)) => RouteRef {
                index: Some(i),
                route: Some(r),
                mode: r.mode,
                dry_run: r.dry_run.unwrap_or(default_dry_run),
            },
            None => RouteRef {
                index: None,
                route: None,
                mode: default_mode,
                dry_run: default_dry_run,
            },
        }
    };
    let raw = find(path);
    if is_plain(path) {
        return raw;
    }
    let norm = find(&normalize(path));
    // Stricter wins; on a tie prefer the one that does not dry-run.
    if (norm.mode, !norm.dry_run) > (raw.mode, !raw.dry_run) {
        norm
    } else {
        raw
    }
}

/// True for the common path that needs no normalization: one pass, no allocation.
fn is_plain(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev_slash = false;
    for &c in b {
        match c {
            b'%' => return false,
            b'/' | b'.' if prev_slash => return false,
            _ => {}
        }
        prev_slash = c == b'/';
    }
    true
}

/// Decode percent-escapes, collapse `//`, resolve `.` and `..` (RFC 3986 §5.2.4).
fn normalize(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut s = String::from("/");
    s.push_str(&out.join("/"));
    if trailing && !out.is_empty() {
        s.push('/');
    }
    s
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(crate) fn parse(d: &mut Diag, node: &Node, path: &str) -> Vec<Route> {
    let mut out = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let rp = index(path, i);
        let Some(m) = MapReader::new(d, item, &rp, &super::schema::children("routes[]")) else {
            continue;
        };
        let prefix = match m.get("path_prefix") {
            Some((n, p)) => string(d, n, &p).and_then(|s| {
                if s.starts_with('/') {
                    Some(s.to_string())
                } else {
                    d.err(
                        n.pos,
                        &p,
                        format!("path_prefix must start with `/`, got {s:?}"),
                    );
                    None
                }
            }),
            None => {
                d.err(item.pos, &rp, "missing `path_prefix`");
                None
            }
        };
        let mode = match m.get("mode") {
            Some((n, p)) => super::parse_mode(d, n, &p),
            None => {
                d.err(item.pos, &rp, "missing `mode` (off | hybrid | required)");
                None
            }
        };
        let methods = m
            .get_some("methods")
            .and_then(|(n, p)| parse_methods(d, n, &p));
        let dry_run = m.get_some("dry_run").and_then(|(n, p)| boolean(d, n, &p));
        if let (Some(path_prefix), Some(mode)) = (prefix, mode) {
            out.push(Route {
                path_prefix,
                methods,
                mode,
                dry_run,
                pos: item.pos,
            });
        }
    }
    out
}

fn parse_methods(d: &mut Diag, n: &Node, path: &str) -> Option<Vec<Method>> {
    let items = list(d, n, path)?;
    if items.is_empty() {
        d.err(
            n.pos,
            path,
            "an empty methods list matches nothing; omit `methods` to match every method",
        );
        return None;
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        let Some(s) = string(d, item, &ip) else {
            continue;
        };
        if METHODS.contains(&s) {
            out.extend(Method::from_bytes(s.as_bytes()).ok());
        } else if METHODS.contains(&s.to_ascii_uppercase().as_str()) {
            d.err(
                item.pos,
                &ip,
                format!(
                    "methods are case-sensitive: write {:?}",
                    s.to_ascii_uppercase()
                ),
            );
        } else {
            let _ = choice(d, item, &ip, &METHODS.map(|m| (m, ())));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, methods: Option<&[&str]>, mode: Mode) -> Route {
        Route {
            path_prefix: prefix.into(),
            methods: methods.map(|ms| {
                ms.iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
                    .collect()
            }),
            mode,
            dry_run: None,
            pos: Pos::default(),
        }
    }

    fn table() -> Vec<Route> {
        vec![
            route("/health", None, Mode::Off),
            route("/api/", Some(&["POST", "PUT", "DELETE"]), Mode::Required),
            route("/api/", None, Mode::Hybrid),
        ]
    }

    #[test]
    fn first_match_wins_and_unmatched_uses_default() {
        let t = table();
        let m = |method: Method, p: &str| lookup(&t, Mode::Hybrid, false, &method, p);
        assert_eq!(m(Method::GET, "/health").index, Some(0));
        assert_eq!(m(Method::GET, "/healthz").mode, Mode::Off);
        assert_eq!(m(Method::POST, "/api/x").mode, Mode::Required);
        assert_eq!(m(Method::GET, "/api/x").index, Some(2));
        assert_eq!(m(Method::PATCH, "/api/x?y=1").index, Some(2));
        let d = m(Method::GET, "/other");
        assert_eq!((d.index, d.mode, d.dry_run), (None, Mode::Hybrid, false));
    }

    #[test]
    fn odd_paths_cannot_borrow_a_weaker_route() {
        let t = table();
        let m = |p: &str| lookup(&t, Mode::Hybrid, false, &Method::POST, p).mode;
        assert_eq!(m("/health/../api/x"), Mode::Required);
        assert_eq!(m("/health/%2e%2e/api/x"), Mode::Required);
        assert_eq!(m("//api/x"), Mode::Required);
        assert_eq!(m("/health%2f..%2fapi/x"), Mode::Required);
        assert_eq!(m("/health/./"), Mode::Off);
        assert_eq!(normalize("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(normalize("%"), "/%");
    }

    #[test]
    fn route_dry_run_inherits_unless_set() {
        let mut t = table();
        t[1].dry_run = Some(true);
        assert!(lookup(&t, Mode::Hybrid, false, &Method::POST, "/api/a").dry_run);
        assert!(lookup(&t, Mode::Hybrid, true, &Method::GET, "/health").dry_run);
    }
}
