//! A fast reader for key files in the block layout `sigproxy keygen` prints and key management
//! tools write (one `key: value` per line, under `keys:` or as a top-level list). It accepts a
//! strict subset of YAML on which it reads exactly what the full reader (`yaml` + `parse_list`)
//! reads — same keys, same values, same positions — and declines (`None`) everything else: flow
//! style, escapes, comments after a value, non-ASCII text, tabs, CRLF, unknown or repeated keys,
//! scalars that would not be strings, and any value the full reader would refuse. A declined file
//! goes through the full reader, which produces the exact error messages. The equivalence is
//! checked against the full reader by a property test below.

use crate::keys::{
    KeyPos, KeySource, KeyStatus, KeyTable, KeyTableBuilder, decode_points_while, point_slots,
    undecoded,
};
use crate::policy::yaml::{Value, resolve_plain};
use ed25519_dalek::VerifyingKey;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    KeyId,
    ClientId,
    PublicKey,
    Status,
}

#[derive(Default)]
struct Item<'a> {
    pos: KeyPos,
    key_id: Option<&'a str>,
    client_id: Option<&'a str>,
    public_key: Option<[u8; 32]>,
    status: Option<KeyStatus>,
}

impl<'a> Item<'a> {
    /// `None`: a repeated key or a value the full reader would refuse.
    fn set(&mut self, field: Field, value: &'a str) -> Option<()> {
        match field {
            Field::KeyId if self.key_id.is_none() => self.key_id = Some(non_blank(value)?),
            Field::ClientId if self.client_id.is_none() => {
                self.client_id = Some(non_blank(value)?);
            }
            Field::PublicKey if self.public_key.is_none() => {
                let text = value.trim();
                // PEM and JWK keys are rare in bulk files; the full reader handles them.
                if text.starts_with('-') || text.starts_with('{') {
                    return None;
                }
                self.public_key = Some(crate::keys::base64_32(text).ok()?);
            }
            Field::Status if self.status.is_none() => {
                self.status = Some(match value {
                    "active" => KeyStatus::Active,
                    "revoked" => KeyStatus::Revoked,
                    _ => return None,
                });
            }
            _ => return None,
        }
        Some(())
    }
}

fn non_blank(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// A key file read by the fast path, its points not decoded yet: the rows in a builder (ids,
/// clients, status, positions), the public keys' bytes, and slots for their points. Everything is
/// allocated on the calling thread; `decode_points_while` fills `points` on every core.
pub(crate) struct Prepared {
    pub builder: KeyTableBuilder,
    pub raw: Vec<[u8; 32]>,
    pub points: Vec<VerifyingKey>,
}

impl Prepared {
    /// The table, once `points` are decoded; `None` if any is not a point (the full reader then
    /// names it). `all_decoded`: the decoder said every key of its batch decoded; when it did
    /// not, the keys of this file are checked one by one (the culprit may be another file's).
    pub fn finish(self, all_decoded: bool) -> Option<KeyTable> {
        if self.points.len() != self.raw.len()
            || !all_decoded && !undecoded(&self.raw, &self.points).is_empty()
        {
            return None;
        }
        drop(self.raw);
        self.builder.finish_with_points(self.points).ok()
    }
}

/// The table of `text`, or `None` when the full reader must read it.
pub(super) fn parse(text: &str, source: &KeySource) -> Option<KeyTable> {
    let mut p = prepare(text, source)?;
    let ((), ok) = decode_points_while(&p.raw, &mut p.points, || ());
    p.finish(ok)
}

/// Only printable ASCII and `\n`; checked 64 bytes at a time so that it vectorises.
fn plain_ascii(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|c| {
        c.iter().fold(true, |ok, &b| {
            ok & (b == b'\n' || b.wrapping_sub(b' ') < 95)
        })
    })
}

/// The rows and raw keys of `text`, or `None` when the full reader must read it.
pub(crate) fn prepare(text: &str, source: &KeySource) -> Option<Prepared> {
    if !plain_ascii(text.as_bytes()) {
        return None;
    }
    let mut items: Vec<Item<'_>> = Vec::with_capacity(text.len() / 100);
    // Indentation of the `- ` of every item, fixed by the first one.
    let mut indent: Option<usize> = None;
    let mut first = true;
    for (n, line) in text.split('\n').enumerate() {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let spaces = line.len() - trimmed.len();
        if first {
            first = false;
            if spaces == 0 && trimmed.trim_end_matches(' ') == "keys:" {
                continue;
            }
        }
        let line_no = u32::try_from(n + 1).ok()?;
        if let Some(rest) = trimmed.strip_prefix("- ") {
            if *indent.get_or_insert(spaces) != spaces {
                return None;
            }
            // Exactly one space after the dash: the mapping's keys then sit at indent + 2.
            if rest.starts_with(' ') {
                return None;
            }
            let col = u32::try_from(spaces + 3).ok()?;
            items.push(Item {
                pos: KeyPos { line: line_no, col },
                ..Item::default()
            });
            let (field, value) = key_value(rest)?;
            items.last_mut()?.set(field, value)?;
        } else {
            if indent.map(|i| i + 2) != Some(spaces) {
                return None;
            }
            let (field, value) = key_value(trimmed)?;
            items.last_mut()?.set(field, value)?;
        }
    }
    let mut raw: Vec<[u8; 32]> = Vec::with_capacity(items.len());
    let mut id_bytes = 0;
    for item in &items {
        raw.push(item.public_key?);
        id_bytes += item.key_id?.len();
    }
    let mut b = KeyTable::builder(source.clone());
    b.reserve(items.len(), id_bytes);
    for item in &items {
        let key_id = item.key_id?;
        b.push_deferred(
            key_id,
            item.client_id.unwrap_or(key_id),
            item.status.unwrap_or(KeyStatus::Active),
            Some(item.pos),
        )
        .ok()?;
    }
    drop(items);
    let points = point_slots(raw.len());
    Some(Prepared {
        builder: b,
        raw,
        points,
    })
}

/// `name: value` with a known name, at least one space after the colon and a value the full
/// reader reads as this exact string.
fn key_value(s: &str) -> Option<(Field, &str)> {
    // The names hold no `:` or space, so the first ": " follows the name exactly when the line
    // starts with "name: ".
    let (field, value) = match s.as_bytes().first()? {
        b'k' => (Field::KeyId, s.strip_prefix("key_id: ")?),
        b'c' => (Field::ClientId, s.strip_prefix("client_id: ")?),
        b'p' => (Field::PublicKey, s.strip_prefix("public_key: ")?),
        b's' => (Field::Status, s.strip_prefix("status: ")?),
        _ => return None,
    };
    Some((field, scalar(value.trim_start_matches(' '))?))
}

/// A double- or single-quoted scalar without escapes, or a plain scalar of "safe" characters
/// that the YAML 1.2 core schema resolves to a string; trailing spaces only after it.
fn scalar(v: &str) -> Option<&str> {
    let quoted = |q: char| -> Option<&str> {
        let body = v.strip_prefix(q)?;
        let end = body.find(q)?;
        let (inner, after) = (body.get(..end)?, body.get(end + 1..)?);
        (!inner.contains('\\') && after.bytes().all(|b| b == b' ')).then_some(inner)
    };
    match v.as_bytes().first()? {
        b'"' => quoted('"'),
        b'\'' => quoted('\''),
        _ => {
            let plain = v.trim_end_matches(' ');
            let safe = |b: u8| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'+' | b'=' | b'-')
            };
            let ok = plain.bytes().all(safe) && !plain.starts_with('-');
            if !ok {
                return None;
            }
            // Null, booleans and numbers start with one of `nNtTfF`, a digit, `.`, `+`, `-` or
            // `~`: any other letter first is a string without asking (and allocating).
            if plain
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() && !b"nNtTfF".contains(&b))
            {
                return Some(plain);
            }
            match resolve_plain(plain) {
                Value::Str(_) => Some(plain),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::key_entries::parse_key_file_entries;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use std::path::Path;

    const PK: &str = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";
    const PK2: &str = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";

    type Row = (String, String, KeyStatus, [u8; 32], KeyPos);

    /// What the full reader makes of `text`, as the fast reader's table would show it; `None` when
    /// it reports any error.
    fn full(text: &str) -> Option<Vec<Row>> {
        let (entries, errors) = parse_key_file_entries(text, Path::new("f.yaml"));
        errors.is_empty().then(|| {
            entries
                .into_iter()
                .map(|e| {
                    let pos = KeyPos {
                        line: e.pos.line as u32,
                        col: e.pos.col as u32,
                    };
                    (e.key_id, e.client_id, e.status, e.key.to_bytes(), pos)
                })
                .collect()
        })
    }

    fn fast(text: &str) -> Option<Vec<Row>> {
        let t = parse(text, &KeySource::File("f.yaml".into()))?;
        Some(
            t.iter()
                .map(|k| {
                    (
                        k.key_id.to_owned(),
                        k.client_id.to_owned(),
                        k.status,
                        k.key.to_bytes(),
                        k.pos.unwrap(),
                    )
                })
                .collect(),
        )
    }

    /// The fast reader either declines or agrees with the full reader, which must then accept.
    fn agree(text: &str) -> bool {
        match fast(text) {
            None => true,
            Some(f) => {
                assert_eq!(
                    Some(&f),
                    full(text).as_ref(),
                    "fast and full differ on\n{text}"
                );
                true
            }
        }
    }

    #[test]
    fn keygen_layout_is_read_fast_and_the_same() {
        let text = format!(
            "# rotated 2026-11\nkeys:\n  - key_id: web-frontend-v1\n    client_id: web-frontend\n    public_key: {PK}\n    status: active\n\n  - key_id: \"old v0\"\n    public_key: '{PK2}'\n    status: revoked   \n"
        );
        let f = fast(&text).expect("keygen layout takes the fast path");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].0, "old v0");
        assert_eq!(f[1].1, "old v0");
        assert_eq!(f[1].4, KeyPos { line: 8, col: 5 });
        assert!(agree(&text));
        let bare =
            format!("- key_id: a\n  public_key: \"{PK}\"\n- public_key: {PK}\n  key_id: b\n");
        assert_eq!(fast(&bare).unwrap().len(), 2);
        assert!(agree(&bare));
        assert_eq!(fast("").unwrap().len(), 0);
        assert_eq!(fast("keys:\n").unwrap().len(), 0);
        assert!(agree("keys:\n"));
    }

    #[test]
    fn anything_unusual_is_declined() {
        let ok = format!("- key_id: a\n  public_key: {PK}\n");
        assert!(fast(&ok).is_some());
        for text in [
            format!("- {{key_id: a, public_key: {PK}}}\n"),
            format!("- key_id: a # comment\n  public_key: {PK}\n"),
            format!("- key_id: \"a\\tb\"\n  public_key: {PK}\n"),
            format!("- key_id: a\r\n  public_key: {PK}\r\n"),
            format!("- key_id: a\n\tpublic_key: {PK}\n"),
            format!("- key_id: é\n  public_key: {PK}\n"),
            format!("- key_id: 12\n  public_key: {PK}\n"),
            format!("- key_id: true\n  public_key: {PK}\n"),
            format!("- key_id: null\n  public_key: {PK}\n"),
            format!("- key_id: a\n  key_id: b\n  public_key: {PK}\n"),
            format!("- key_id: a\n  public_key: {PK}\n  stauts: active\n"),
            format!("- key_id: a\n  public_key: {PK}\n  status: Active\n"),
            "- key_id: a\n  public_key: nope\n".to_string(),
            format!("- key_id: \"\"\n  public_key: {PK}\n"),
            "- key_id: a\n".to_string(),
            format!("- client_id: a\n  public_key: {PK}\n"),
            format!("- key_id: a\n    public_key: {PK}\n"),
            format!("---\n- key_id: a\n  public_key: {PK}\n"),
            format!("keys:\n  - key_id: a\n    public_key: {PK}\nother: 1\n"),
            "keys: []\n".to_string(),
            format!("-  key_id: a\n   public_key: {PK}\n"),
            format!("- key_id:a\n  public_key: {PK}\n"),
            format!("- key_id: -a\n  public_key: {PK}\n"),
            // y = 2 is not a point on the curve: the full reader names it.
            "- key_id: a\n  public_key: AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".to_string(),
        ] {
            assert!(fast(&text).is_none(), "accepted:\n{text}");
        }
    }

    #[test]
    fn only_printable_ascii_and_newlines_pass() {
        assert!(plain_ascii(b" azAZ09~\n"));
        assert!(plain_ascii(b""));
        for bad in [0x7f, 0x1f, b'\t', b'\r', 0x80, 0xff, 0] {
            let mut long = vec![b'a'; 200];
            long[130] = bad;
            assert!(!plain_ascii(&long), "{bad:#x} passed");
            assert!(!plain_ascii(&[bad]), "{bad:#x} passed");
        }
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("web-frontend-v1".to_string()),
            Just(PK.to_string()),
            Just(PK2.to_string()),
            Just(PK.trim_end_matches('=').to_string()),
            Just(PK.replace('+', "-").replace('/', "_")),
            Just("active".to_string()),
            Just("revoked".to_string()),
            Just("true".to_string()),
            Just("~".to_string()),
            Just("12".to_string()),
            Just("1e3".to_string()),
            Just(".inf".to_string()),
            Just("0x1F".to_string()),
            Just("Null".to_string()),
            Just("FALSE".to_string()),
            Just("no".to_string()),
            Just("e5".to_string()),
            Just("".to_string()),
            Just("=".to_string()),
            Just(".".to_string()),
            Just("a:b".to_string()),
            Just("a #b".to_string()),
            "[ -~]{0,12}",
        ]
    }

    fn quoted(v: String) -> impl Strategy<Value = String> {
        prop_oneof![
            Just(v.clone()),
            Just(format!("\"{v}\"")),
            Just(format!("'{v}'")),
            Just(format!("{v}  ")),
        ]
    }

    /// Mostly what the full reader accepts, sometimes not (a random value, a misspelt key).
    fn mostly(good: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = String> {
        prop_oneof![15 => good, 1 => value()].prop_flat_map(quoted)
    }

    fn item() -> impl Strategy<Value = Vec<String>> {
        let id = || "[a-zA-Z0-9][a-zA-Z0-9._=/+-]{0,10}";
        let pk = prop_oneof![
            Just(PK.to_string()),
            Just(PK2.to_string()),
            Just(PK.trim_end_matches('=').to_string()),
            Just(PK.replace('+', "-").replace('/', "_")),
            Just(format!(" {PK} ")),
        ];
        let status = prop_oneof![Just("active".to_string()), Just("revoked".to_string())];
        let sep = || prop_oneof![16 => Just(": "), 2 => Just(":   "), 1 => Just(":")];
        (
            (sep(), mostly(id())),
            (sep(), mostly(pk)),
            prop::option::of((sep(), mostly(id()))),
            prop::option::of((sep(), mostly(status))),
            prop::option::weighted(0.1, Just("stauts: active".to_string())),
            prop::option::weighted(0.05, Just("key_id: again".to_string())),
        )
            .prop_map(|(k, p, c, st, stray, twice)| {
                let mut fields = vec![
                    format!("key_id{}{}", k.0, k.1),
                    format!("public_key{}{}", p.0, p.1),
                ];
                fields.extend(c.map(|(s, v)| format!("client_id{s}{v}")));
                fields.extend(st.map(|(s, v)| format!("status{s}{v}")));
                fields.extend(stray);
                fields.extend(twice);
                fields
            })
            .prop_shuffle()
    }

    fn document() -> impl Strategy<Value = String> {
        let extra = prop_oneof![
            6 => Just(String::new()),
            1 => Just("\n".to_string()),
            1 => Just("  # note\n".to_string()),
            1 => Just(" \n".to_string()),
        ];
        (
            prop_oneof![
                Just(""),
                Just("keys:\n"),
                Just("# c\nkeys:\n"),
                Just("keys:  \n")
            ],
            0usize..4,
            prop::collection::vec((item(), extra, 0usize..6), 0..5),
        )
            .prop_map(|(head, indent, items)| {
                let mut s = head.to_string();
                for (fields, extra, jitter) in items {
                    for (i, f) in fields.iter().enumerate() {
                        let pad = if i == 0 {
                            format!("{}- ", " ".repeat(indent))
                        } else {
                            // Mostly the right indentation, sometimes not.
                            " ".repeat(indent + 2 + usize::from(jitter == 2))
                        };
                        s.push_str(&pad);
                        s.push_str(f);
                        s.push('\n');
                    }
                    s.push_str(&extra);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn fast_never_disagrees_with_the_full_reader(doc in document()) {
            prop_assert!(agree(&doc));
        }
    }

    #[test]
    fn generated_documents_often_take_the_fast_path() {
        // The property above would pass vacuously if the fast path always declined.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = document();
        let mut taken = 0;
        for _ in 0..500 {
            let doc = strategy.new_tree(&mut runner).unwrap().current();
            if fast(&doc).is_some_and(|k| !k.is_empty()) {
                taken += 1;
            }
        }
        assert!(
            taken > 50,
            "fast path taken on only {taken} of 500 documents"
        );
    }
}
