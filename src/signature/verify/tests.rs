use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::*;
use crate::signature::sign::{SignSpec, sign};
use crate::signature::{RequestView, ResolvedKey};

struct Keys(HashMap<String, (VerifyingKey, bool)>);

impl KeyResolver for Keys {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
        self.0.get(key_id).map(|(k, revoked)| ResolvedKey {
            key: k,
            client_id: "client-a",
            revoked: *revoked,
        })
    }
}

const NOW: i64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn keys() -> Keys {
    let mut m = HashMap::new();
    m.insert("k1".to_string(), (key().verifying_key(), false));
    m.insert("old".to_string(), (key().verifying_key(), true));
    Keys(m)
}

type Fields = Vec<(String, Vec<u8>)>;

fn base_fields() -> Fields {
    vec![
        ("Host".into(), b"api.example.com".to_vec()),
        ("Content-Type".into(), b"application/json".to_vec()),
    ]
}

fn view<'a>(method: &'a str, fields: &'a Fields) -> RequestView<'a> {
    let host = fields
        .iter()
        .find(|(n, _)| n == "Host")
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    RequestView {
        method,
        target: "/api/items?x=1",
        scheme: "https",
        authority: host,
        fields,
    }
}

struct Case {
    components: &'static str,
    key_id: &'static str,
    created: i64,
    expires: Option<i64>,
    nonce: Option<&'static str>,
    tag: Option<&'static str>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            components: "@method @authority @path",
            key_id: "k1",
            created: NOW,
            expires: None,
            nonce: Some("n-1"),
            tag: None,
        }
    }
}

/// Signs `case` over a GET and returns the fields with the signature headers added.
fn signed(case: &Case) -> Fields {
    let mut fields = base_fields();
    let comps: Vec<Component> = case
        .components
        .split_whitespace()
        .map(|c| Component::parse_spec(c).unwrap())
        .collect();
    let spec = SignSpec {
        label: "sig1",
        components: &comps,
        key_id: case.key_id,
        created: case.created,
        expires: case.expires,
        nonce: case.nonce,
        tag: case.tag,
        include_alg: true,
    };
    let h = sign(&view("GET", &fields), &spec, &key()).unwrap();
    fields.push(("Signature-Input".into(), h.signature_input.into_bytes()));
    fields.push(("Signature".into(), h.signature.into_bytes()));
    fields
}

fn check(fields: &Fields, opts: &VerifyOptions) -> Result<Verified, Error> {
    verify(&view("GET", fields), false, opts, &keys(), NOW)
}

fn code(fields: &Fields, opts: &VerifyOptions) -> ErrorCode {
    check(fields, opts).unwrap_err().code
}

#[test]
fn round_trip() {
    let v = check(&signed(&Case::default()), &VerifyOptions::default()).unwrap();
    assert_eq!(
        (v.key_id.as_str(), v.client_id.as_str(), v.label.as_str()),
        ("k1", "client-a", "sig1")
    );
    assert_eq!(v.nonce.as_deref(), Some("n-1"));
    assert!(
        v.signature_base
            .ends_with(";created=1700000000;keyid=\"k1\";alg=\"ed25519\";nonce=\"n-1\""),
        "{}",
        v.signature_base
    );
}

#[test]
fn tampering_is_caught() {
    let mut f = signed(&Case::default());
    f[0].1 = b"evil.example.com".to_vec();
    assert_eq!(
        code(&f, &VerifyOptions::default()),
        ErrorCode::SignatureInvalid
    );
    let f = signed(&Case::default());
    assert_eq!(
        verify(
            &view("POST", &f),
            false,
            &VerifyOptions::default(),
            &keys(),
            NOW
        )
        .unwrap_err()
        .code,
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn policy_codes() {
    let o = VerifyOptions::default();
    assert_eq!(code(&base_fields(), &o), ErrorCode::SignatureMissing);
    assert_eq!(
        code(
            &signed(&Case {
                key_id: "nope",
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::KeyNotFound
    );
    assert_eq!(
        code(
            &signed(&Case {
                key_id: "old",
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::KeyRevoked
    );
    assert_eq!(
        code(
            &signed(&Case {
                nonce: None,
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::NonceMissing
    );
    assert_eq!(
        code(
            &signed(&Case {
                components: "@method @path",
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::ComponentsMissing
    );
    assert_eq!(
        code(
            &signed(&Case {
                created: NOW - 301,
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::TimestampTooOld
    );
    assert!(
        check(
            &signed(&Case {
                created: NOW - 300,
                ..Case::default()
            }),
            &o
        )
        .is_ok()
    );
    assert_eq!(
        code(
            &signed(&Case {
                created: NOW + 31,
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::TimestampOutOfWindow
    );
    assert!(
        check(
            &signed(&Case {
                created: NOW + 30,
                ..Case::default()
            }),
            &o
        )
        .is_ok()
    );
    assert_eq!(
        code(
            &signed(&Case {
                expires: Some(NOW - 1),
                ..Case::default()
            }),
            &o
        ),
        ErrorCode::TimestampTooOld
    );
}

#[test]
fn messages_name_what_was_wrong() {
    let o = VerifyOptions::default();
    let e = check(
        &signed(&Case {
            created: NOW - 412,
            ..Case::default()
        }),
        &o,
    )
    .unwrap_err();
    assert!(
        e.detail.contains("412 s old") && e.detail.contains("300"),
        "{e}"
    );
    let e = check(
        &signed(&Case {
            components: "@method",
            ..Case::default()
        }),
        &o,
    )
    .unwrap_err();
    assert!(e.detail.contains("\"@authority\", \"@path\""), "{e}");
    let e = check(
        &signed(&Case {
            key_id: "ghost",
            ..Case::default()
        }),
        &o,
    )
    .unwrap_err();
    assert!(e.detail.contains("\"ghost\""), "{e}");
}

#[test]
fn target_uri_satisfies_authority_and_path() {
    let f = signed(&Case {
        components: "@method @target-uri",
        ..Case::default()
    });
    assert!(check(&f, &VerifyOptions::default()).is_ok());
}

#[test]
fn alg_must_match_the_key() {
    let mut f = signed(&Case::default());
    let si = String::from_utf8(f[2].1.clone())
        .unwrap()
        .replace("ed25519", "rsa-pss-sha512");
    f[2].1 = si.into_bytes();
    assert_eq!(
        code(&f, &VerifyOptions::default()),
        ErrorCode::KeyIdMismatch
    );
}

#[test]
fn body_needs_a_covered_digest() {
    let f = signed(&Case::default());
    let o = VerifyOptions::default();
    assert_eq!(
        verify(&view("GET", &f), true, &o, &keys(), NOW)
            .unwrap_err()
            .code,
        ErrorCode::DigestMissing
    );
    let lax = VerifyOptions {
        body_digest: Requirement::Optional,
        ..VerifyOptions::default()
    };
    assert!(
        !verify(&view("GET", &f), true, &lax, &keys(), NOW)
            .unwrap()
            .covers_digest
    );
}

/// Body stripping (issue 12 case 1): a covered `content-digest` is to be checked whatever the
/// request announces, so a signed body resent with `Content-Length: 0` fails on the empty body.
#[test]
fn covered_digest_is_checked_even_without_an_announced_body() {
    let mut fields = base_fields();
    fields.push((
        "Content-Digest".into(),
        b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:".to_vec(),
    ));
    let comps: Vec<Component> = ["@method", "@authority", "@path", "content-digest"]
        .iter()
        .map(|c| Component::parse_spec(c).unwrap())
        .collect();
    let spec = SignSpec {
        label: "sig1",
        components: &comps,
        key_id: "k1",
        created: NOW,
        expires: None,
        nonce: Some("n-1"),
        tag: None,
        include_alg: true,
    };
    let h = sign(&view("POST", &fields), &spec, &key()).unwrap();
    fields.push(("Signature-Input".into(), h.signature_input.into_bytes()));
    fields.push(("Signature".into(), h.signature.into_bytes()));
    for has_body in [false, true] {
        let v = verify(
            &view("POST", &fields),
            has_body,
            &VerifyOptions::default(),
            &keys(),
            NOW,
        )
        .unwrap();
        assert!(v.covers_digest, "has_body={has_body}");
    }
    let off = VerifyOptions {
        body_digest: Requirement::Off,
        ..VerifyOptions::default()
    };
    assert!(
        !verify(&view("POST", &fields), false, &off, &keys(), NOW)
            .unwrap()
            .covers_digest
    );
}

#[test]
fn label_and_tag_select_the_signature() {
    let f = signed(&Case {
        tag: Some("datafold"),
        ..Case::default()
    });
    let by_tag = VerifyOptions {
        tag: Some("datafold".into()),
        ..VerifyOptions::default()
    };
    assert!(check(&f, &by_tag).is_ok());
    let other_tag = VerifyOptions {
        tag: Some("other".into()),
        ..VerifyOptions::default()
    };
    assert_eq!(code(&f, &other_tag), ErrorCode::SignatureMissing);
    let other_label = VerifyOptions {
        label: Some("sig2".into()),
        ..VerifyOptions::default()
    };
    assert_eq!(code(&f, &other_label), ErrorCode::SignatureMissing);
}

#[test]
fn a_second_signature_can_satisfy_policy() {
    // sig0 is by an unknown key; sig1 is good: examine signatures until one satisfies policy.
    let good = signed(&Case::default());
    let mut f = base_fields();
    let si = String::from_utf8(good[2].1.clone()).unwrap();
    let sg = String::from_utf8(good[3].1.clone()).unwrap();
    f.push((
        "Signature-Input".into(),
        format!("sig0=(\"@method\");created={NOW};keyid=\"ghost\", {si}").into_bytes(),
    ));
    f.push((
        "Signature".into(),
        format!("sig0=:{}:, {sg}", "A".repeat(86) + "==").into_bytes(),
    ));
    assert_eq!(check(&f, &VerifyOptions::default()).unwrap().label, "sig1");
}

#[test]
fn truncated_signature_is_malformed() {
    let mut f = signed(&Case::default());
    f[3].1 = b"sig1=:AAAA:".to_vec();
    assert_eq!(
        code(&f, &VerifyOptions::default()),
        ErrorCode::SignatureMalformed
    );
}
