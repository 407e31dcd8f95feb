//! Fuzz the per-request route lookup with hostile paths and methods: every lenient reading of the
//! path (decoding rounds, `\`, `;params`, dot segments, trailing dots, case). It must not panic,
//! must stay fast (libFuzzer's -timeout), and must never be laxer than the path read as written.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigproxy::policy::{self, EffectivePolicy, Mode, Overrides};

const POLICY: &str = "mode: hybrid
routes:
  - { path_prefix: /health, mode: off }
  - { path_prefix: /static/, mode: off }
  - { path_prefix: /admin, mode: required }
  - { path_prefix: /api/, methods: [POST, PUT, DELETE], mode: required }
  - { path_prefix: /Public/, mode: off }
";

fn effective(case_insensitive: bool) -> &'static EffectivePolicy {
    static CI: OnceLock<EffectivePolicy> = OnceLock::new();
    static CS: OnceLock<EffectivePolicy> = OnceLock::new();
    let (cell, extra) = if case_insensitive {
        (&CI, "")
    } else {
        (&CS, "route_matching: { case_insensitive: false }\n")
    };
    cell.get_or_init(|| {
        let text = format!("{POLICY}{extra}");
        match policy::fuzzing::parse_offline(text.as_bytes()) {
            Ok(p) => p.effective(&Overrides::default()),
            Err(e) => panic!("fuzz policy does not parse: {e:?}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (method, path) = match rest.iter().position(|b| *b == b' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"GET"[..], rest),
    };
    let Ok(method) = http::Method::from_bytes(method) else {
        return;
    };
    let path = String::from_utf8_lossy(path);
    let e = effective(flags & 1 == 1);
    let found = e.route_for(&method, &path);
    // The lookup only ever adds readings: a path that matches `/admin` as written is required.
    if path.starts_with("/admin") {
        assert_eq!(found.mode, Mode::Required, "{path:?}");
    }
});
