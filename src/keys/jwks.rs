//! A JWK Set (RFC 7517 §5) of OKP/Ed25519 keys (RFC 8037) → the key directory's indexed table.
//!
//! Members read from each JWK, beyond RFC 8037's `kty`, `crv`, `x`:
//! - `kid` (required): the RFC 9421 `keyid`.
//! - `client_id` (sigproxy's own member, optional): the client the key belongs to, sent to the
//!   backend in the client id header. Defaults to the `kid`.
//! - `status` (sigproxy's own member, optional): `"active"` (default) or `"revoked"`; a revoked key
//!   answers KEY_REVOKED rather than KEY_NOT_FOUND.
//! - `use` (optional): when present it must be `"sig"`; `alg`, when present, `EdDSA` or `Ed25519`.
//!
//! A key that cannot be used (another key type, no `kid`, an invalid `x`, a private `d`) is skipped
//! with a reason, so one bad entry does not hold back everyone else's rotation. A document that is
//! not a JWK Set, or that names one `kid` twice, is rejected whole. It does not fetch anything.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value, error::Category};

use super::{KeyIndex, KeySource, KeyStatus, KeyTable, decode_points};

/// More keys than this in one document is a misconfiguration, not a key registry.
pub(crate) const MAX_KEYS: usize = 500_000;

#[derive(Debug)]
pub(crate) struct Parsed {
    /// The usable keys, in document order, indexed.
    pub index: KeyIndex,
    /// One line per skipped key: which one and why.
    pub skipped: Vec<String>,
}

/// A usable-looking key whose point is not decoded yet (its ids copied out of the transient
/// JSON object of that one key).
struct Candidate {
    at: usize,
    kid: String,
    client_id: String,
    status: KeyStatus,
    x: [u8; 32],
}

/// The document's outer shape: `keys` kept as borrowed slices of the body, each key parsed on
/// its own later — so the transient JSON tree is one key's, not the whole set's (a `Value` of
/// 100,000 keys was ~1.1 KB per key, left committed after the fetch).
#[derive(serde::Deserialize)]
struct Document<'a> {
    #[serde(borrow, default)]
    keys: Option<Vec<&'a RawValue>>,
}

/// Linear in the number of keys: one pass over the document, each key parsed on its own, the
/// points decoded on every core, one index build.
pub(crate) fn parse_jwks(body: &[u8], url: &str) -> Result<Parsed, String> {
    // A struct also deserializes from a JSON array (its fields in order): only an object is a
    // JWK Set.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => "JWKS has no \"keys\" array".to_owned(),
                Err(e) => format!("JWKS is not valid JSON: {e}"),
            },
        );
    }
    let doc: Document<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => "JWKS has no \"keys\" array".to_owned(),
        _ => format!("JWKS is not valid JSON: {e}"),
    })?;
    let keys = doc.keys.ok_or("JWKS has no \"keys\" array")?;
    if keys.len() > MAX_KEYS {
        return Err(format!(
            "JWKS has {} keys, more than {MAX_KEYS}",
            keys.len()
        ));
    }
    let mut candidates: Vec<Candidate> = Vec::with_capacity(keys.len());
    let mut skipped = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Ok(obj) = serde_json::from_str::<Map<String, Value>>(key.get()) else {
            skipped.push(format!("keys[{i}]: not a JSON object"));
            continue;
        };
        match candidate(i, &obj) {
            Ok(c) => candidates.push(c),
            Err(why) => skipped.push(format!("keys[{i}]{}: {why}", kid_note(&obj))),
        }
    }
    drop(keys);
    let raw: Vec<[u8; 32]> = candidates.iter().map(|c| c.x).collect();
    let (points, bad) = decode_points(&raw);
    drop(raw);
    let id_bytes = candidates.iter().map(|c| c.kid.len()).sum();
    let mut b = KeyTable::builder(KeySource::Directory(url.to_owned()));
    b.reserve(candidates.len(), id_bytes);
    let table = if bad.is_empty() {
        // Every point decoded: they move into the table as they are (no second copy of ~190 B
        // per key while the table is built).
        for c in &candidates {
            b.push_deferred(&c.kid, &c.client_id, c.status, None)?;
        }
        drop(candidates);
        b.finish_with_points(points)?
    } else {
        let mut bad = bad.into_iter().peekable();
        for (i, (c, key)) in candidates.iter().zip(points).enumerate() {
            if bad.next_if_eq(&i).is_some() {
                skipped.push(format!(
                    "keys[{}] (kid {:?}): JWK x is not a valid Ed25519 public key",
                    c.at, c.kid
                ));
            } else {
                b.push(&c.kid, &c.client_id, key, c.status, None)?;
            }
        }
        b.finish()
    };
    let index = KeyIndex::build(vec![Arc::new(table)]).map_err(|d| {
        let kid = d
            .pairs()
            .next()
            .map(|(a, _)| a.key_id.to_owned())
            .unwrap_or_default();
        format!("JWKS names kid {kid:?} twice")
    })?;
    Ok(Parsed { index, skipped })
}

fn kid_note(obj: &Map<String, Value>) -> String {
    match obj.get("kid").and_then(Value::as_str) {
        Some(kid) => format!(" (kid {kid:?})"),
        None => String::new(),
    }
}

fn optional_str<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} is not a string")),
    }
}

fn candidate(at: usize, obj: &Map<String, Value>) -> Result<Candidate, String> {
    let kty = optional_str(obj, "kty")?;
    let crv = optional_str(obj, "crv")?;
    if kty != Some("OKP") || crv != Some("Ed25519") {
        return Err(format!(
            "kty {} crv {} is not supported (only OKP Ed25519)",
            kty.unwrap_or("(none)"),
            crv.unwrap_or("(none)")
        ));
    }
    let kid = optional_str(obj, "kid")?
        .filter(|k| !k.is_empty())
        .ok_or("no kid")?;
    if let Some(u) = optional_str(obj, "use")?
        && u != "sig"
    {
        return Err(format!("use is {u:?}, not \"sig\""));
    }
    let client_id = match optional_str(obj, "client_id")? {
        Some("") => return Err("client_id is empty".into()),
        Some(c) => c,
        None => kid,
    };
    let status = match optional_str(obj, "status")? {
        None | Some("active") => KeyStatus::Active,
        Some("revoked") => KeyStatus::Revoked,
        Some(other) => return Err(format!("status {other:?} is not active or revoked")),
    };
    let has_d = obj.get("d").is_some_and(|d| !d.is_null());
    let x = super::jwk::public_x(optional_str(obj, "alg")?, optional_str(obj, "x")?, has_d)
        .map_err(|e| e.to_string())?;
    Ok(Candidate {
        at,
        kid: kid.to_owned(),
        client_id: client_id.to_owned(),
        status,
        x,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::public_jwk;
    use ed25519_dalek::SigningKey;

    const URL: &str = "http://dir/keys.jwks";

    fn jwk(seed: u8, kid: &str, extra: &str) -> String {
        let vk = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        let j = public_jwk(&vk, Some(kid));
        format!("{}{extra}}}", &j[..j.len() - 1])
    }

    #[test]
    fn members_map_to_records() {
        let doc = format!(
            r#"{{"keys":[{},{},{}]}}"#,
            jwk(1, "b-key", ""),
            jwk(2, "a-key", r#","client_id":"partner-a","status":"revoked""#),
            jwk(3, "c-key", r#","status":"active","client_id":null"#),
        );
        let p = parse_jwks(doc.as_bytes(), URL).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let got: Vec<(&str, &str, KeyStatus)> = p
            .index
            .iter()
            .map(|r| (r.key_id, r.client_id, r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("b-key", "b-key", KeyStatus::Active),
                ("a-key", "partner-a", KeyStatus::Revoked),
                ("c-key", "c-key", KeyStatus::Active),
            ]
        );
        assert_eq!(
            *p.index.get("b-key").unwrap().key,
            SigningKey::from_bytes(&[1; 32]).verifying_key()
        );
        assert_eq!(
            p.index.get("a-key").unwrap().source,
            &KeySource::Directory(URL.into())
        );
    }

    #[test]
    fn unusable_keys_are_skipped_with_reasons() {
        let doc = format!(
            r#"{{"keys":[
                {{"kty":"RSA","kid":"rsa-1","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","crv":"P-256","kid":"ec-1","x":"AA","y":"AA"}},
                {{"kty":"OKP","crv":"X25519","kid":"x-1","x":"AA"}},
                {},
                {},
                {},
                {},
                {},
                "not an object",
                {}
            ]}}"#,
            jwk(1, "", ""),
            jwk(2, "enc", r#","use":"enc""#),
            jwk(3, "weird-status", r#","status":"paused""#),
            jwk(
                4,
                "with-d",
                r#","d":"n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU""#
            ),
            r#"{"kty":"OKP","crv":"Ed25519","kid":"short-x","x":"AAAA"}"#,
            jwk(5, "good", ""),
        );
        let p = parse_jwks(doc.as_bytes(), URL).unwrap();
        assert_eq!(p.index.len(), 1);
        assert!(p.index.get("good").is_some());
        assert_eq!(p.skipped.len(), 9, "{:#?}", p.skipped);
        let all = p.skipped.join("\n");
        for needle in [
            "keys[0] (kid \"rsa-1\"): kty RSA",
            "keys[1] (kid \"ec-1\"): kty EC crv P-256",
            "X25519",
            "keys[3] (kid \"\"): no kid",
            "use is \"enc\"",
            "status \"paused\"",
            "private key",
            "not 32 bytes",
            "keys[8]: not a JSON object",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn a_point_that_does_not_decode_is_skipped_and_the_rest_kept() {
        use base64::Engine as _;
        let mut bad = [0u8; 32];
        bad[0] = 2; // y = 2: no x on the curve
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bad);
        let doc = format!(
            r#"{{"keys":[{},{{"kty":"OKP","crv":"Ed25519","kid":"off-curve","x":"{x}"}},{}]}}"#,
            jwk(1, "first", ""),
            jwk(2, "last", r#","client_id":"c-2","status":"revoked""#),
        );
        let p = parse_jwks(doc.as_bytes(), URL).unwrap();
        assert_eq!(p.index.len(), 2);
        assert_eq!(
            p.skipped,
            ["keys[1] (kid \"off-curve\"): JWK x is not a valid Ed25519 public key"]
        );
        let last = p.index.get("last").unwrap();
        assert_eq!((last.client_id, last.status), ("c-2", KeyStatus::Revoked));
        assert_eq!(*last.key, SigningKey::from_bytes(&[2; 32]).verifying_key());
        // And with every point good, the points move into the table unchanged.
        let good = format!(r#"{{"keys":[{},{}]}}"#, jwk(1, "a", ""), jwk(2, "b", ""));
        let p = parse_jwks(good.as_bytes(), URL).unwrap();
        for (kid, seed) in [("a", 1), ("b", 2)] {
            assert_eq!(
                *p.index.get(kid).unwrap().key,
                SigningKey::from_bytes(&[seed; 32]).verifying_key()
            );
        }
    }

    #[test]
    fn malformed_documents_are_rejected_whole() {
        assert!(
            parse_jwks(b"<html>", URL)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_jwks(b"{\"keys\":{}}", URL)
                .unwrap_err()
                .contains("no \"keys\" array")
        );
        assert!(
            parse_jwks(&jwk(1, "k", "").into_bytes(), URL)
                .unwrap_err()
                .contains("no \"keys\"")
        );
        let dup = format!(
            r#"{{"keys":[{},{}]}}"#,
            jwk(1, "same", ""),
            jwk(2, "same", "")
        );
        assert!(
            parse_jwks(dup.as_bytes(), URL)
                .unwrap_err()
                .contains("\"same\" twice")
        );
        assert!(parse_jwks(b"{\"keys\":[]}", URL).unwrap().index.is_empty());
        // An array holding the keys array is not a JWK Set.
        let wrapped = format!("[[{}]]", jwk(1, "k", ""));
        assert!(
            parse_jwks(wrapped.as_bytes(), URL)
                .unwrap_err()
                .contains("no \"keys\" array")
        );
        assert!(
            parse_jwks(b" [1,", URL)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
