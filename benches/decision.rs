//! The per-request policy work around the verify: `decision::decide` for each case of reference
//! §4.1, and the route lookup (`EffectivePolicy::route_for`) on a policy with a realistic route
//! list — first route, last route and no match. It does not measure verification
//! (benches/verify.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write as _;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{SigningKey, VerifyingKey};
use http::Method;
use sigproxy::decision::{Outcome, decide};
use sigproxy::error::{Error, ErrorCode};
use sigproxy::policy::{Mode, Overrides};
use sigproxy::signature::sign::{SignSpec, sign};
use sigproxy::signature::{
    Component, KeyResolver, RequestView, ResolvedKey, Verified, VerifyOptions, verify,
};

const NOW: i64 = 1_700_000_000;

/// A `Verified` made the only way there is: a request signed and run through the verifier.
fn verified() -> Verified {
    struct One(VerifyingKey);
    impl KeyResolver for One {
        fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
            (key_id == "web-frontend-v1").then_some(ResolvedKey {
                key: &self.0,
                client_id: "web-frontend",
                revoked: false,
            })
        }
    }
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let components = [Component::parse_spec("@method").unwrap()];
    let spec = SignSpec {
        label: "sig1",
        components: &components,
        key_id: "web-frontend-v1",
        created: NOW,
        expires: None,
        nonce: Some("d2VsbC1oZWxsby10aGVyZQ"),
        tag: None,
        include_alg: true,
    };
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    fn view(fields: &Vec<(String, Vec<u8>)>) -> RequestView<'_> {
        RequestView {
            method: "GET",
            target: "/",
            scheme: "https",
            authority: None,
            fields,
        }
    }
    let h = sign(&view(&fields), &spec, &key).unwrap();
    fields.push(("signature-input".into(), h.signature_input.into_bytes()));
    fields.push(("signature".into(), h.signature.into_bytes()));
    let opts = VerifyOptions {
        required_components: Vec::new(),
        ..VerifyOptions::default()
    };
    verify(&view(&fields), false, &opts, &One(key.verifying_key()), NOW).unwrap()
}

fn bench_decide(c: &mut Criterion) {
    let v = verified();
    let bad = Error::new(ErrorCode::SignatureInvalid, "signature does not verify");
    let mut g = c.benchmark_group("decide");
    let cases: [(&str, Mode, bool, Outcome<'_>); 6] = [
        ("off", Mode::Off, false, Outcome::Unsigned),
        ("hybrid_unsigned", Mode::Hybrid, false, Outcome::Unsigned),
        ("required_valid", Mode::Required, false, Outcome::Valid(&v)),
        (
            "required_invalid",
            Mode::Required,
            false,
            Outcome::Invalid(&bad),
        ),
        (
            "required_unsigned",
            Mode::Required,
            false,
            Outcome::Unsigned,
        ),
        ("dry_run_unsigned", Mode::Required, true, Outcome::Unsigned),
    ];
    for (name, mode, dry, outcome) in cases {
        g.bench_function(name, |b| {
            b.iter(|| decide(black_box(mode), black_box(dry), black_box(outcome)))
        });
    }
    g.finish();
}

/// 20 routes, as a larger deployment might write them; the lookup is first-match-wins.
fn policy_yaml() -> String {
    let mut y = String::from("upstream: \"127.0.0.1:8081\"\nkeys: []\nroutes:\n");
    y.push_str("  - { path_prefix: /health, mode: off }\n");
    for i in 0..18 {
        y.push_str(&format!(
            "  - {{ path_prefix: /svc{i}/v1/, methods: [POST, PUT, DELETE], mode: required }}\n"
        ));
    }
    y.push_str("  - { path_prefix: /api/, methods: [POST, PUT, DELETE], mode: required }\n");
    y
}

fn bench_routes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(policy_yaml().as_bytes())
        .unwrap();
    let policy = sigproxy::policy::load(&path).unwrap();
    let eff = policy.effective(&Overrides::default());
    let mut g = c.benchmark_group("route_for");
    let cases = [
        ("first", Method::GET, "/healthz"),
        ("last", Method::POST, "/api/v1/items/123"),
        ("no_match", Method::GET, "/api/v1/items/123?limit=10"),
    ];
    for (name, method, p) in cases {
        g.bench_function(name, |b| {
            b.iter(|| eff.route_for(black_box(&method), black_box(p)).mode)
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decide, bench_routes);
criterion_main!(benches);
