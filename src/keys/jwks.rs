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

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value, error::Category};

use super::scratch::Scratch;
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

/// The members sigproxy reads from one JWK. `&str` borrows from the body, so a key costs no
/// allocation; a key this cannot take (an escaped string, a member of another type, a member
/// named twice) is read again as a JSON object, which gives the same result or the reason.
#[derive(serde::Deserialize)]
struct Members<'a> {
    kty: Option<&'a str>,
    crv: Option<&'a str>,
    kid: Option<&'a str>,
    #[serde(rename = "use")]
    use_: Option<&'a str>,
    client_id: Option<&'a str>,
    status: Option<&'a str>,
    alg: Option<&'a str>,
    x: Option<&'a str>,
    d: Option<IgnoredAny>,
}

/// A usable-looking key; its point is decoded later, all keys at once.
struct Candidate<'a> {
    kid: Cow<'a, str>,
    client_id: Cow<'a, str>,
    status: KeyStatus,
    x: [u8; 32],
}

/// Linear in the number of keys and light on memory: the body is walked twice (once to count,
/// once to fill the table, each key parsed where it lies), so the table is allocated once at its
/// size and nothing of the size of the document is kept on the heap besides it — no tree of the
/// document, no list of the keys. The points are decoded on every core.
pub(crate) fn parse_jwks(body: &[u8], url: &str) -> Result<Parsed, String> {
    // Not an object: say whether it is JSON at all (the walk below would call a truncated array
    // "no keys array", as it looks at the type before the syntax).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => "JWKS has no \"keys\" array".to_owned(),
                Err(e) => format!("JWKS is not valid JSON: {e}"),
            },
        );
    }
    // Pass 1: the shape, the counts, and that the document is valid JSON to its end.
    let (mut keys, mut usable, mut id_bytes) = (0usize, 0usize, 0usize);
    each_key(body, &mut |_, key| {
        keys += 1;
        if keys > MAX_KEYS {
            return Err(format!("JWKS has more than {MAX_KEYS} keys"));
        }
        if let Ok(c) = evaluate(key) {
            usable += 1;
            id_bytes += c.kid.len();
        }
        Ok(())
    })?;
    // Pass 2: the table's rows, and the points' bytes (returned to the OS after decoding).
    let mut b = KeyTable::builder(KeySource::Directory(url.to_owned()));
    b.reserve(usable, id_bytes);
    let mut raw = Scratch::zeroed(usable.saturating_mul(32))?;
    // (key number, why): numbered so the reasons of the third pass below fall in document order.
    let mut skipped: Vec<(usize, String)> = Vec::new();
    let mut n = 0;
    each_key(body, &mut |i, key| {
        match evaluate(key) {
            Ok(c) => {
                b.push_deferred(&c.kid, &c.client_id, c.status, None)?;
                if let Some(to) = raw.as_mut_slice().get_mut(n * 32..n * 32 + 32) {
                    to.copy_from_slice(&c.x);
                }
                n += 1;
            }
            Err((kid, why)) => skipped.push((i, format!("keys[{i}]{}: {why}", kid_note(kid)))),
        }
        Ok(())
    })?;
    let (points, bad) = decode_points(raw.as_chunks::<32>().0);
    drop(raw);
    let table = if bad.is_empty() {
        // Every point decoded: they move into the table as they are.
        b.finish_with_points(points)?
    } else {
        // Some did not (rare): the rows again, without those keys.
        let mut bad = bad.into_iter().peekable();
        let mut b = KeyTable::builder(KeySource::Directory(url.to_owned()));
        let mut n = 0;
        each_key(body, &mut |i, key| {
            let Ok(c) = evaluate(key) else {
                return Ok(());
            };
            let at = n;
            n += 1;
            if bad.next_if_eq(&at).is_some() {
                skipped.push((
                    i,
                    format!(
                        "keys[{i}] (kid {:?}): JWK x is not a valid Ed25519 public key",
                        c.kid
                    ),
                ));
            } else if let Some(&key) = points.get(at) {
                b.push(&c.kid, &c.client_id, key, c.status, None)?;
            }
            Ok(())
        })?;
        skipped.sort_by_key(|&(i, _)| i);
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
    Ok(Parsed {
        index,
        skipped: skipped.into_iter().map(|(_, why)| why).collect(),
    })
}

/// Calls `each` with the index and text of every element of the document's `keys` array, in
/// order; the document must be one JSON object with a `keys` array, and nothing after it.
fn each_key<'a>(
    body: &'a [u8],
    each: &mut dyn FnMut(usize, &'a RawValue) -> Result<(), String>,
) -> Result<(), String> {
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = serde::de::DeserializeSeed::deserialize(
        DocumentSeed {
            each,
            failed: &mut failed,
        },
        &mut de,
    )
    .and_then(|found| de.end().map(|()| found));
    if let Some(why) = failed {
        return Err(why);
    }
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err("JWKS has no \"keys\" array".to_owned()),
        Err(e) if e.classify() == Category::Data => Err("JWKS has no \"keys\" array".to_owned()),
        Err(e) => Err(format!("JWKS is not valid JSON: {e}")),
    }
}

/// The outer object: `keys` handed element by element to `each`, every other member skipped.
/// Deserializes to whether a `keys` array was there.
struct DocumentSeed<'f, 'a> {
    each: &'f mut dyn FnMut(usize, &'a RawValue) -> Result<(), String>,
    /// Why `each` stopped the walk (kept apart from JSON errors, which it is not).
    failed: &'f mut Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DocumentSeed<'_, 'de> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocumentSeed<'_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JWK Set")
    }
    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        let mut found = false;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if name != "keys" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if found {
                return Err(serde::de::Error::duplicate_field("keys"));
            }
            found = map.next_value_seed(KeysSeed {
                each: &mut *self.each,
                failed: &mut *self.failed,
            })?;
        }
        Ok(found)
    }
}

/// The `keys` member: `null` counts as absent.
struct KeysSeed<'f, 'a> {
    each: &'f mut dyn FnMut(usize, &'a RawValue) -> Result<(), String>,
    failed: &'f mut Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeysSeed<'_, 'de> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeysSeed<'_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of JWKs")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<bool, S::Error> {
        let mut i = 0;
        while let Some(key) = seq.next_element::<&'de RawValue>()? {
            if let Err(why) = (self.each)(i, key) {
                *self.failed = Some(why);
                return Err(serde::de::Error::custom("stopped"));
            }
            i += 1;
        }
        Ok(true)
    }
}

/// One element of `keys`: a usable key, or its `kid` (if it has one) and why it is skipped.
fn evaluate(key: &RawValue) -> Result<Candidate<'_>, (Option<String>, String)> {
    let text = key.get();
    if text.starts_with('{')
        && let Ok(m) = serde_json::from_str::<Members<'_>>(text)
    {
        let has_d = m.d.is_some();
        return candidate(&m, has_d).map_err(|why| (m.kid.map(str::to_owned), why));
    }
    // The slow path, for what the borrowed read does not take: the same rules over the object.
    let Ok(obj) = serde_json::from_str::<Map<String, Value>>(text) else {
        return Err((None, "not a JSON object".to_owned()));
    };
    let kid = obj.get("kid").and_then(Value::as_str).map(str::to_owned);
    let read = || -> Result<(Members<'_>, bool), String> {
        Ok((
            Members {
                kty: optional_str(&obj, "kty")?,
                crv: optional_str(&obj, "crv")?,
                kid: optional_str(&obj, "kid")?,
                use_: optional_str(&obj, "use")?,
                client_id: optional_str(&obj, "client_id")?,
                status: optional_str(&obj, "status")?,
                alg: optional_str(&obj, "alg")?,
                x: optional_str(&obj, "x")?,
                d: None,
            },
            obj.get("d").is_some_and(|d| !d.is_null()),
        ))
    };
    let (m, has_d) = read().map_err(|why| (kid.clone(), why))?;
    match candidate(&m, has_d) {
        // Ids that needed unescaping: not borrowable from the body, kept for this key only.
        Ok(c) => Ok(Candidate {
            kid: Cow::Owned(c.kid.into_owned()),
            client_id: Cow::Owned(c.client_id.into_owned()),
            status: c.status,
            x: c.x,
        }),
        Err(why) => Err((kid, why)),
    }
}

fn kid_note(kid: Option<String>) -> String {
    match kid {
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

fn candidate<'a>(m: &Members<'a>, has_d: bool) -> Result<Candidate<'a>, String> {
    let (kty, crv) = (m.kty, m.crv);
    if kty != Some("OKP") || crv != Some("Ed25519") {
        return Err(format!(
            "kty {} crv {} is not supported (only OKP Ed25519)",
            kty.unwrap_or("(none)"),
            crv.unwrap_or("(none)")
        ));
    }
    let kid = m.kid.filter(|k| !k.is_empty()).ok_or("no kid")?;
    if let Some(u) = m.use_
        && u != "sig"
    {
        return Err(format!("use is {u:?}, not \"sig\""));
    }
    let client_id = match m.client_id {
        Some("") => return Err("client_id is empty".into()),
        Some(c) => c,
        None => kid,
    };
    let status = match m.status {
        None | Some("active") => KeyStatus::Active,
        Some("revoked") => KeyStatus::Revoked,
        Some(other) => return Err(format!("status {other:?} is not active or revoked")),
    };
    let x = super::jwk::public_x(m.alg, m.x, has_d).map_err(|e| e.to_string())?;
    Ok(Candidate {
        kid: Cow::Borrowed(kid),
        client_id: Cow::Borrowed(client_id),
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

    /// What the borrowed read of a key does not take (escaped strings, members of another type
    /// or named twice, an array in place of an object) is read the slow way, with the same result
    /// as before it existed: the key, or the same reason.
    #[test]
    fn keys_the_borrowed_read_does_not_take() {
        let escaped = {
            use base64::Engine as _;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(SigningKey::from_bytes(&[1; 32]).verifying_key().as_bytes());
            format!(
                r#"{{"kty":"OKP","crv":"Ed25519","kid":"esc\u0061ped","client_id":"caf\u00e9\n","x":"{x}"}}"#
            )
        };
        let twice = jwk(2, "first-kid", r#","kid":"second-kid""#);
        let typed = jwk(3, "numbered", r#","status":7"#);
        let positional = r#"["OKP","Ed25519","positional"]"#;
        let good_then_bad_point = {
            use base64::Engine as _;
            let mut bad = [0u8; 32];
            bad[0] = 2;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bad);
            format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"off-curve","x":"{x}"}}"#)
        };
        let doc = format!(
            r#"{{"keys":[{escaped},{twice},{typed},{positional},{good_then_bad_point},{}], "other": {{"keys": 1}}}}"#,
            jwk(4, "plain", "")
        );
        let p = parse_jwks(doc.as_bytes(), URL).unwrap();
        let got: Vec<(&str, &str)> = p.index.iter().map(|r| (r.key_id, r.client_id)).collect();
        assert_eq!(
            got,
            [
                ("escaped", "caf\u{e9}\n"),
                ("second-kid", "second-kid"),
                ("plain", "plain")
            ]
        );
        assert_eq!(
            *p.index.get("second-kid").unwrap().key,
            SigningKey::from_bytes(&[2; 32]).verifying_key()
        );
        // In document order, whichever pass found them.
        assert_eq!(
            p.skipped,
            [
                "keys[2] (kid \"numbered\"): status is not a string",
                "keys[3]: not a JSON object",
                "keys[4] (kid \"off-curve\"): JWK x is not a valid Ed25519 public key",
            ]
        );
    }

    #[test]
    fn the_document_around_the_keys() {
        let one = jwk(1, "k", "");
        // `null` keys, a second `keys`, text after the object, too many keys.
        assert!(
            parse_jwks(br#"{"keys":null}"#, URL)
                .unwrap_err()
                .contains("no \"keys\" array")
        );
        let twice = format!(r#"{{"keys":[{one}],"keys":[]}}"#);
        assert!(parse_jwks(twice.as_bytes(), URL).is_err());
        let trailing = format!(r#"{{"keys":[{one}]}} {{}}"#);
        assert!(
            parse_jwks(trailing.as_bytes(), URL)
                .unwrap_err()
                .contains("not valid JSON")
        );
        let truncated = format!(r#"{{"keys":[{one},{one}"#);
        assert!(
            parse_jwks(truncated.as_bytes(), URL)
                .unwrap_err()
                .contains("not valid JSON")
        );
        let many = format!(r#"{{"keys":[{}{{}}]}}"#, "{},".repeat(MAX_KEYS));
        assert!(
            parse_jwks(many.as_bytes(), URL)
                .unwrap_err()
                .contains(&format!("more than {MAX_KEYS} keys"))
        );
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
