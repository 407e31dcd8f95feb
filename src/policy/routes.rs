//! `routes:`: path-prefix (and optional method) rules, first match wins, and the per-request
//! lookup; `route_matching:`, how leniently the backend is assumed to read paths. Matching never
//! trusts an unusual path as written: a path with percent-escapes, dot segments, doubled
//! slashes, backslashes, `;` segment parameters or trailing dots is also matched under every way
//! a lenient backend may read it (decoded once or more, `\` as `/`, parameters dropped, dots
//! resolved, trailing dots and spaces dropped as Windows does, and case-folded unless
//! `route_matching.case_insensitive: false`), and the strictest route found wins, so neither
//! `/health/../api/x` nor `/health/..;/admin`, `/%2561dmin` or `/ADMIN` can borrow a weaker
//! route. The path sent upstream is never changed here. It does not decide what a mode means.

use super::error::Diag;
use super::reader::{MapReader, boolean, choice, index, list, string};
use super::schema;
use super::types::Mode;
use super::yaml::{Node, Pos};
use http::Method;
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Starts with `/`; matched as a byte prefix of the request path (Nginx prefix semantics).
    pub path_prefix: String,
    /// `None`: any method. A route listing `GET` also matches `HEAD` (backends serve HEAD with
    /// their GET handler).
    pub methods: Option<Vec<Method>>,
    pub mode: Mode,
    /// `None`: the top-level `dry_run`.
    pub dry_run: Option<bool>,
    /// Where the route was written, for messages.
    pub pos: Pos,
}

/// `route_matching:` — what the backend behind the proxy may do with a path, so a route cannot
/// be escaped by a spelling the backend reads as another path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatching {
    /// Also match path prefixes and methods ignoring ASCII case (IIS, Express, Windows file
    /// servers treat `/ADMIN` as `/admin`). Default true; set false only for a backend known to
    /// be case-sensitive, when `/Admin` must not get `/admin`'s mode.
    pub case_insensitive: bool,
}

impl Default for RouteMatching {
    fn default() -> Self {
        Self {
            case_insensitive: true,
        }
    }
}

impl Route {
    /// The prefix (compared on bytes; ASCII case ignored when `fold`) and the method.
    fn matches(&self, method: &Method, path: &[u8], fold: bool) -> bool {
        let p = self.path_prefix.as_bytes();
        let prefix = path.len() >= p.len()
            && if fold {
                path[..p.len()].eq_ignore_ascii_case(p)
            } else {
                path.starts_with(p)
            };
        prefix && self.method_matches(method, fold)
    }

    fn method_matches(&self, method: &Method, fold: bool) -> bool {
        let Some(ms) = &self.methods else {
            return true;
        };
        let same = |a: &str, b: &str| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let m = method.as_str();
        ms.iter()
            .any(|r| same(r.as_str(), m) || (*r == Method::GET && same("HEAD", m)))
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

/// At most this many readings of one path are matched; a path with more (only a hostile one
/// gets there) is given the strictest mode the default or any route for its method could give.
const MAX_READINGS: usize = 48;
/// And at most this many bytes of readings (the request line may be up to 1 MiB long).
const MAX_READING_BYTES: usize = 128 * 1024;

/// First match wins; unmatched requests get `(default_mode, default_dry_run)`. The strictest
/// result over every reading of the path (see the module doc) is returned.
pub(crate) fn lookup<'a>(
    routes: &'a [Route],
    default_mode: Mode,
    default_dry_run: bool,
    matching: RouteMatching,
    method: &Method,
    path: &str,
) -> RouteRef<'a> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let at = |i: Option<usize>| match i.and_then(|i| routes.get(i).map(|r| (i, r))) {
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
    };
    let ci = matching.case_insensitive;
    let mut best = at(find(routes, method, path.as_bytes(), false));
    let mut consider = |r: RouteRef<'a>| {
        // Stricter wins; on a tie prefer the one that does not dry-run, then the earlier.
        if (r.mode, !r.dry_run) > (best.mode, !best.dry_run) {
            best = r;
        }
    };
    if ci {
        consider(at(find(routes, method, path.as_bytes(), true)));
    }
    if is_plain(path) {
        return best;
    }
    match readings(path.as_bytes()) {
        Some(all) => {
            for p in &all {
                consider(at(find(routes, method, p, false)));
                if ci {
                    consider(at(find(routes, method, p, true)));
                }
            }
        }
        None => {
            // Too many readings: fail closed, as strict as the default or any route for this
            // method could be.
            consider(at(None));
            for (i, r) in routes.iter().enumerate() {
                if r.method_matches(method, ci) {
                    consider(at(Some(i)));
                }
            }
        }
    }
    best
}

/// First route matching `path` (exactly, or ignoring ASCII case when `fold`).
fn find(routes: &[Route], method: &Method, path: &[u8], fold: bool) -> Option<usize> {
    routes.iter().position(|r| r.matches(method, path, fold))
}

/// True for the common path that needs no other reading: one pass, no allocation. Not plain:
/// anything not starting with `/`, `%`, `\`, `;`, `//`, a segment starting with `.`, and a
/// segment ending with `.`.
fn is_plain(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') || b.last() == Some(&b'.') {
        return false;
    }
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'%' | b'\\' | b';' => return false,
            b'/' | b'.' if prev == b'/' => return false,
            b'/' if prev == b'.' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

/// One way of reading a path that some backend uses.
type Step = fn(&[u8]) -> Vec<u8>;
const STEPS: [Step; 5] = [
    decode_once,
    backslash_as_slash,
    drop_segment_params,
    drop_trailing_dots,
    remove_dot_segments,
];

/// Every path reachable from `raw` by any sequence of [`STEPS`] (raw included), or `None` when
/// there are more than [`MAX_READINGS`] or they add up to more than [`MAX_READING_BYTES`].
/// Breadth first, each distinct reading once.
fn readings(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    if raw.len() > MAX_READING_BYTES {
        return None;
    }
    let mut seen: HashSet<Vec<u8>> = HashSet::from([raw.to_vec()]);
    let mut all = vec![raw.to_vec()];
    let mut bytes = raw.len();
    let mut next = 0;
    while next < all.len() {
        for step in STEPS {
            let r = step(&all[next]);
            if seen.contains(&r) {
                continue;
            }
            bytes += r.len();
            if all.len() == MAX_READINGS || bytes > MAX_READING_BYTES {
                return None;
            }
            seen.insert(r.clone());
            all.push(r);
        }
        next += 1;
    }
    Some(all)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// One round of percent-decoding: `%XX`, IIS's `%uXXXX` (ASCII only), and the overlong UTF-8
/// forms of ASCII (`%c0%ae` is `.` to a lenient decoder).
fn decode_once(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' {
            if let (Some(h), Some(l)) = (
                p.get(i + 1).copied().and_then(hex),
                p.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            if matches!(p.get(i + 1), Some(b'u' | b'U')) {
                let v = p
                    .get(i + 2..i + 6)
                    .filter(|q| q.iter().all(|c| hex(*c).is_some()))
                    .map(|q| {
                        q.iter()
                            .fold(0u32, |a, c| a * 16 + u32::from(hex(*c).unwrap_or(0)))
                    });
                if let Some(v) = v.filter(|v| *v < 0x80) {
                    out.push(v as u8);
                    i += 6;
                    continue;
                }
            }
        }
        out.push(p[i]);
        i += 1;
    }
    // Overlong two-byte UTF-8 for ASCII (0xC0/0xC1 lead bytes never appear in valid UTF-8).
    let mut folded = Vec::with_capacity(out.len());
    let mut j = 0;
    while j < out.len() {
        match (out[j], out.get(j + 1)) {
            (lead @ (0xC0 | 0xC1), Some(&cont)) if cont & 0xC0 == 0x80 => {
                folded.push(((lead & 0x1F) << 6) | (cont & 0x3F));
                j += 2;
            }
            (b, _) => {
                folded.push(b);
                j += 1;
            }
        }
    }
    folded
}

/// `\` read as `/` (IIS, Windows file servers, some Java and Node stacks).
fn backslash_as_slash(p: &[u8]) -> Vec<u8> {
    p.iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect()
}

/// `;params` cut from every segment (Tomcat, Jetty, Spring: `/health/..;/admin` is `/admin`).
fn drop_segment_params(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut in_params = false;
    for &b in p {
        match b {
            b'/' => {
                in_params = false;
                out.push(b);
            }
            b';' => in_params = true,
            _ if in_params => {}
            _ => out.push(b),
        }
    }
    out
}

/// Trailing dots and spaces cut from every segment but `.` and `..` (Windows: `/admin./` is
/// `/admin/`).
fn drop_trailing_dots(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for (i, seg) in p.split(|b| *b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        if seg == b"." || seg == b".." {
            out.extend_from_slice(seg);
            continue;
        }
        let keep = seg
            .iter()
            .rposition(|b| *b != b'.' && *b != b' ')
            .map_or(0, |k| k + 1);
        out.extend_from_slice(&seg[..keep]);
    }
    out
}

/// Collapse `//`, resolve `.` and `..` (RFC 3986 §5.2.4); the result starts with `/`.
fn remove_dot_segments(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in p.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = p.ends_with(b"/") || p.ends_with(b"/.") || p.ends_with(b"/..");
    let mut s = vec![b'/'];
    s.extend_from_slice(&out.join(&b'/'));
    if trailing && !out.is_empty() {
        s.push(b'/');
    }
    s
}

/// `route_matching:`.
pub(crate) fn parse_matching(d: &mut Diag, node: &Node, path: &str) -> RouteMatching {
    let mut m = RouteMatching::default();
    let Some(r) = MapReader::new(d, node, path, &schema::children("route_matching")) else {
        return m;
    };
    if let Some((n, p)) = r.get("case_insensitive") {
        m.case_insensitive = boolean(d, n, &p).unwrap_or(m.case_insensitive);
    }
    m
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

    const CI: RouteMatching = RouteMatching {
        case_insensitive: true,
    };
    const CS: RouteMatching = RouteMatching {
        case_insensitive: false,
    };

    fn m<'a>(t: &'a [Route], method: Method, p: &str) -> RouteRef<'a> {
        lookup(t, Mode::Hybrid, false, CI, &method, p)
    }

    #[test]
    fn first_match_wins_and_unmatched_uses_default() {
        let t = table();
        assert_eq!(m(&t, Method::GET, "/health").index, Some(0));
        assert_eq!(m(&t, Method::GET, "/healthz").mode, Mode::Off);
        assert_eq!(m(&t, Method::POST, "/api/x").mode, Mode::Required);
        assert_eq!(m(&t, Method::GET, "/api/x").index, Some(2));
        assert_eq!(m(&t, Method::PATCH, "/api/x?y=1").index, Some(2));
        let d = m(&t, Method::GET, "/other");
        assert_eq!((d.index, d.mode, d.dry_run), (None, Mode::Hybrid, false));
    }

    #[test]
    fn odd_paths_cannot_borrow_a_weaker_route() {
        let t = table();
        let mode = |p: &str| m(&t, Method::POST, p).mode;
        assert_eq!(mode("/health/../api/x"), Mode::Required);
        assert_eq!(mode("/health/%2e%2e/api/x"), Mode::Required);
        assert_eq!(mode("//api/x"), Mode::Required);
        assert_eq!(mode("/health%2f..%2fapi/x"), Mode::Required);
        assert_eq!(mode("/health/./"), Mode::Off);
        assert_eq!(remove_dot_segments(b"/a/./b/../c//d/"), b"/a/c/d/");
        assert_eq!(remove_dot_segments(b"%"), b"/%");
    }

    /// Issue 12 case 4: every spelling a lenient backend reads as `/admin` gets `/admin`'s mode.
    #[test]
    fn lenient_readings_get_the_strictest_route() {
        let t = vec![
            route("/health", None, Mode::Off),
            route("/admin", None, Mode::Required),
            route("/static/", None, Mode::Off),
        ];
        let escapes = [
            "/ADMIN",
            "/Admin/x",
            "/%41dmin/x",
            "/health/..;/admin",
            "/health\\..\\admin",
            "/health%5c..%5cadmin",
            "/%2561dmin",
            "/%252561dmin",
            "/health/%252e%252e/admin",
            "/health;x/../admin",
            "/;x/admin",
            "/static/..%c0%af..%c0%afadmin",
            "/static/%u002e%u002e/admin",
            "/health/x/..%2f..%2fadmin",
            "/static/..%5c/ADMIN;jsessionid=1",
            "admin",
            "/health/%2e%2e%2fadmin",
        ];
        for p in escapes {
            assert_eq!(m(&t, Method::GET, p).mode, Mode::Required, "{p}");
        }
        // Ordinary paths keep their route, and nothing allocates for them.
        for (p, want) in [
            ("/health", Mode::Off),
            ("/healthz/live", Mode::Off),
            ("/static/app.v1.js", Mode::Off),
            ("/static/a%20b.png", Mode::Off),
            ("/static/x;v=2", Mode::Off),
            ("/other", Mode::Hybrid),
        ] {
            assert_eq!(m(&t, Method::GET, p).mode, want, "{p}");
        }
        assert!(is_plain("/static/app.v1.js") && is_plain("/a/b/c/"));
        for p in ["/a/.", "/a./b", "/a;b", "/a\\b", "/a%41", "//a", "a", "/a."] {
            assert!(!is_plain(p), "{p}");
        }
    }

    #[test]
    fn case_sensitive_backends_can_opt_out_of_folding() {
        let t = vec![route("/admin", None, Mode::Required)];
        let cs = |p: &str| lookup(&t, Mode::Hybrid, false, CS, &Method::GET, p).mode;
        assert_eq!(cs("/ADMIN"), Mode::Hybrid);
        assert_eq!(cs("/%41dmin"), Mode::Hybrid);
        // Everything but case still counts.
        assert_eq!(cs("/health/..;/admin"), Mode::Required);
        assert_eq!(cs("/%2561dmin"), Mode::Required);
        assert_eq!(m(&t, Method::GET, "/%41dmin").mode, Mode::Required);
    }

    #[test]
    fn methods_match_in_any_case_and_get_covers_head() {
        let t = vec![route("/api/", Some(&["GET", "POST"]), Mode::Required)];
        let method = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        for verb in ["GET", "HEAD", "POST", "post", "Get", "head"] {
            assert_eq!(m(&t, method(verb), "/api/x").mode, Mode::Required, "{verb}");
        }
        assert_eq!(m(&t, Method::PUT, "/api/x").mode, Mode::Hybrid);
        let cs = |v: &str| lookup(&t, Mode::Hybrid, false, CS, &method(v), "/api/x").mode;
        assert_eq!((cs("HEAD"), cs("post")), (Mode::Required, Mode::Hybrid));
    }

    #[test]
    fn too_many_readings_fail_closed() {
        let t = vec![
            route("/health", None, Mode::Off),
            route("/admin", Some(&["POST"]), Mode::Required),
        ];
        let hostile = format!("/health/{}", "%25252541;a\\b./%2e/".repeat(40));
        assert!(readings(hostile.as_bytes()).is_none());
        assert_eq!(m(&t, Method::POST, &hostile).mode, Mode::Required);
        assert_eq!(m(&t, Method::GET, &hostile).mode, Mode::Hybrid);
        let long = format!("/health/{}%20", "a".repeat(200_000));
        assert_eq!(m(&t, Method::POST, &long).mode, Mode::Required);
    }

    #[test]
    fn decoding_steps() {
        assert_eq!(decode_once(b"/%41%2541%u0041%c0%ae%"), b"/A%41A.%");
        assert_eq!(decode_once(b"%u00"), b"%u00");
        assert_eq!(drop_segment_params(b"/a;x=1/b;/;c"), b"/a/b/");
        assert_eq!(drop_trailing_dots(b"/a./b . /../."), b"/a/b/../.");
        assert_eq!(backslash_as_slash(b"\\a\\b"), b"/a/b");
    }

    #[test]
    fn route_dry_run_inherits_unless_set() {
        let mut t = table();
        t[1].dry_run = Some(true);
        assert!(lookup(&t, Mode::Hybrid, false, CI, &Method::POST, "/api/a").dry_run);
        assert!(lookup(&t, Mode::Hybrid, true, CI, &Method::GET, "/health").dry_run);
    }
}
