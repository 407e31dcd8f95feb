//! Parsing `Signature-Input` and `Signature` (RFC 9421 §4) with `sfv`: dictionaries keyed by
//! label, several labels per message, field lines combined as RFC 9651 says. A label that appears
//! twice is refused (an SF parser would let the second silently shadow the first).

use std::convert::Infallible;
use std::fmt;

use sfv::visitor::{DictionaryVisitor, EntryVisitor};
use sfv::{BareItem, Dictionary, KeyRef, ListEntry, Parser};

use super::components::Component;
use super::fields::FieldSource;
use crate::error::{Error, ErrorCode};

/// The signature parameters of RFC 9421 §2.3 that sigproxy understands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigParams {
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub alg: Option<String>,
    pub keyid: Option<String>,
    pub tag: Option<String>,
}

/// One labelled signature: what it covers, its parameters and its bytes.
#[derive(Clone, Debug)]
pub struct SignatureEntry {
    pub label: String,
    pub components: Vec<Component>,
    pub params: SigParams,
    /// The `@signature-params` value: the inner list with its parameters, in received order.
    pub params_value: String,
    pub signature: Vec<u8>,
}

fn malformed(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorCode::SignatureMalformed, detail)
}

/// Parses every labelled signature of a request. `Ok(None)` when the request carries neither
/// header (unsigned); one without the other, or a label in one but not the other, is malformed.
pub fn parse_signatures(fields: &dyn FieldSource) -> Result<Option<Vec<SignatureEntry>>, Error> {
    let inputs = parse_dict(fields, "signature-input")?;
    let sigs = parse_dict(fields, "signature")?;
    let (inputs, sigs) = match (inputs, sigs) {
        (None, None) => return Ok(None),
        (Some(i), Some(s)) => (i, s),
        (Some(_), None) => {
            return Err(Error::new(
                ErrorCode::SignatureMissing,
                "Signature-Input present but Signature missing",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::new(
                ErrorCode::SignatureMissing,
                "Signature present but Signature-Input missing",
            ));
        }
    };
    let mut out = Vec::with_capacity(inputs.len());
    for (key, entry) in &inputs {
        let label = key.as_str();
        let ListEntry::InnerList(list) = entry else {
            return Err(malformed(format!(
                "Signature-Input {label} is not an inner list"
            )));
        };
        let mut components = Vec::with_capacity(list.items.len());
        for item in &list.items {
            let c = Component::from_item(item)?;
            if components.iter().any(|p: &Component| p.id == c.id) {
                return Err(malformed(format!(
                    "Signature-Input {label} covers {} twice",
                    c.id
                )));
            }
            components.push(c);
        }
        let params = parse_params(label, &list.params)?;
        // Serialised from a borrow: cloning the entry into a one-member list cost a copy of
        // every component and parameter per request.
        let mut ser = sfv::ListSerializer::new();
        ser.members(std::iter::once(entry));
        let params_value = ser.finish().unwrap_or_default();
        let signature = match sigs.get(key) {
            Some(ListEntry::Item(item)) => match &item.bare_item {
                BareItem::ByteSequence(b) => b.clone(),
                _ => {
                    return Err(malformed(format!(
                        "Signature {label} is not a byte sequence"
                    )));
                }
            },
            Some(ListEntry::InnerList(_)) => {
                return Err(malformed(format!(
                    "Signature {label} is not a byte sequence"
                )));
            }
            None => {
                return Err(malformed(format!(
                    "Signature-Input has label {label} but Signature does not"
                )));
            }
        };
        out.push(SignatureEntry {
            label: label.to_owned(),
            components,
            params,
            params_value,
            signature,
        });
    }
    if let Some(extra) = sigs.keys().find(|k| !inputs.contains_key(*k)) {
        return Err(malformed(format!(
            "Signature has label {} but Signature-Input does not",
            extra.as_str()
        )));
    }
    if out.is_empty() {
        return Err(malformed("Signature-Input has no members"));
    }
    Ok(Some(out))
}

fn parse_params(label: &str, params: &sfv::Parameters) -> Result<SigParams, Error> {
    let mut p = SigParams::default();
    let bad = |name: &str, want: &str| {
        malformed(format!("Signature-Input {label}: {name} must be {want}"))
    };
    for (k, v) in params {
        let k = k.as_str();
        match k {
            "created" | "expires" => {
                let BareItem::Integer(i) = v else {
                    return Err(bad(k, "an integer"));
                };
                let i = i64::from(*i);
                if k == "created" {
                    p.created = Some(i)
                } else {
                    p.expires = Some(i)
                }
            }
            "nonce" | "alg" | "keyid" | "tag" => {
                let BareItem::String(s) = v else {
                    return Err(bad(k, "a string"));
                };
                let s = Some(s.as_str().to_owned());
                match k {
                    "nonce" => p.nonce = s,
                    "alg" => p.alg = s,
                    "keyid" => p.keyid = s,
                    _ => p.tag = s,
                }
            }
            // Parameters outside the RFC 9421 registry are signed (they are part of
            // @signature-params) but carry no meaning for this verifier.
            _ => {}
        }
    }
    Ok(p)
}

/// Parses every line of `name` as one dictionary; `Ok(None)` when the field is absent.
fn parse_dict(fields: &dyn FieldSource, name: &'static str) -> Result<Option<Dictionary>, Error> {
    let mut joined: Option<Vec<u8>> = None;
    fields.for_each_value(name, &mut |v| match &mut joined {
        Some(j) => {
            j.extend_from_slice(b", ");
            j.extend_from_slice(v);
        }
        None => joined = Some(v.to_vec()),
    });
    let Some(joined) = joined else {
        return Ok(None);
    };
    let mut duplicate = None;
    let visitor = NoDuplicates {
        dict: Dictionary::new(),
        duplicate: &mut duplicate,
    };
    match Parser::new(&joined).parse_dictionary_with_visitor(visitor) {
        Ok(d) => Ok(Some(d)),
        Err(_) if duplicate.is_some() => Err(malformed(format!(
            "{name} has label {} more than once",
            duplicate.unwrap_or_default()
        ))),
        Err(e) => Err(malformed(format!(
            "{name} is not a valid structured dictionary: {e}"
        ))),
    }
}

/// A dictionary visitor that refuses a repeated key instead of letting the last one win.
struct NoDuplicates<'a> {
    dict: Dictionary,
    duplicate: &'a mut Option<String>,
}

#[derive(Debug)]
struct DuplicateLabel;

impl fmt::Display for DuplicateLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("duplicate label")
    }
}

impl std::error::Error for DuplicateLabel {}

impl<'de> DictionaryVisitor<'de> for NoDuplicates<'_> {
    type Out = Dictionary;
    type Error = DuplicateLabel;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if self.dict.contains_key(key) {
            *self.duplicate = Some(key.as_str().to_owned());
            return Err(DuplicateLabel);
        }
        DictionaryVisitor::entry(&mut self.dict, key).map_err(|e: Infallible| match e {})
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok(self.dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(lines: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        lines
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const SIG: &str = "sig1=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

    #[test]
    fn parses_params_in_received_order() {
        let f = fields(&[
            (
                "Signature-Input",
                "sig1=(\"@method\" \"@path\");keyid=\"k\";created=1;expires=2;nonce=\"n\";alg=\"ed25519\";tag=\"t\"",
            ),
            ("Signature", SIG),
        ]);
        let e = parse_signatures(&f).unwrap().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].params_value,
            "(\"@method\" \"@path\");keyid=\"k\";created=1;expires=2;nonce=\"n\";alg=\"ed25519\";tag=\"t\""
        );
        assert_eq!(e[0].params.created, Some(1));
        assert_eq!(e[0].params.tag.as_deref(), Some("t"));
        assert_eq!(e[0].signature.len(), 64);
    }

    #[test]
    fn several_labels_over_several_lines() {
        let f = fields(&[
            ("Signature-Input", "a=(\"@method\");created=1"),
            ("signature-input", "b=(\"@path\");created=2"),
            ("Signature", "a=:AA==:, b=:AQ==:"),
        ]);
        let e = parse_signatures(&f).unwrap().unwrap();
        assert_eq!(
            e.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn refuses_malformed_and_duplicates() {
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("Signature-Input", "sig1=(\"@method\";created=1"),
                ("Signature", SIG),
            ],
            &[
                ("Signature-Input", "sig1=(\"@method\");created=1"),
                ("Signature", "sig1=:not base64!:"),
            ],
            &[
                ("Signature-Input", "sig1=(\"@method\");created=1"),
                ("Signature-Input", "sig1=(\"@path\");created=1"),
                ("Signature", SIG),
            ],
            &[
                ("Signature-Input", "sig1=(\"@method\");created=1"),
                ("Signature", "sig1=:AA==:, sig1=:AQ==:"),
            ],
            &[
                ("Signature-Input", "sig1=(\"@method\");created=\"1\""),
                ("Signature", SIG),
            ],
            &[
                (
                    "Signature-Input",
                    "sig1=(\"@method\" \"@method\");created=1",
                ),
                ("Signature", SIG),
            ],
            &[
                ("Signature-Input", "sig1=(\"@method\");created=1"),
                ("Signature", "sig2=:AA==:"),
            ],
            &[("Signature-Input", "sig1=\"@method\""), ("Signature", SIG)],
            &[
                ("Signature-Input", "keyId=\"x\",headers=\"date\""),
                ("Signature", SIG),
            ],
        ];
        for c in cases {
            let e = parse_signatures(&fields(c)).unwrap_err();
            assert_eq!(e.code, ErrorCode::SignatureMalformed, "{c:?}: {e}");
        }
        let dup = parse_signatures(&fields(cases[2])).unwrap_err();
        assert!(dup.detail.contains("sig1 more than once"), "{dup}");
    }

    #[test]
    fn unsigned_and_half_signed() {
        assert!(
            parse_signatures(&fields(&[("Host", "x")]))
                .unwrap()
                .is_none()
        );
        let e = parse_signatures(&fields(&[("Signature", SIG)])).unwrap_err();
        assert_eq!(e.code, ErrorCode::SignatureMissing);
    }
}
