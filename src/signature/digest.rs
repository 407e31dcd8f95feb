//! RFC 9530 `Content-Digest`: parsing (sha-256, sha-512), an incremental body hasher, and
//! [`check`], the one check of a whole body against a request's field (the gateway and
//! `sigproxy verify` both call it). It does not decide whether a digest is required or signed;
//! that is the verifier's and the policy's business ([`super::Verified::covers_digest`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha512};

use super::fields::FieldSource;
use crate::error::{Error, ErrorCode};

/// The digest algorithms sigproxy checks. RFC 9530 registers others (md5, sha, …) as insecure or
/// deprecated; those are ignored when present, never checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlg {
    Sha256,
    Sha512,
}

impl DigestAlg {
    /// The RFC 9530 algorithm key, as it appears in the field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha512 => "sha-512",
        }
    }

    /// Length of the raw digest in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        match key {
            "sha-256" => Some(Self::Sha256),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// A parsed `Content-Digest` field: the supported digests it carries (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentDigest {
    sha256: Option<[u8; 32]>,
    sha512: Option<[u8; 64]>,
}

fn malformed(detail: String) -> Error {
    Error::new(ErrorCode::DigestMismatch, detail)
}

/// The whole `body` against every supported digest in the request's `Content-Digest` (several
/// field lines joined, as RFC 9110 §5.3 allows). Called once a signature covering the field
/// verified: an absent field is then DIGEST_MISMATCH, and so is an empty body whose digest
/// differs (a body stripped on the way, whatever `Content-Length` announced).
pub fn check(fields: &dyn FieldSource, body: &[u8]) -> Result<(), Error> {
    let mut value = String::new();
    fields.for_each_value("content-digest", &mut |line| {
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push_str(&String::from_utf8_lossy(line));
    });
    if value.is_empty() {
        return Err(Error::new(
            ErrorCode::DigestMismatch,
            "content-digest is covered but absent",
        ));
    }
    let mut checker = parse(&value)?.checker();
    checker.update(body);
    checker.finish()
}

/// Parse a `Content-Digest` field value (several field lines must already be joined with ", ").
pub fn parse(value: &str) -> Result<ContentDigest, Error> {
    ContentDigest::parse(value)
}

impl ContentDigest {
    /// See [`parse`].
    pub fn parse(value: &str) -> Result<Self, Error> {
        let dict: sfv::Dictionary = sfv::Parser::new(value).parse().map_err(|e| {
            malformed(format!(
                "Content-Digest is not a structured dictionary: {e}"
            ))
        })?;
        let mut out = Self {
            sha256: None,
            sha512: None,
        };
        for (key, entry) in &dict {
            let key = key.as_str();
            // RFC 9530 §2: every member value is a Byte Sequence, known algorithm or not.
            let bytes = match entry {
                sfv::ListEntry::Item(item) => item.bare_item.as_byte_sequence(),
                sfv::ListEntry::InnerList(_) => None,
            }
            .ok_or_else(|| {
                malformed(format!(
                    "Content-Digest member {key:?} is not a byte sequence (:base64:)"
                ))
            })?;
            let Some(alg) = DigestAlg::from_key(key) else {
                continue; // unknown or insecure algorithm: ignored (RFC 9530 §2)
            };
            let wrong_len = || {
                malformed(format!(
                    "Content-Digest {} is {} bytes, expected {}",
                    alg.as_str(),
                    bytes.len(),
                    alg.output_len()
                ))
            };
            match alg {
                DigestAlg::Sha256 => {
                    out.sha256 = Some(bytes.try_into().map_err(|_| wrong_len())?);
                }
                DigestAlg::Sha512 => {
                    out.sha512 = Some(bytes.try_into().map_err(|_| wrong_len())?);
                }
            }
        }
        if out.sha256.is_none() && out.sha512.is_none() {
            return Err(malformed(
                "Content-Digest has no sha-256 or sha-512 member".to_owned(),
            ));
        }
        Ok(out)
    }

    /// The raw digest for `alg`, if the field carried one.
    pub fn get(&self, alg: DigestAlg) -> Option<&[u8]> {
        match alg {
            DigestAlg::Sha256 => self.sha256.as_ref().map(|d| d.as_slice()),
            DigestAlg::Sha512 => self.sha512.as_ref().map(|d| d.as_slice()),
        }
    }

    /// A hasher for the body that checks every supported digest this field carries.
    pub fn checker(&self) -> BodyDigestChecker {
        BodyDigestChecker {
            sha256: self.sha256.map(|d| (Sha256::new(), d)),
            sha512: self.sha512.map(|d| (Sha512::new(), d)),
            body_len: 0,
        }
    }
}

/// Hashes a body chunk by chunk (as it streams through the proxy) and compares at the end.
#[derive(Clone, Debug)]
pub struct BodyDigestChecker {
    sha256: Option<(Sha256, [u8; 32])>,
    sha512: Option<(Sha512, [u8; 64])>,
    body_len: u64,
}

impl BodyDigestChecker {
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some((h, _)) = &mut self.sha256 {
            h.update(chunk);
        }
        if let Some((h, _)) = &mut self.sha512 {
            h.update(chunk);
        }
        self.body_len = self.body_len.saturating_add(chunk.len() as u64);
    }

    /// Ok when every digest the field carried matches the body; else DIGEST_MISMATCH naming the
    /// first algorithm that differs. Digests are public, so a plain comparison is fine.
    pub fn finish(self) -> Result<(), Error> {
        let mismatch = |alg: DigestAlg| {
            Err(Error::new(
                ErrorCode::DigestMismatch,
                format!(
                    "{} of the body ({} bytes) does not match Content-Digest",
                    alg.as_str(),
                    self.body_len
                ),
            ))
        };
        if let Some((h, want)) = self.sha256
            && h.finalize().as_slice() != want.as_slice()
        {
            return mismatch(DigestAlg::Sha256);
        }
        if let Some((h, want)) = self.sha512
            && h.finalize().as_slice() != want.as_slice()
        {
            return mismatch(DigestAlg::Sha512);
        }
        Ok(())
    }
}

/// The `Content-Digest` value a signer sends for `body`, e.g. `sha-256=:X48E…BPE=:`.
pub fn content_digest_header(alg: DigestAlg, body: &[u8]) -> String {
    let b64 = match alg {
        DigestAlg::Sha256 => STANDARD.encode(Sha256::digest(body)),
        DigestAlg::Sha512 => STANDARD.encode(Sha512::digest(body)),
    };
    format!("{}=:{b64}:", alg.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = br#"{"hello": "world"}"#;
    const HELLO_256: &str = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";

    fn detail(r: Result<ContentDigest, Error>) -> String {
        match r {
            Ok(d) => panic!("expected an error, parsed {d:?}"),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::DigestMismatch);
                e.detail.into_owned()
            }
        }
    }

    #[test]
    fn check_reads_every_field_line_of_either_field_source() {
        let sha512 = content_digest_header(DigestAlg::Sha512, HELLO);
        let raw = |lines: &[&str]| -> Vec<(String, Vec<u8>)> {
            lines
                .iter()
                .map(|l| ("Content-Digest".to_owned(), l.as_bytes().to_vec()))
                .collect()
        };
        let map = |lines: &[&str]| {
            let mut h = http::HeaderMap::new();
            for l in lines {
                h.append("content-digest", http::HeaderValue::from_str(l).unwrap());
            }
            h
        };
        let wrong_512 = content_digest_header(DigestAlg::Sha512, b"other");
        let cases: [(&[&str], &[u8], Option<&str>); 6] = [
            (&[HELLO_256], HELLO, None),
            // Two lines: both members are checked, the second one wrong.
            (&[HELLO_256, &sha512], HELLO, None),
            (
                &[HELLO_256, &wrong_512],
                HELLO,
                Some("sha-512 of the body (18 bytes)"),
            ),
            // A stripped body does not skip the check.
            (&[HELLO_256], b"", Some("sha-256 of the body (0 bytes)")),
            (&[], HELLO, Some("covered but absent")),
            (&["md5=:AAAA:"], HELLO, Some("no sha-256 or sha-512")),
        ];
        for (lines, body, want) in cases {
            let results = [check(&raw(lines), body), check(&map(lines), body)];
            for r in results {
                match (want, r) {
                    (None, r) => r.unwrap(),
                    (Some(w), Ok(())) => panic!("{lines:?}: expected {w}, got Ok"),
                    (Some(w), Err(e)) => {
                        assert_eq!(e.code, ErrorCode::DigestMismatch, "{lines:?}");
                        assert!(e.detail.contains(w), "{lines:?}: {}", e.detail);
                    }
                }
            }
        }
    }

    #[test]
    fn header_round_trips_through_parse_and_checker() {
        for alg in [DigestAlg::Sha256, DigestAlg::Sha512] {
            let h = content_digest_header(alg, HELLO);
            assert!(h.starts_with(&format!("{}=:", alg.as_str())));
            let d = parse(&h).unwrap();
            assert_eq!(d.get(alg).map(<[u8]>::len), Some(alg.output_len()));
            let mut c = d.checker();
            c.update(HELLO);
            c.finish().unwrap();
        }
        assert_eq!(content_digest_header(DigestAlg::Sha256, HELLO), HELLO_256);
    }

    #[test]
    fn chunked_equals_one_shot() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let field = format!(
            "{}, {}",
            content_digest_header(DigestAlg::Sha256, &body),
            content_digest_header(DigestAlg::Sha512, &body)
        );
        let d = parse(&field).unwrap();
        for chunk in [1usize, 3, 64, 1000, 4096, body.len()] {
            let mut c = d.checker();
            for piece in body.chunks(chunk) {
                c.update(piece);
            }
            c.update(&[]);
            c.finish().unwrap();
        }
        // one byte changed anywhere fails, whatever the chunking
        let mut bad = body.clone();
        bad[5000] ^= 1;
        let mut c = d.checker();
        for piece in bad.chunks(333) {
            c.update(piece);
        }
        let e = c.finish().unwrap_err();
        assert_eq!(e.code, ErrorCode::DigestMismatch);
        assert!(e.detail.contains("sha-256"), "{}", e.detail);
        assert!(e.detail.contains("10000 bytes"), "{}", e.detail);
    }

    #[test]
    fn every_supported_member_is_checked() {
        // sha-256 right, sha-512 of another body: must fail on sha-512.
        let field = format!(
            "{}, {}",
            content_digest_header(DigestAlg::Sha256, HELLO),
            content_digest_header(DigestAlg::Sha512, b"other")
        );
        let mut c = parse(&field).unwrap().checker();
        c.update(HELLO);
        let e = c.finish().unwrap_err();
        assert!(e.detail.contains("sha-512"), "{}", e.detail);
    }

    #[test]
    fn unknown_algorithms_are_ignored() {
        let field = format!("md5=:AAAA:, {HELLO_256}, unixsum=:AQ==:;x=1");
        let d = parse(&field).unwrap();
        assert!(d.get(DigestAlg::Sha512).is_none());
        let mut c = d.checker();
        c.update(HELLO);
        c.finish().unwrap();
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let d = detail(parse("md5=:AAAA:"));
        assert_eq!(d, "Content-Digest has no sha-256 or sha-512 member");
        assert!(detail(parse("")).contains("no sha-256 or sha-512"));
        assert!(detail(parse("sha-256=abc")).contains("\"sha-256\" is not a byte sequence"));
        assert!(
            detail(parse(
                "md5=1, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
            ))
            .contains("\"md5\" is not a byte sequence")
        );
        assert!(detail(parse("sha-256=(:AAAA:)")).contains("not a byte sequence"));
        assert!(detail(parse("sha-256")).contains("not a byte sequence")); // boolean true
        assert_eq!(
            detail(parse("sha-256=:AAAA:")),
            "Content-Digest sha-256 is 3 bytes, expected 32"
        );
        // a sha-256 value under the sha-512 key
        assert!(
            detail(parse(&HELLO_256.replace("sha-256", "sha-512")))
                .contains("sha-512 is 32 bytes, expected 64")
        );
        for bad in [
            "sha-256=:not base64!:",
            "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;",
            "sha-256 = :X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        ] {
            assert!(
                detail(parse(bad)).starts_with("Content-Digest is not a structured dictionary"),
                "{bad}"
            );
        }
    }

    #[test]
    fn parameters_on_members_do_not_matter() {
        let d = parse(&format!("{HELLO_256};foo=bar")).unwrap();
        assert!(d.get(DigestAlg::Sha256).is_some());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_digest_like_input(
            s in "(sha-(256|512)|md5)=:[A-Za-z0-9+/=]{0,100}:(, ?[a-z0-9-]{1,8}(=[:A-Za-z0-9+/=;(\" )]{0,40})?){0,3}"
        ) {
            let _ = parse(&s);
        }
    }
}
