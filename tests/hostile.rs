//! The attack suite (issue 12): the release-shaped binary behind a byte-recording upstream,
//! attacked over raw sockets by someone who has read our code and the RFCs. By class: identity
//! forgery, framing and smuggling, route interpretation, signature games, limits, override
//! headers, slow clients. Every attack asserts what the upstream received — its bytes, framing,
//! targets and identity headers — not only the status; and the upstream itself flags anything a
//! strict server would refuse or could read two ways (bare CR/LF, obs-fold, CL with TE, two
//! Content-Lengths, malformed chunks): `violations()` must stay empty.
//!
//! One proxy process serves `attacks` (its cases run in parallel on their own paths); the
//! tests that need other limits start their own.
//!
//! Failed on main before the own request path (pingora-core) landed, pass since:
//! `case2_pipelined_request_after_a_large_signed_body`, `case3_slow_clients_are_closed`,
//! `case3_connection_cap`, `case6_overflowing_chunk_size_is_a_client_error`, and
//! `expect_continue_refused_at_once` (found here: a refused `Expect: 100-continue` request was
//! answered only once the client gave up waiting and sent its body).
//!
//! Case 7 (Redis hung) is tested by the replay work package (tests/replay_redis.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "hostile/upstream.rs"]
mod raw_upstream;
#[path = "hostile/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use common::sidecar::{
    ACTIVE, ACTIVE_CLIENT, Case, REVOKED, Sidecar, add_headers, replace, run_cases, unix_now,
};
use raw_upstream::{Framing, RawUpstream, Seen};
use wire::{Exchange, Wire, exchange};

const POLICY: &str = "mode: hybrid
routes:
  - { path_prefix: /health, mode: off }
  - { path_prefix: /static/, mode: off }
  - { path_prefix: /admin, mode: required }
  - { path_prefix: /api/, methods: [GET, POST, PUT, DELETE], mode: required }
  - { path_prefix: /dry/, mode: required, dry_run: true }
signature:
  max_body_bytes: 65536
";

const CLIENT_ID: &str = "x-datafold-client-id";
const KEY_ID: &str = "x-datafold-key-id";
const AUTH_METHOD: &str = "x-datafold-auth-method";

/// Give a wrongly forwarded request time to reach the upstream before asserting it did not.
fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

/// Every value the backend would read as header `name`, counting `_` spellings (CGI, PHP,
/// nginx with underscores_in_headers) as the same header.
fn as_backend_reads(s: &Seen, name: &str) -> Vec<String> {
    let want = name.to_ascii_lowercase().replace('_', "-");
    s.headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == want)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The upstream saw exactly one identity: ours, for a verified signature.
fn assert_verified_identity(s: &Seen) {
    assert_eq!(
        as_backend_reads(s, CLIENT_ID),
        [ACTIVE_CLIENT],
        "{:?}",
        s.headers
    );
    assert_eq!(as_backend_reads(s, KEY_ID), [ACTIVE], "{:?}", s.headers);
    assert_eq!(
        as_backend_reads(s, AUTH_METHOD),
        ["signature"],
        "{:?}",
        s.headers
    );
}

/// The upstream saw no identity but the auth method we set (`legacy` or `none`).
fn assert_no_identity(s: &Seen, method: &str) {
    assert!(as_backend_reads(s, CLIENT_ID).is_empty(), "{:?}", s.headers);
    assert!(as_backend_reads(s, KEY_ID).is_empty(), "{:?}", s.headers);
    assert_eq!(
        as_backend_reads(s, AUTH_METHOD),
        [method],
        "{:?}",
        s.headers
    );
}

/// A raw request: `lines` joined with CRLF, then an empty line, then `body`.
fn raw(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut v = lines.join("\r\n").into_bytes();
    v.extend_from_slice(b"\r\n\r\n");
    v.extend_from_slice(body);
    v
}

/// The head of a raw request without its empty line, and its body.
fn split(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (raw[..i].to_vec(), raw[i + 4..].to_vec())
}

/// Replace the value of header `name` in a raw request (which must have it).
fn set_header(raw: &[u8], name: &str, value: &str) -> Vec<u8> {
    let (head, body) = split(raw);
    let head = String::from_utf8(head).unwrap();
    let mut found = false;
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|l| match l.split_once(':') {
            Some((k, _)) if k.eq_ignore_ascii_case(name) => {
                found = true;
                format!("{k}: {value}")
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(found, "{name} not in request");
    let mut v = lines.join("\r\n").into_bytes();
    v.extend_from_slice(b"\r\n\r\n");
    v.extend_from_slice(&body);
    v
}

/// Drop header `name` from a raw request.
fn drop_header(raw: &[u8], name: &str) -> Vec<u8> {
    let (head, body) = split(raw);
    let head = String::from_utf8(head).unwrap();
    let lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .collect();
    let mut v = lines.join("\r\n").into_bytes();
    v.extend_from_slice(b"\r\n\r\n");
    v.extend_from_slice(&body);
    v
}

/// A 4xx (or 5xx) answer and nothing under `prefix` at the upstream.
fn assert_refused(ex: &Exchange, up: &RawUpstream, prefix: &str) {
    assert!(
        ex.responses.iter().all(|r| r.status >= 400) || ex.responses.is_empty() && ex.closed,
        "{prefix}: want a refusal, got {:?}",
        ex.statuses()
    );
    settle();
    let got = up.under(prefix);
    assert!(got.is_empty(), "{prefix} reached the upstream: {got:?}");
}

struct Env {
    sc: Sidecar,
    up: RawUpstream,
}

impl Env {
    fn start(policy: &str) -> Self {
        let up = RawUpstream::start();
        let sc = Sidecar::start(up.addr, policy);
        Env { sc, up }
    }

    fn host(&self) -> String {
        format!("Host: {}", self.sc.addr)
    }

    fn sign(&self, method: &str, path: &str, body: Option<&[u8]>, args: &[&str]) -> Vec<u8> {
        self.sc.sign(ACTIVE, method, path, body, args)
    }

    fn send(&self, bytes: &[u8]) -> Exchange {
        exchange(self.sc.addr, bytes)
    }
}

#[test]
fn attacks() {
    let env = Env::start(POLICY);
    let e = &env;
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.extend(identity_forgery(e));
    cases.extend(framing(e));
    cases.extend(routes(e));
    cases.extend(signature_games(e));
    cases.extend(limits(e));
    cases.extend(override_headers(e));
    run_cases(cases);
    let v = e.up.violations();
    assert!(
        v.is_empty(),
        "the upstream received what a strict server refuses: {v:#?}"
    );
    assert!(
        e.sc.audit().len() > 50,
        "audit lines: {}",
        e.sc.audit().len()
    );
    let mut sc = env.sc;
    assert!(sc.alive(), "the proxy died under attack");
}

// ---------------------------------------------------------------------------------------------
// Identity forgery
// ---------------------------------------------------------------------------------------------

fn identity_forgery(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    c.push((
        "identity: every spelling stripped from a legacy request",
        Box::new(move || {
            let spellings = [
                "X-DataFold-Client-Id: evil",
                "x-datafold-client-id: evil",
                "X_DataFold_Client_Id: evil",
                "X-DATAFOLD-CLIENT-ID: evil",
                "x_datafold-client_id: evil",
                "X-DataFold-Key-Id: evil",
                "X_DATAFOLD_KEY_ID: evil",
                "X-DataFold-Auth-Method: signature",
                "X-DataFold-Auth_Method: signature",
            ];
            let mut lines = vec!["GET /id/spellings HTTP/1.1".to_owned(), e.host()];
            lines.extend(spellings.iter().map(|s| s.to_string()));
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let ex = e.send(&raw(&lines, b""));
            assert_eq!(ex.only().status, 200);
            let s = e.up.wait_under("/id/spellings", 1);
            assert_no_identity(&s[0], "legacy");
            assert!(!e.up.contains_bytes(b"evil\r\n"));
        }),
    ));
    c.push((
        "identity: forged copies beside a verified signature, and Connection naming ours",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/id-beside", None, &[]);
            let forged = add_headers(
                &signed,
                &[
                    "X-DataFold-Client-Id: evil",
                    "X_DataFold_Client_Id: evil",
                    "Connection: keep-alive, X-DataFold-Client-Id, x-datafold-key-id, X-DataFold-Auth-Method",
                ],
            );
            let ex = e.send(&forged);
            assert_eq!(ex.only().status, 200, "{:?}", String::from_utf8_lossy(&ex.only().body));
            let s = e.up.wait_under("/admin/id-beside", 1);
            assert_verified_identity(&s[0]);
            for v in s[0].all("connection") {
                assert!(!v.to_ascii_lowercase().contains("datafold"), "Connection: {v}");
            }
        }),
    ));
    c.push((
        "identity: obs-fold cannot smuggle a header line",
        Box::new(move || {
            let req = raw(
                &[
                    "GET /id/fold HTTP/1.1",
                    &e.host(),
                    "X-Note: a",
                    " X-DataFold-Client-Id: evil-fold",
                ],
                b"",
            );
            let ex = e.send(&req);
            settle();
            // Refused, or forwarded with the fold gone: never a line starting with whitespace.
            for s in e.up.under("/id/fold") {
                assert_no_identity(&s, "legacy");
                assert!(!s.head.windows(3).any(|w| w == b"\n X"), "{s:?}");
            }
            assert!(!ex.responses.is_empty() || ex.closed);
        }),
    ));
    c.push((
        "identity: bare LF and bare CR line ends",
        Box::new(move || {
            let lf = format!(
                "GET /id/lf HTTP/1.1\n{}\nX-DataFold-Client-Id: evil-lf\n\n",
                e.host()
            );
            let ex = e.send(lf.as_bytes());
            assert!(!ex.responses.is_empty() || ex.closed);
            let cr = format!(
                "GET /id/cr HTTP/1.1\r\n{}\r\nX-Note: a\rX-DataFold-Client-Id: evil-cr\r\n\r\n",
                e.host()
            );
            let ex = e.send(cr.as_bytes());
            assert!(!ex.responses.is_empty() || ex.closed);
            settle();
            for s in e.up.under("/id/lf").into_iter().chain(e.up.under("/id/cr")) {
                assert_no_identity(&s, "legacy");
            }
            assert!(!e.up.contains_bytes(b"evil-cr"), "a bare CR went upstream");
        }),
    ));
    c.push((
        "identity: forged in chunked trailers",
        Box::new(move || {
            let req = raw(
                &["POST /id/trailer HTTP/1.1", &e.host(), "Transfer-Encoding: chunked", "Trailer: X-DataFold-Client-Id"],
                b"5\r\nhello\r\n0\r\nX-DataFold-Client-Id: evil-trailer\r\nX_DataFold_Key_Id: evil-trailer\r\n\r\n",
            );
            let ex = e.send(&req);
            assert_eq!(ex.only().status, 200);
            let s = e.up.wait_under("/id/trailer", 1);
            assert_no_identity(&s[0], "legacy");
            assert_eq!(s[0].body, b"hello");
            assert!(!e.up.contains_bytes(b"evil-trailer"), "a trailer carried an identity upstream");
        }),
    ));
    c.push((
        "identity: verified on a signed request, auth method legacy on unsigned hybrid, none on off",
        Box::new(move || {
            let ex = e.send(&e.sign("GET", "/id/signed-hybrid", None, &[]));
            assert_eq!(ex.only().status, 200);
            assert_verified_identity(&e.up.wait_under("/id/signed-hybrid", 1)[0]);
            let ex = e.send(&raw(
                &["GET /health/id HTTP/1.1", &e.host(), "X-DataFold-Auth-Method: signature"],
                b"",
            ));
            assert_eq!(ex.only().status, 200);
            assert_no_identity(&e.up.wait_under("/health/id", 1)[0], "none");
        }),
    ));
    c.push((
        "identity: dry run lets a bad signature through without any identity",
        Box::new(move || {
            let signed = e.sign("GET", "/dry/bad", None, &[]);
            let bad = add_headers(
                &replace(&signed, "GET /dry/bad", "GET /dry/bad?tampered"),
                &[
                    "X-DataFold-Client-Id: evil",
                    "X-HTTP-Method-Override: DELETE",
                ],
            );
            let ex = e.send(&bad);
            assert_eq!(ex.only().status, 200);
            let s = &e.up.wait_under("/dry/bad", 1)[0];
            assert_no_identity(s, "legacy");
            assert!(as_backend_reads(s, "x-http-method-override").is_empty());
            let ex = e.send(&e.sign("GET", "/dry/good", None, &[]));
            assert_eq!(ex.only().status, 200);
            assert_verified_identity(&e.up.wait_under("/dry/good", 1)[0]);
        }),
    ));
    c.push((
        "identity: X-Forwarded-* from an untrusted client are replaced",
        Box::new(move || {
            let ex = e.send(&raw(
                &[
                    "GET /id/xff HTTP/1.1",
                    &e.host(),
                    "X-Forwarded-For: 10.0.0.1",
                    "X-Forwarded-Proto: https",
                    "X-Forwarded-Host: admin.internal",
                    "X_Forwarded_For: 10.0.0.2",
                ],
                b"",
            ));
            assert_eq!(ex.only().status, 200);
            let s = &e.up.wait_under("/id/xff", 1)[0];
            assert_eq!(s.all("x-forwarded-for"), ["127.0.0.1"], "{:?}", s.headers);
            assert_eq!(s.all("x-forwarded-proto"), ["http"]);
            assert!(s.all("x-forwarded-host").is_empty());
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Framing and smuggling
// ---------------------------------------------------------------------------------------------

/// The smuggled request every framing attack tries to get past the gate.
fn smuggled(e: &Env, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\n{}\r\nX-DataFold-Client-Id: smuggler\r\n\r\n",
        e.host()
    )
}

/// Nothing under `/admin/smuggled` and no forged identity ever reached the upstream as a
/// request. (An unsigned body streams: a malformed one may leave the upstream a cut request, as
/// a client hanging up would; that is not smuggling.)
fn assert_not_smuggled(e: &Env, prefix: &str) {
    settle();
    let got = e.up.under("/admin/smuggled");
    assert!(got.is_empty(), "{prefix}: smuggled past the gate: {got:?}");
    let forged: Vec<Seen> =
        e.up.seen()
            .into_iter()
            .filter(|s| s.head.windows(8).any(|w| w == b"smuggler"))
            .collect();
    assert!(
        forged.is_empty(),
        "{prefix}: a head carried the forged identity: {forged:?}"
    );
}

fn framing(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    let cl_te = |name: &'static str, path: &'static str, te: &'static str| -> Case<'_> {
        (
            name,
            Box::new(move || {
                let sm = smuggled(e, "/admin/smuggled");
                let chunked = format!("0\r\n\r\n{sm}");
                let req = raw(
                    &[
                        &format!("POST {path} HTTP/1.1"),
                        &e.host(),
                        &format!("Content-Length: {}", chunked.len()),
                        te,
                    ],
                    chunked.as_bytes(),
                );
                let _ = e.send(&req);
                assert_not_smuggled(e, path);
                // Whatever was forwarded has one framing and the body the proxy framed.
                for s in e.up.under(path) {
                    assert!(
                        s.all("content-length").len() + s.all("transfer-encoding").len() <= 1,
                        "{s:?}"
                    );
                }
            }),
        )
    };
    c.push(cl_te(
        "framing: CL + TE chunked",
        "/frame/clte1",
        "Transfer-Encoding: chunked",
    ));
    c.push(cl_te(
        "framing: CL + TE ' chunked'",
        "/frame/clte2",
        "Transfer-Encoding:  chunked",
    ));
    c.push(cl_te(
        "framing: CL + TE 'chunked, identity'",
        "/frame/clte3",
        "Transfer-Encoding: chunked, identity",
    ));
    c.push(cl_te(
        "framing: CL + TE 'xchunked'",
        "/frame/clte4",
        "Transfer-Encoding: xchunked",
    ));
    c.push(cl_te(
        "framing: CL + TE 'CHUNKED'",
        "/frame/clte5",
        "Transfer-Encoding: CHUNKED",
    ));
    c.push(cl_te(
        "framing: CL + 'Transfer_Encoding'",
        "/frame/clte6",
        "Transfer_Encoding: chunked",
    ));
    c.push(cl_te(
        "framing: CL + 'Transfer-Encoding :' (space before the colon)",
        "/frame/clte8",
        "Transfer-Encoding : chunked",
    ));
    c.push(cl_te(
        "framing: CL + TE with a vertical tab",
        "/frame/clte9",
        "Transfer-Encoding:\x0bchunked",
    ));
    c.push(cl_te(
        "framing: CL + TE identity",
        "/frame/clte7",
        "Transfer-Encoding: identity",
    ));
    c.push((
        "framing: TE then CL (order swapped), TE in two lines",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            let body = format!("0\r\n\r\n{sm}");
            let req = raw(
                &[
                    "POST /frame/te2 HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: gzip",
                    "Transfer-Encoding: chunked",
                    &format!("Content-Length: {}", body.len()),
                ],
                body.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/te2");
        }),
    ));
    c.push((
        "framing: two different Content-Lengths",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            let req = raw(
                &[
                    "POST /frame/dupcl HTTP/1.1",
                    &e.host(),
                    "Content-Length: 0",
                    &format!("Content-Length: {}", sm.len()),
                ],
                sm.as_bytes(),
            );
            let ex = e.send(&req);
            assert!(
                ex.statuses().first().is_none_or(|s| *s == 400),
                "{:?}",
                ex.statuses()
            );
            assert_not_smuggled(e, "/frame/dupcl");
            assert!(e.up.under("/frame/dupcl").is_empty());
            // One field, two values.
            let req = raw(
                &[
                    "POST /frame/dupcl2 HTTP/1.1",
                    &e.host(),
                    &format!("Content-Length: 0, {}", sm.len()),
                ],
                sm.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/dupcl2");
        }),
    ));
    c.push((
        "framing: malformed Content-Length values",
        Box::new(move || {
            for (i, v) in [
                "+5",
                "0x5",
                "5 5",
                "-1",
                "5.0",
                "٥",
                "99999999999999999999999",
            ]
            .iter()
            .enumerate()
            {
                let path = format!("/frame/badcl{i}");
                let req = raw(
                    &[
                        &format!("POST {path} HTTP/1.1"),
                        &e.host(),
                        &format!("Content-Length: {v}"),
                    ],
                    b"hello",
                );
                let ex = e.send(&req);
                assert!(
                    ex.statuses().iter().all(|s| *s >= 400),
                    "CL {v:?}: {:?}",
                    ex.statuses()
                );
                settle();
                assert!(e.up.under(&path).is_empty(), "CL {v:?} went upstream");
            }
        }),
    ));
    c.push((
        "framing: Connection naming Content-Length or Transfer-Encoding",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            for (i, conn) in [
                "Content-Length",
                "Transfer-Encoding",
                "close, Content-Length",
            ]
            .iter()
            .enumerate()
            {
                let path = format!("/frame/hop{i}");
                let req = raw(
                    &[
                        &format!("POST {path} HTTP/1.1"),
                        &e.host(),
                        &format!("Connection: {conn}"),
                        &format!("Content-Length: {}", sm.len()),
                    ],
                    sm.as_bytes(),
                );
                let _ = e.send(&req);
                assert_not_smuggled(e, &path);
                for s in e.up.under(&path) {
                    assert_eq!(s.body, sm.as_bytes(), "{conn}: body reframed");
                }
            }
        }),
    ));
    c.push((
        "framing: chunk extensions, and a quoted one holding CRLF",
        Box::new(move || {
            let req = raw(
                &[
                    "POST /frame/ext HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                b"5;name=value;q=\"x\"\r\nhello\r\n0;last\r\n\r\n",
            );
            let ex = e.send(&req);
            assert_eq!(ex.only().status, 200);
            assert_eq!(e.up.wait_under("/frame/ext", 1)[0].body, b"hello");
            let sm = smuggled(e, "/admin/smuggled");
            let evil = format!("5;a=\"x\r\n0\r\n\r\n{sm}\"\r\nhello\r\n0\r\n\r\n");
            let req = raw(
                &[
                    "POST /frame/ext2 HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                evil.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/ext2");
            // A chunk extension far longer than any real one.
            let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(100_000));
            let req = raw(
                &[
                    "POST /frame/ext3 HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                long.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/ext3");
        }),
    ));
    c.push((
        "framing: bare LF inside chunked framing",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            let body = format!("5\nhello\n0\n\n{sm}");
            let req = raw(
                &[
                    "POST /frame/chunklf HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                body.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/chunklf");
            // Chunk data not followed by CRLF.
            let body = format!("5\r\nhelloXX0\r\n\r\n{sm}");
            let req = raw(
                &[
                    "POST /frame/chunknocrlf HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                body.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/chunknocrlf");
        }),
    ));
    c.push((
        "framing: odd chunk sizes",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            for (i, size) in ["0x5", "+5", " 5", "5 ", "05", "-5", "5\t", "0005"]
                .iter()
                .enumerate()
            {
                let path = format!("/frame/size{i}");
                let body = format!("{size}\r\nhello\r\n0\r\n\r\n{sm}");
                let req = raw(
                    &[
                        &format!("POST {path} HTTP/1.1"),
                        &e.host(),
                        "Transfer-Encoding: chunked",
                    ],
                    body.as_bytes(),
                );
                let _ = e.send(&req);
                assert_not_smuggled(e, &path);
                for s in e.up.under(&path) {
                    assert_eq!(s.body, b"hello", "size {size:?}");
                }
            }
        }),
    ));
    c.push((
        "framing: trailers that name framing fields",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            let body = format!(
                "5\r\nhello\r\n0\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{sm}",
                sm.len()
            );
            let req = raw(
                &[
                    "POST /frame/trailer HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                body.as_bytes(),
            );
            let _ = e.send(&req);
            assert_not_smuggled(e, "/frame/trailer");
        }),
    ));
    c.push((
        "framing: pipelined requests are each judged",
        Box::new(move || {
            let mut bytes = raw(&["GET /frame/pipe/1 HTTP/1.1", &e.host()], b"");
            bytes.extend(raw(
                &[
                    "POST /frame/pipe/2 HTTP/1.1",
                    &e.host(),
                    "Content-Length: 5",
                ],
                b"hello",
            ));
            bytes.extend(raw(&["GET /admin/pipe-unsigned HTTP/1.1", &e.host()], b""));
            bytes.extend(e.sign("GET", "/admin/pipe-signed", None, &[]));
            let ex = e.send(&bytes);
            // Answered in order, each on its own verdict — or answered up to a point and then
            // closed (Pingora's default: pipelined bytes end the connection after response N).
            let want = [200, 200, 401, 200];
            let got = ex.statuses();
            assert!(!got.is_empty() && want.starts_with(&got), "{got:?}");
            assert!(
                got.len() == want.len() || ex.closed,
                "{got:?} and left open"
            );
            settle();
            let seen = e.up.under("/frame/pipe/");
            assert_eq!(seen.len(), got.len().min(2), "{seen:?}");
            if got.len() >= 2 {
                assert_eq!(e.up.under("/frame/pipe/2")[0].body, b"hello");
            }
            if got.len() == 4 {
                assert_verified_identity(&e.up.wait_under("/admin/pipe-signed", 1)[0]);
            }
            assert!(e.up.under("/admin/pipe-unsigned").is_empty());
        }),
    ));
    c.push((
        "framing: a refused request's body never becomes the next request",
        Box::new(move || {
            let sm = smuggled(e, "/health/desync");
            // Unsigned on a required route, Content-Length and chunked.
            let cl = raw(
                &[
                    "POST /admin/desync-cl HTTP/1.1",
                    &e.host(),
                    &format!("Content-Length: {}", sm.len()),
                ],
                sm.as_bytes(),
            );
            let ex = e.send(&cl);
            assert_eq!(ex.statuses(), [401]);
            let chunk = format!("{:x}\r\n{sm}\r\n0\r\n\r\n", sm.len());
            let ch = raw(
                &[
                    "POST /admin/desync-ch HTTP/1.1",
                    &e.host(),
                    "Transfer-Encoding: chunked",
                ],
                chunk.as_bytes(),
            );
            let ex = e.send(&ch);
            assert_eq!(ex.statuses(), [401]);
            // Expect: 100-continue refused; the client sends the body anyway (as curl does after
            // 1 s). Whenever the 401 comes (see `expect_continue_refused_at_once`), the body
            // stays a body.
            let mut w = Wire::open(e.sc.addr);
            w.write(
                format!(
                    "POST /admin/desync-expect HTTP/1.1\r\n{}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                    e.host(),
                    sm.len()
                )
                .as_bytes(),
            );
            let first = w.read_one(Duration::from_secs(1)).map(|r| r.status);
            w.write(sm.as_bytes());
            let rest = w.read_all(Duration::from_secs(2), &[]);
            let all: Vec<u16> = first.into_iter().chain(rest.statuses()).filter(|s| *s != 100).collect();
            assert_eq!(all, [401], "{first:?} then {:?}", rest.statuses());
            // A signed body over max_body_bytes, a request hidden past the first 64 KiB.
            let mut body = vec![b'a'; 66_000];
            body.extend_from_slice(sm.as_bytes());
            let signed = e.sign("POST", "/admin/desync-big", Some(&body), &[]);
            let ex = e.send(&signed);
            assert_eq!(ex.statuses(), [413]);
            settle();
            let got = e.up.under("/health/desync");
            assert!(got.is_empty(), "a refused body was read as a request: {got:?}");
            assert!(e.up.under("/admin/desync").is_empty());
        }),
    ));
    c.push((
        "framing: absolute-form with another Host: what the backend is told matches what was verified",
        Box::new(move || {
            let url = format!("http://{}/admin/absolute-signed", e.sc.addr);
            let signed = common::sidecar::sign_with(
                &e.sc.key_path(ACTIVE),
                ACTIVE,
                "GET",
                &url,
                None,
                &[],
            );
            let abs = replace(
                &set_header(&signed, "Host", "evil.example"),
                "GET /admin/absolute-signed",
                &format!("GET {url}"),
            );
            let ex = e.send(&abs);
            settle();
            for s in e.up.under("/admin/absolute-signed").into_iter().chain(
                e.up.seen()
                    .into_iter()
                    .filter(|s| s.target().contains("/admin/absolute-signed")),
            ) {
                // Verified against the URI's authority: the backend must not be told another.
                assert_eq!(
                    s.all("host"),
                    [e.sc.addr.to_string()],
                    "status {:?}: {:?}",
                    ex.statuses(),
                    s.headers
                );
            }
        }),
    ));
    c.push((
        "identity: hostile X-Request-Id and huge nonces",
        Box::new(move || {
            let ex = e.send(&raw(
                &[
                    "GET /admin/rid HTTP/1.1",
                    &e.host(),
                    "X-Request-Id: \"},\"x\":\"\\",
                ],
                b"",
            ));
            let r = ex.only();
            assert_eq!(r.status, 401);
            assert_eq!(
                r.json()["error"]["code"],
                "SIGNATURE_MISSING",
                "{}",
                String::from_utf8_lossy(&r.body)
            );
            let nonce = "n".repeat(60_000);
            let signed = e.sign("GET", "/admin/bignonce", None, &["--nonce", &nonce]);
            let ex = e.send(&signed);
            assert!(
                ex.statuses().iter().all(|s| *s < 500),
                "{:?}",
                ex.statuses()
            );
            let again = e.send(&signed);
            assert!(
                again.statuses().iter().all(|s| *s != 200),
                "{:?}",
                again.statuses()
            );
        }),
    ));
    c.push((
        "framing: a body that looks like a request stays a body",
        Box::new(move || {
            let sm = smuggled(e, "/admin/smuggled");
            let req = raw(
                &[
                    "POST /frame/bodyreq HTTP/1.1",
                    &e.host(),
                    &format!("Content-Length: {}", sm.len()),
                ],
                sm.as_bytes(),
            );
            let ex = e.send(&req);
            assert_eq!(ex.only().status, 200);
            let s = e.up.wait_under("/frame/bodyreq", 1);
            assert_eq!(
                (s[0].framing.clone(), s[0].body.clone()),
                (Framing::Length(sm.len()), sm.clone().into_bytes())
            );
            assert!(e.up.under("/admin/smuggled").is_empty());
        }),
    ));
    c.push((
        "framing: a signed body is forwarded whole with an exact length, whatever the client framing",
        Box::new(move || {
            let body = b"{\"transfer\":\"100 EUR\",\"to\":\"alice\"}";
            let signed = e.sign("POST", "/admin/chunked-signed", Some(body), &[]);
            let (head, b) = split(&signed);
            let head = String::from_utf8(head).unwrap().replace(&format!("Content-Length: {}\r\n", b.len()), "");
            let mut chunked = format!("{head}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for part in b.chunks(7) {
                chunked.extend(format!("{:x}\r\n", part.len()).as_bytes());
                chunked.extend(part);
                chunked.extend(b"\r\n");
            }
            chunked.extend(b"0\r\n\r\n");
            let ex = e.send(&chunked);
            assert_eq!(ex.only().status, 200, "{}", String::from_utf8_lossy(&ex.only().body));
            let s = &e.up.wait_under("/admin/chunked-signed", 1)[0];
            assert_eq!(s.framing, Framing::Length(body.len()));
            assert_eq!(s.body, body);
            assert!(s.all("transfer-encoding").is_empty());
            assert_verified_identity(s);
        }),
    ));
    c.push((
        "framing: Expect: 100-continue on a signed body",
        Box::new(move || {
            let body = b"continue-me";
            let signed = e.sign("POST", "/admin/expect", Some(body), &[]);
            let (head, b) = split(&signed);
            let mut w = Wire::open(e.sc.addr);
            let mut h = head.clone();
            h.extend(b"\r\nExpect: 100-continue\r\n\r\n");
            w.write(&h);
            let first = w.read_one(Duration::from_secs(5)).expect("no 100 Continue");
            assert_eq!(first.status, 100);
            w.write(&b);
            let r = w.read_one(Duration::from_secs(5)).expect("no final answer");
            assert_eq!(r.status, 200);
            let s = &e.up.wait_under("/admin/expect", 1)[0];
            assert_eq!(s.body, body);
            assert!(
                s.all("expect").is_empty(),
                "Expect went upstream: {:?}",
                s.headers
            );
            assert_verified_identity(s);
        }),
    ));
    c.push((
        "framing: HTTP/1.0, no Host, keep-alive, and HTTP/0.9 / 2.0 request lines",
        Box::new(move || {
            let ex = e.send(b"GET /frame/http10 HTTP/1.0\r\n\r\n");
            assert_eq!(ex.statuses(), [200]);
            let ex = e.send(b"GET /admin/http10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /admin/http10b HTTP/1.0\r\n\r\n");
            assert!(ex.statuses().iter().all(|s| *s == 401), "{:?}", ex.statuses());
            let ex = e.send(b"GET /admin/http09\r\n\r\n");
            assert!(ex.statuses().iter().all(|s| *s >= 400), "{:?}", ex.statuses());
            let ex = e.send(format!("GET /admin/http20 HTTP/2.0\r\n{}\r\n\r\n", e.host()).as_bytes());
            assert!(ex.statuses().iter().all(|s| *s >= 400), "{:?}", ex.statuses());
            settle();
            assert!(e.up.under("/admin/http").is_empty(), "{:?}", e.up.under("/admin/http"));
        }),
    ));
    c.push((
        "framing: absolute-form target is routed on its path",
        Box::new(move || {
            for t in [
                "http://evil.example/admin/absolute",
                "http://evil.example/health/../admin/absolute2",
                "HTTP://127.0.0.1/ADMIN/absolute3",
            ] {
                let ex = e.send(&raw(&[&format!("GET {t} HTTP/1.1"), &e.host()], b""));
                assert!(
                    matches!(ex.only().status, 400 | 401),
                    "{t}: {:?}",
                    ex.statuses()
                );
            }
            settle();
            assert!(
                !e.up
                    .seen()
                    .iter()
                    .any(|s| s.target().contains("/admin/absolute"))
            );
        }),
    ));
    c.push((
        "framing: a refused upgrade leaves the connection HTTP",
        Box::new(move || {
            let mut bytes = raw(
                &[
                    "GET /health/upgrade HTTP/1.1",
                    &e.host(),
                    "Connection: Upgrade",
                    "Upgrade: websocket",
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                ],
                b"",
            );
            bytes.extend(smuggled(e, "/admin/smuggled").as_bytes());
            let _ = e.send(&bytes);
            assert_not_smuggled(e, "/health/upgrade");
            let mut bytes = raw(
                &[
                    "GET /health/h2c HTTP/1.1",
                    &e.host(),
                    "Connection: Upgrade, HTTP2-Settings",
                    "Upgrade: h2c",
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                ],
                b"",
            );
            bytes.extend(smuggled(e, "/admin/smuggled").as_bytes());
            let _ = e.send(&bytes);
            assert_not_smuggled(e, "/health/h2c");
        }),
    ));
    c.push((
        "framing: garbage request lines and field lines",
        Box::new(move || {
            for (i, bad) in [
                "GET  /admin/garbage0 HTTP/1.1",
                "GET\t/admin/garbage1 HTTP/1.1",
                "GET /admin/garbage2 HTTP/1.1 extra",
                "GET /admin/garbage3 http/1.1",
                "GET /admin/garbage4\0 HTTP/1.1",
            ]
            .iter()
            .enumerate()
            {
                let _ = e.send(&raw(&[bad, &e.host()], b""));
                let _ = i;
            }
            for (i, field) in ["X-Foo : bar", "X Foo: bar", ": bar", "X-Foo: a\0b", "X-Foo"]
                .iter()
                .enumerate()
            {
                let path = format!("/admin/badfield{i}");
                let signed = e.sign("GET", &path, None, &[]);
                let ex = e.send(&add_headers(&signed, &[field]));
                settle();
                // A field a strict server refuses must not ride along a verified request.
                for s in e.up.under(&path) {
                    assert!(
                        !s.head.windows(5).any(|w| w == b"X-Foo" || w == b"X Foo"),
                        "{field:?} went upstream"
                    );
                }
                let _ = ex;
            }
            settle();
            assert!(
                e.up.under("/admin/garbage").is_empty(),
                "{:?}",
                e.up.under("/admin/garbage")
            );
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Route interpretation
// ---------------------------------------------------------------------------------------------

fn routes(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    c.push((
        "routes: case 4 escapes of a required /admin",
        Box::new(move || {
            let escapes = [
                "/ADMIN/r1",
                "/Admin/r2",
                "/%41dmin/r3",
                "/health/..;/admin/r4",
                "/health\\..\\admin/r5",
                "/health%5c..%5cadmin/r6",
                "/%2561dmin/r7",
                "/static/..%252fadmin/r8",
                "/static/%2e%2e/admin/r9",
                "/admin;jsessionid=x/r10",
                "/health/..%c0%afadmin/r11",
                "/health/..%5cADMIN/r12",
                "//admin/r13",
                "/./admin/r14",
                "/admin./r15",
                "/health/%u002e%u002e/admin/r16",
            ];
            for p in escapes {
                let ex = e.send(format!("GET {p} HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes());
                assert_eq!(ex.statuses(), [401], "{p}");
            }
            settle();
            let leaked: Vec<String> = e
                .up
                .seen()
                .iter()
                .filter(|s| {
                    s.target().ends_with(|c: char| c.is_ascii_digit()) && s.target().contains("/r")
                })
                .filter(|s| escapes.contains(&s.target()))
                .map(|s| s.target().to_owned())
                .collect();
            assert!(leaked.is_empty(), "escaped: {leaked:?}");
        }),
    ));
    c.push((
        "routes: the upstream gets the target exactly as sent",
        Box::new(move || {
            for p in ["/admin/%41b;x=1/./c%2fd?q=%20&r=/..", "/static/a%20b;v=1"] {
                let ex = e.send(&e.sign("GET", p, None, &[]));
                assert_eq!(
                    ex.only().status,
                    200,
                    "{p}: {}",
                    String::from_utf8_lossy(&ex.only().body)
                );
                let prefix = p.split('?').next().unwrap();
                let s = e.up.wait_under(prefix, 1);
                assert_eq!(s.len(), 1, "{p}");
                assert_eq!(s[0].target(), p);
            }
        }),
    ));
    c.push((
        "routes: methods in other case, HEAD for a GET route",
        Box::new(move || {
            // /api/ is required for GET, POST, PUT, DELETE.
            for (i, m) in ["post", "Post", "HEAD", "head", "gEt"].iter().enumerate() {
                let path = format!("/api/method{i}");
                let mut w = Wire::open(e.sc.addr);
                w.write(
                    format!(
                        "{m} {path} HTTP/1.1\r\n{}\r\nContent-Length: 0\r\n\r\n",
                        e.host()
                    )
                    .as_bytes(),
                );
                let ex = w.read_all(Duration::from_secs(2), &[m.eq_ignore_ascii_case("HEAD")]);
                assert!(
                    ex.statuses().iter().all(|s| *s >= 400),
                    "{m}: {:?}",
                    ex.statuses()
                );
                settle();
                assert!(e.up.under(&path).is_empty(), "{m} {path} escaped");
            }
            // Unlisted methods still take the default (hybrid): a legacy pass.
            let ex = e.send(
                format!("PATCH /api/method-patch HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes(),
            );
            assert_eq!(ex.statuses(), [200]);
        }),
    ));
    c.push((
        "routes: a long hostile path costs a bounded amount and fails closed",
        Box::new(move || {
            let p = format!("/health/{}", "%2525;a\\b./%252e/".repeat(2000));
            let started = Instant::now();
            let ex = e.send(format!("GET {p} HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes());
            assert!(
                ex.statuses().iter().all(|s| *s != 500),
                "{:?}",
                ex.statuses()
            );
            // Not a timing assertion on the proxy: a bound so a hang fails here, not in CI's timeout.
            assert!(started.elapsed() < Duration::from_secs(10));
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Signature games
// ---------------------------------------------------------------------------------------------

fn signature_games(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    let refused = move |bytes: &[u8], prefix: &str, code: &str| {
        let ex = e.send(bytes);
        let r = ex.only();
        assert!(
            r.status == 401 || r.status == 400,
            "{prefix}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if !code.is_empty() {
            assert_eq!(
                r.json()["error"]["code"],
                code,
                "{prefix}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        assert_refused(&ex, &e.up, prefix);
    };
    c.push((
        "case 1: body stripped to Content-Length: 0 (or chunked empty)",
        Box::new(move || {
            let body = b"{\"amount\":100,\"to\":\"mallory\"}xxxx";
            let signed = e.sign("POST", "/admin/strip", Some(body), &[]);
            let stripped = set_header(&signed[..signed.len() - body.len()], "Content-Length", "0");
            refused(&stripped, "/admin/strip", "DIGEST_MISMATCH");
            let mut chunked = drop_header(&signed[..signed.len() - body.len()], "Content-Length");
            chunked = add_headers(&chunked, &["Transfer-Encoding: chunked"]);
            chunked.extend(b"0\r\n\r\n");
            refused(&chunked, "/admin/strip", "DIGEST_MISMATCH");
            // No framing at all: an empty body.
            let none = drop_header(&signed[..signed.len() - body.len()], "Content-Length");
            refused(&none, "/admin/strip", "DIGEST_MISMATCH");
            // On a hybrid route too: a signed request is verified in full.
            let signed = e.sign("POST", "/strip-hybrid", Some(body), &[]);
            let stripped = set_header(&signed[..signed.len() - body.len()], "Content-Length", "0");
            refused(&stripped, "/strip-hybrid", "DIGEST_MISMATCH");
            // And the untouched request still works afterwards (its nonce was not burnt).
            let ex = e.send(&signed);
            assert_eq!(
                ex.only().status,
                200,
                "{}",
                String::from_utf8_lossy(&ex.only().body)
            );
            let s = e.up.wait_under("/strip-hybrid", 1);
            assert_eq!(s[0].body, body);
        }),
    ));
    c.push((
        "signature: body truncated, extended, or replaced",
        Box::new(move || {
            let body = b"0123456789abcdef";
            let signed = e.sign("POST", "/admin/bodyedit", Some(body), &[]);
            let head = &signed[..signed.len() - body.len()];
            let short = [set_header(head, "Content-Length", "8"), body[..8].to_vec()].concat();
            let ex = e.send(&short);
            assert!(
                ex.statuses().first().is_some_and(|s| *s == 401),
                "{:?}",
                ex.statuses()
            );
            let long = [
                set_header(head, "Content-Length", "20"),
                body.to_vec(),
                b"XXXX".to_vec(),
            ]
            .concat();
            refused(&long, "/admin/bodyedit", "DIGEST_MISMATCH");
            let other = [head.to_vec(), b"fedcba9876543210".to_vec()].concat();
            refused(&other, "/admin/bodyedit", "DIGEST_MISMATCH");
            settle();
            assert!(e.up.under("/admin/bodyedit").is_empty());
        }),
    ));
    c.push((
        "signature: a covered Content-Digest, another line appended",
        Box::new(move || {
            let body = b"pay 5";
            let signed = e.sign("POST", "/admin/digest2", Some(body), &[]);
            let other = b"pay 5000";
            let evil = add_headers(
                &[
                    set_header(&signed[..signed.len() - body.len()], "Content-Length", "8"),
                    other.to_vec(),
                ]
                .concat(),
                &[&format!(
                    "Content-Digest: {}",
                    sigproxy::signature::digest::content_digest_header(
                        sigproxy::signature::digest::DigestAlg::Sha256,
                        other
                    )
                )],
            );
            refused(&evil, "/admin/digest2", "");
        }),
    ));
    c.push((
        "signature: replays, sequential and 20 concurrent copies",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/replay", None, &[]);
            assert_eq!(e.send(&signed).only().status, 200);
            let r = e.send(&signed);
            assert_eq!(r.only().json()["error"]["code"], "NONCE_REPLAYED");
            let signed = e.sign("GET", "/admin/replay-race", None, &[]);
            let oks = std::thread::scope(|s| {
                let hs: Vec<_> = (0..20)
                    .map(|_| s.spawn(|| e.send(&signed).statuses()))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|st| st == &[200])
                    .count()
            });
            assert_eq!(oks, 1);
            settle();
            assert_eq!(e.up.under("/admin/replay").len(), 2);
        }),
    ));
    c.push((
        "signature: duplicate labels, label/tag confusion, mismatched Signature label",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/labels", None, &[]);
            let head = String::from_utf8(split(&signed).0).unwrap();
            let si = head
                .lines()
                .find(|l| l.starts_with("Signature-Input:"))
                .unwrap()
                .to_owned();
            let sig = head
                .lines()
                .find(|l| l.starts_with("Signature:"))
                .unwrap()
                .to_owned();
            // The same label twice on two lines: the second must not shadow the first.
            let dup = add_headers(&signed, &[&si.replace("created=", "created=1,x=")]);
            refused(&dup, "/admin/labels", "SIGNATURE_MALFORMED");
            // Signature under another label than Signature-Input.
            let renamed = replace(&signed, &sig, &sig.replace("sig1=", "sig2="));
            refused(&renamed, "/admin/labels", "");
            // A second, bogus signature first in the dictionary: the valid one still wins, and
            // the bogus one gives no identity.
            let extra = replace(
                &signed,
                &si,
                &si.replace(
                    "Signature-Input: ",
                    "Signature-Input: bogus=(\"@method\");created=1;keyid=\"k-revoked\", ",
                ),
            );
            let extra = replace(
                &extra,
                &sig,
                &sig.replace("Signature: ", "Signature: bogus=:AAAA:, "),
            );
            let ex = e.send(&extra);
            assert_eq!(
                ex.only().status,
                200,
                "{}",
                String::from_utf8_lossy(&ex.only().body)
            );
            assert_verified_identity(&e.up.wait_under("/admin/labels", 1)[0]);
        }),
    ));
    c.push((
        "signature: covered field absent, duplicated, or host changed",
        Box::new(move || {
            let signed = e.sign(
                "GET",
                "/admin/fields",
                None,
                &[
                    "-H",
                    "X-Tenant: a",
                    "--components",
                    "@method @authority @path x-tenant",
                ],
            );
            refused(&drop_header(&signed, "X-Tenant"), "/admin/fields", "");
            refused(
                &add_headers(&signed, &["X-Tenant: b"]),
                "/admin/fields",
                "SIGNATURE_INVALID",
            );
            refused(
                &set_header(&signed, "Host", "evil.example"),
                "/admin/fields",
                "SIGNATURE_INVALID",
            );
            refused(
                &add_headers(&signed, &["Host: evil.example"]),
                "/admin/fields",
                "",
            );
            let ex = e.send(&signed);
            assert_eq!(ex.only().status, 200);
        }),
    ));
    c.push((
        "signature: alg confusion, revoked and unknown keys",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/alg", None, &[]);
            for alg in [
                "hmac-sha256",
                "rsa-pss-sha512",
                "ecdsa-p256-sha256",
                "ED25519",
                "none",
            ] {
                refused(
                    &replace(&signed, "alg=\"ed25519\"", &format!("alg=\"{alg}\"")),
                    "/admin/alg",
                    "KEY_ID_MISMATCH",
                );
            }
            let revoked = e.sc.sign(REVOKED, "GET", "/admin/alg", None, &[]);
            refused(&revoked, "/admin/alg", "KEY_REVOKED");
            let unknown = e.sc.sign("k-nobody", "GET", "/admin/alg", None, &[]);
            refused(&unknown, "/admin/alg", "KEY_NOT_FOUND");
        }),
    ));
    c.push((
        "signature: created and expires edges",
        Box::new(move || {
            let now = unix_now();
            let at = |created: i64, extra: &[&str]| {
                let c = format!("--created={created}");
                let mut args = vec![c.as_str()];
                args.extend_from_slice(extra);
                e.sign("GET", "/admin/time", None, &args)
            };
            refused(
                &at(now + 120, &[]),
                "/admin/time",
                "TIMESTAMP_OUT_OF_WINDOW",
            );
            refused(&at(now - 400, &[]), "/admin/time", "TIMESTAMP_TOO_OLD");
            refused(
                &at(now - 100, &["--expires", "10"]),
                "/admin/time",
                "TIMESTAMP_TOO_OLD",
            );
            let signed = e.sign("GET", "/admin/time", None, &[]);
            let text = String::from_utf8_lossy(&signed).into_owned();
            let created = text
                .split("created=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let with = |v: &str| {
                replace(
                    &signed,
                    &format!("created={created}"),
                    &format!("created={v}"),
                )
            };
            // Extremes are judged on time (no overflow), before the signature is even checked.
            refused(
                &with("-999999999999999"),
                "/admin/time",
                "TIMESTAMP_TOO_OLD",
            );
            refused(
                &with("999999999999999"),
                "/admin/time",
                "TIMESTAMP_OUT_OF_WINDOW",
            );
            for bad in ["1.5", "\"1\"", "99999999999999999999", "-0", "1e3"] {
                refused(&with(bad), "/admin/time", "");
            }
            // Within the skew (30 s) is fine.
            let ex = e.send(&at(now + 10, &[]));
            assert_eq!(ex.only().status, 200);
        }),
    ));
    c.push((
        "signature: not covering the query lets it change (policy default); covering it does not",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/query?amount=5", None, &[]);
            refused(
                &replace(&signed, "amount=5", "amount=500"),
                "/admin/query",
                "SIGNATURE_INVALID",
            );
            let path_only = e.sign(
                "GET",
                "/admin/query2?amount=5",
                None,
                &["--components", "@method @authority @path"],
            );
            let ex = e.send(&replace(&path_only, "amount=5", "amount=500"));
            assert_eq!(ex.only().status, 200);
            assert_eq!(
                e.up.wait_under("/admin/query2", 1)[0].target(),
                "/admin/query2?amount=500"
            );
        }),
    ));
    c.push((
        "signature: scheme is ours, not the client's X-Forwarded-Proto",
        Box::new(move || {
            let url = format!("https://{}/admin/scheme", e.sc.addr);
            let signed = common::sidecar::sign_with(
                &e.sc.key_path(ACTIVE),
                ACTIVE,
                "GET",
                &url,
                None,
                &["--components", "@method @target-uri"],
            );
            refused(
                &add_headers(&signed, &["X-Forwarded-Proto: https"]),
                "/admin/scheme",
                "SIGNATURE_INVALID",
            );
        }),
    ));
    c.push((
        "signature: malformed headers of every kind",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/malformed", None, &[]);
            let head = String::from_utf8(split(&signed).0).unwrap();
            let sig = head
                .lines()
                .find(|l| l.starts_with("Signature:"))
                .unwrap()
                .to_owned();
            let si = head
                .lines()
                .find(|l| l.starts_with("Signature-Input:"))
                .unwrap()
                .to_owned();
            for (a, b) in [
                (sig.clone(), "Signature: sig1=:!!!:".to_owned()),
                (sig.clone(), "Signature: sig1=:AAAA:".to_owned()),
                (
                    sig.clone(),
                    format!("Signature: sig1=:{}:", "A".repeat(100_000)),
                ),
                (si.clone(), "Signature-Input: sig1=(".to_owned()),
                (
                    si.clone(),
                    format!(
                        "Signature-Input: sig1=({});created=1;keyid=\"k-active\"",
                        "\"@method\" ".repeat(2000)
                    ),
                ),
                (
                    si.clone(),
                    si.replace(
                        "keyid=\"k-active\"",
                        "keyid=\"k-active\r\nX-DataFold-Client-Id: evil\"",
                    ),
                ),
                (si.clone(), si.replace("\"@method\"", "\"@status\"")),
                (si.clone(), si.replace("\"@method\"", "\"@method\";req")),
                (si.clone(), si.replace("\"@path\"", "\"signature\";tr")),
            ] {
                let bytes = replace(&signed, &a, &b);
                let ex = e.send(&bytes);
                assert!(
                    ex.statuses().iter().all(|s| *s == 400 || *s == 401),
                    "{b:.80}: {:?}",
                    ex.statuses()
                );
            }
            settle();
            assert!(e.up.under("/admin/malformed").is_empty());
        }),
    ));
    c.push((
        "signature: many signatures, many labels: bounded",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/many", None, &[]);
            let mut si = String::from("Signature-Input: ");
            let mut sig = String::from("Signature: ");
            for i in 0..500 {
                si.push_str(&format!(
                    "s{i}=(\"@method\");created=1;keyid=\"k-nobody\", "
                ));
                sig.push_str(&format!("s{i}=:AAAA:, "));
            }
            let bytes = add_headers(
                &signed,
                &[si.trim_end_matches(", "), sig.trim_end_matches(", ")],
            );
            let started = Instant::now();
            let ex = e.send(&bytes);
            assert!(
                ex.statuses().iter().all(|s| *s < 500),
                "{:?}",
                ex.statuses()
            );
            assert!(started.elapsed() < Duration::from_secs(10));
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

fn limits(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    c.push((
        "limits: a signed body over max_body_bytes, announced and not",
        Box::new(move || {
            let body = vec![b'a'; 70_000];
            let signed = e.sign("POST", "/admin/big", Some(&body), &[]);
            let ex = e.send(&signed);
            assert_eq!(ex.statuses(), [413]);
            let (head, b) = split(&signed);
            let head = String::from_utf8(head)
                .unwrap()
                .replace(&format!("Content-Length: {}\r\n", b.len()), "");
            let mut chunked = format!("{head}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for part in b.chunks(8192) {
                chunked.extend(format!("{:x}\r\n", part.len()).as_bytes());
                chunked.extend(part);
                chunked.extend(b"\r\n");
            }
            chunked.extend(b"0\r\n\r\n");
            let ex = e.send(&chunked);
            assert_eq!(ex.statuses(), [413]);
            settle();
            assert!(e.up.under("/admin/big").is_empty());
            assert!(
                e.up.incomplete()
                    .iter()
                    .all(|t| !t.starts_with("/admin/big"))
            );
        }),
    ));
    c.push((
        "limits: a signed body in 60 000 one-byte chunks arrives whole",
        Box::new(move || {
            let body: Vec<u8> = (0..60_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            let signed = e.sign("POST", "/admin/tinychunks", Some(&body), &[]);
            let (head, b) = split(&signed);
            let head = String::from_utf8(head)
                .unwrap()
                .replace(&format!("Content-Length: {}\r\n", b.len()), "");
            let mut chunked = format!("{head}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for byte in &b {
                chunked.extend(b"1\r\n");
                chunked.push(*byte);
                chunked.extend(b"\r\n");
            }
            chunked.extend(b"0\r\n\r\n");
            let ex = e.send(&chunked);
            assert_eq!(ex.statuses(), [200]);
            let s = &e.up.wait_under("/admin/tinychunks", 1)[0];
            assert_eq!(
                (s.framing.clone(), s.body == body),
                (Framing::Length(body.len()), true)
            );
            assert_verified_identity(s);
        }),
    ));
    c.push((
        "limits: huge header sections and header counts",
        Box::new(move || {
            let big = format!("X-Big: {}", "a".repeat(2 << 20));
            let ex = e.send(&raw(
                &["GET /admin/hugehead HTTP/1.1", &e.host(), &big],
                b"",
            ));
            assert!(
                ex.statuses().iter().all(|s| *s >= 400),
                "{:?}",
                ex.statuses()
            );
            let many: Vec<String> = (0..400).map(|i| format!("X-H{i}: v")).collect();
            let mut lines = vec!["GET /static/manyheads HTTP/1.1".to_owned(), e.host()];
            lines.extend(many);
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let ex = e.send(&raw(&lines, b""));
            assert!(
                ex.statuses().iter().all(|s| *s != 500),
                "{:?}",
                ex.statuses()
            );
            let long = format!("GET /static/{} HTTP/1.1", "a".repeat(500_000));
            let ex = e.send(&raw(&[&long, &e.host()], b""));
            assert!(
                ex.statuses().iter().all(|s| *s != 500),
                "{:?}",
                ex.statuses()
            );
            settle();
            assert!(e.up.under("/admin/hugehead").is_empty());
        }),
    ));
    c.push((
        "limits: many identity header copies",
        Box::new(move || {
            let copies: Vec<String> = (0..200)
                .map(|i| format!("X-DataFold-Client-Id: evil{i}"))
                .collect();
            let mut lines = vec!["GET /id/copies HTTP/1.1".to_owned(), e.host()];
            lines.extend(copies);
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let ex = e.send(&raw(&lines, b""));
            assert_eq!(ex.statuses(), [200]);
            assert_no_identity(&e.up.wait_under("/id/copies", 1)[0], "legacy");
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Override headers (case 5)
// ---------------------------------------------------------------------------------------------

fn override_headers(e: &Env) -> Vec<Case<'_>> {
    let mut c: Vec<Case<'_>> = Vec::new();
    c.push((
        "case 5: override headers stripped from a signed GET, every spelling",
        Box::new(move || {
            let signed = e.sign("GET", "/admin/override", None, &[]);
            let evil = add_headers(
                &signed,
                &[
                    "X-HTTP-Method-Override: DELETE",
                    "x_http_method_override: DELETE",
                    "X-HTTP-Method: DELETE",
                    "X-Method-Override: DELETE",
                    "X-Original-URL: /admin/delete-everything",
                    "X_Rewrite_URL: /admin/delete-everything",
                    "X-ORIGINAL-URL: /admin/delete-everything",
                ],
            );
            let ex = e.send(&evil);
            assert_eq!(ex.only().status, 200);
            let s = &e.up.wait_under("/admin/override", 1)[0];
            assert_verified_identity(s);
            for h in [
                "x-http-method-override",
                "x-http-method",
                "x-method-override",
                "x-original-url",
                "x-rewrite-url",
            ] {
                assert!(
                    as_backend_reads(s, h).is_empty(),
                    "{h} reached the backend: {:?}",
                    s.headers
                );
            }
            assert!(!e.up.contains_bytes(b"delete-everything"));
        }),
    ));
    c.push((
        "case 5: override headers stripped from legacy and off-route requests",
        Box::new(move || {
            for path in ["/ovr/legacy", "/health/ovr"] {
                let ex = e.send(&raw(
                    &[
                        &format!("GET {path} HTTP/1.1"),
                        &e.host(),
                        "X-Original-URL: /admin/x",
                        "X-HTTP-Method-Override: PUT",
                    ],
                    b"",
                ));
                assert_eq!(ex.only().status, 200);
                let s = &e.up.wait_under(path, 1)[0];
                assert!(
                    as_backend_reads(s, "x-original-url").is_empty(),
                    "{path}: {:?}",
                    s.headers
                );
                assert!(as_backend_reads(s, "x-http-method-override").is_empty());
            }
        }),
    ));
    c.push((
        "case 5: an override the signature covers is kept; an uncovered spelling beside it is not",
        Box::new(move || {
            let signed = e.sign(
                "POST",
                "/admin/covered-override",
                None,
                &[
                    "-H",
                    "X-HTTP-Method-Override: PATCH",
                    "--components",
                    "@method @authority @path x-http-method-override",
                ],
            );
            let evil = add_headers(&signed, &["X_HTTP_Method_Override: DELETE"]);
            let ex = e.send(&evil);
            assert_eq!(
                ex.only().status,
                200,
                "{}",
                String::from_utf8_lossy(&ex.only().body)
            );
            let s = &e.up.wait_under("/admin/covered-override", 1)[0];
            assert_eq!(
                as_backend_reads(s, "x-http-method-override"),
                ["PATCH"],
                "{:?}",
                s.headers
            );
            assert_verified_identity(s);
        }),
    ));
    c
}

// ---------------------------------------------------------------------------------------------
// Awaiting the proxy rewrite (see the module doc)
// ---------------------------------------------------------------------------------------------

/// Issue 12 case 2: a signed body over ~2 KB with a request pipelined behind it (same write, or
/// trickled) answered 400 PROXY_ERROR after the upstream had the verified head and no body.
#[test]
fn case2_pipelined_request_after_a_large_signed_body() {
    let env = Env::start(POLICY);
    let e = &env;
    for (i, size) in [2_000usize, 4_000, 70_000 - 10_000].iter().enumerate() {
        let path = format!("/admin/case2-{i}");
        let body = vec![b'x'; *size];
        let mut bytes = e.sign("POST", &path, Some(&body), &[]);
        let next = format!("/case2-next-{i}");
        bytes.extend(raw(&[&format!("GET {next} HTTP/1.1"), &e.host()], b""));
        let ex = e.send(&bytes);
        assert_eq!(
            ex.statuses().first(),
            Some(&200),
            "{size} B: {:?}",
            ex.statuses()
        );
        let s = e.up.wait_under(&path, 1);
        assert_eq!(s.len(), 1, "{size} B");
        assert_eq!(s[0].body.len(), *size);
        assert_verified_identity(&s[0]);
        // The pipelined one is answered like any request, or the connection was closed cleanly.
        assert!(
            ex.statuses().len() == 2 || ex.closed,
            "{size} B: {:?}",
            ex.statuses()
        );
        if ex.statuses().len() == 2 {
            assert_eq!(ex.statuses()[1], 200);
            assert_eq!(e.up.wait_under(&next, 1).len(), 1);
        }
    }
    // Trickled: the next request arrives while the body is being checked.
    let body = vec![b'y'; 4_000];
    let bytes = e.sign("POST", "/admin/case2-trickle", Some(&body), &[]);
    let mut w = Wire::open(e.sc.addr);
    w.write(&bytes);
    std::thread::sleep(Duration::from_millis(50));
    w.write(&raw(&["GET /case2-trickle-next HTTP/1.1", &e.host()], b""));
    let ex = w.read_all(Duration::from_secs(2), &[]);
    assert_eq!(ex.statuses().first(), Some(&200), "{:?}", ex.statuses());
    assert_eq!(
        e.up.wait_under("/admin/case2-trickle", 1)[0].body.len(),
        4_000
    );
    assert!(
        e.up.incomplete().is_empty(),
        "heads without bodies: {:?}",
        e.up.incomplete()
    );
    assert!(e.up.violations().is_empty(), "{:?}", e.up.violations());
}

/// Issue 12 case 6: a chunk size that overflows is the client's error (400), not a 500.
#[test]
fn case6_overflowing_chunk_size_is_a_client_error() {
    let env = Env::start(POLICY);
    let e = &env;
    for (i, size) in [
        "ffffffffffffffffff",
        "10000000000000000",
        "fffffffffffffffff0",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/case6-{i}");
        let req = raw(
            &[
                &format!("POST {path} HTTP/1.1"),
                &e.host(),
                "Transfer-Encoding: chunked",
            ],
            format!("{size}\r\nhello\r\n0\r\n\r\n").as_bytes(),
        );
        let ex = e.send(&req);
        assert_eq!(ex.statuses(), [400], "{size}");
        // The signed variant: the body is read for verification.
        let body = b"hello";
        let signed = e.sign("POST", &format!("/admin/case6-{i}"), Some(body), &[]);
        let (head, _) = split(&signed);
        let head = String::from_utf8(head)
            .unwrap()
            .replace("Content-Length: 5\r\n", "");
        let req =
            format!("{head}\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n");
        let ex = e.send(req.as_bytes());
        assert_eq!(ex.statuses(), [400], "signed, {size}");
    }
    settle();
    assert!(e.up.under("/admin/case6").is_empty());
}

/// The `limits:` keys the proxy rewrite adds, small so the test is quick.
const SLOW_POLICY: &str = "mode: hybrid
routes:
  - { path_prefix: /admin, mode: required }
limits:
  header_timeout_seconds: 2
  body_timeout_seconds: 2
  keepalive_timeout_seconds: 2
";

/// Issue 12 case 3: slow clients are closed (header, body and keep-alive idle timeouts), and
/// normal clients are served while many slow connections are open.
#[test]
fn case3_slow_clients_are_closed() {
    let env = Env::start(SLOW_POLICY);
    let e = &env;
    // 100 connections trickling a header byte every 500 ms: closed after ~2 s, well before 8 s.
    let slow: Vec<Wire> = (0..100)
        .map(|_| {
            let mut w = Wire::open(e.sc.addr);
            w.write(b"GET /slow HTTP/1.1\r\n");
            w
        })
        .collect();
    let trickler = std::thread::spawn(move || {
        let mut slow = slow;
        let started = Instant::now();
        let mut open = slow.len();
        while started.elapsed() < Duration::from_secs(8) && open > 0 {
            open = 0;
            for w in slow.iter_mut() {
                if w.write(b"X") {
                    open += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        (slow, started.elapsed())
    });
    // Meanwhile normal requests are served.
    for i in 0..20 {
        let ex = e.send(&e.sign("GET", &format!("/admin/normal{i}"), None, &[]));
        assert_eq!(ex.statuses(), [200]);
    }
    let (mut slow, _) = trickler.join().unwrap();
    let closed = slow
        .iter_mut()
        .map(|w| w.closed_within(Duration::from_millis(300)))
        .filter(|c| *c)
        .count();
    assert_eq!(closed, 100, "slow header senders still open after 8 s");
    // A body that stalls after its head.
    let mut w = Wire::open(e.sc.addr);
    w.write(
        format!(
            "POST /slowbody HTTP/1.1\r\n{}\r\nContent-Length: 100\r\n\r\nabc",
            e.host()
        )
        .as_bytes(),
    );
    assert!(
        w.closed_within(Duration::from_secs(6)),
        "stalled body kept open"
    );
    // An idle keep-alive connection.
    let mut w = Wire::open(e.sc.addr);
    w.write(format!("GET /idle HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes());
    assert_eq!(
        w.read_one(Duration::from_secs(5)).map(|r| r.status),
        Some(200)
    );
    assert!(
        w.closed_within(Duration::from_secs(6)),
        "idle keep-alive kept open"
    );
    settle();
    assert!(
        e.up.under("/slowbody").is_empty() || e.up.incomplete().iter().any(|t| t == "/slowbody")
    );
}

/// Issue 12 case 3: `limits.max_connections` — beyond it, connections are accepted then closed.
#[test]
fn case3_connection_cap() {
    let env =
        Env::start("mode: hybrid\nlimits:\n  max_connections: 20\n  header_timeout_seconds: 30\n");
    let e = &env;
    let held: Vec<Wire> = (0..20)
        .map(|_| {
            let mut w = Wire::open(e.sc.addr);
            w.write(b"GET /held HTTP/1.1\r\n");
            w
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = Wire::open(e.sc.addr);
    extra.write(format!("GET /over HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes());
    let r = extra.read_one(Duration::from_secs(3));
    assert!(
        r.is_none() || r.as_ref().is_some_and(|r| r.status == 503),
        "{r:?}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let ex = e.send(format!("GET /after HTTP/1.1\r\n{}\r\n\r\n", e.host()).as_bytes());
    assert_eq!(ex.statuses(), [200]);
}

/// Found by this suite: an `Expect: 100-continue` request the gate refuses from its head alone
/// (unsigned on a required route) must be answered at once (RFC 9110 §10.1.1: a final status
/// instead of 100, then read or close). Today the proxy drains the body first, and the client
/// waits for a 100 that never comes (curl: 1 s on every refused upload).
#[test]
fn expect_continue_refused_at_once() {
    let env = Env::start(POLICY);
    let e = &env;
    let mut w = Wire::open(e.sc.addr);
    w.write(
        format!(
            "POST /admin/expect-refused HTTP/1.1\r\n{}\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n",
            e.host()
        )
        .as_bytes(),
    );
    let r = w.read_one(Duration::from_secs(3));
    assert_eq!(r.as_ref().map(|r| r.status), Some(401), "{r:?}");
    settle();
    assert!(e.up.under("/admin/expect-refused").is_empty());
}

/// The recorder's own check, straight at it (no proxy): each thing the suite relies on it to
/// flag is flagged, and a well-formed exchange is parsed into the right pieces.
#[test]
fn upstream_recorder_flags_what_a_strict_server_refuses() {
    let up = RawUpstream::start();
    let send = |b: &[u8]| {
        let mut w = Wire::open(up.addr);
        w.write(b);
        w.read_all(Duration::from_millis(500), &[])
    };
    let ok = send(b"POST /ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: v\r\n\r\nGET /ok2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(ok.statuses(), [200, 200]);
    let s = up.under("/ok");
    assert_eq!(
        (
            s[0].framing.clone(),
            s[0].body.clone(),
            s[0].trailers.clone()
        ),
        (Framing::Chunked, b"abc".to_vec(), b"T: v\r\n".to_vec())
    );
    assert_eq!(
        (s[1].framing.clone(), s[1].body.clone()),
        (Framing::Length(2), b"hi".to_vec())
    );
    assert!(up.violations().is_empty(), "{:?}", up.violations());
    let bad: [&[u8]; 8] = [
        b"GET /a HTTP/1.1\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET  /a HTTP/1.1\r\n\r\n",
    ];
    for (i, b) in bad.iter().enumerate() {
        let _ = send(b);
        assert_eq!(
            up.violations().len(),
            i + 1,
            "not flagged: {:?}",
            String::from_utf8_lossy(b)
        );
    }
    let _ = send(b"POST /cut HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(up.incomplete(), ["/cut"]);
}
