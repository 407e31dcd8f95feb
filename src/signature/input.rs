//! Parsing `Signature-Input` and `Signature` (RFC 9421 §4) with `sfv`: dictionaries keyed by
//! label, several labels per message, field lines combined as RFC 9651 says. A label that appears
//! twice is refused (an SF parser would let the second silently shadow the first).

use std::convert::Infallible;
use std::fmt;

use sfv::visitor::{
    DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor, ParameterVisitor,
};
use sfv::{BareItemFromInput, KeyRef, Parser, RefBareItem};

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
///
/// Both fields are read by `sfv` visitors straight into what is needed here — labels, items
/// and parameters borrowed from the field's bytes, the signature's decoded bytes — rather than
/// into a `Dictionary` that is then walked and copied (per signed request, ~30 allocations
/// fewer). The `@signature-params` value is `sfv`'s serialisation of the inner list as parsed.
pub fn parse_signatures(fields: &dyn FieldSource) -> Result<Option<Vec<SignatureEntry>>, Error> {
    let input_field = joined(fields, "signature-input");
    let signature_field = joined(fields, "signature");
    let inputs = match &input_field {
        Some(f) => Some(parse_dict::<InnerList>(f, "signature-input")?),
        None => None,
    };
    let sigs = match &signature_field {
        Some(f) => Some(parse_dict::<Vec<u8>>(f, "signature")?),
        None => None,
    };
    let (inputs, mut sigs) = match (inputs, sigs) {
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
    for (key, list) in &inputs {
        let label = key.as_str();
        let Some(list) = list else {
            return Err(malformed(format!(
                "Signature-Input {label} is not an inner list"
            )));
        };
        let (components, params_value) = components_and_value(label, list)?;
        let params = parse_params(label, &list.params)?;
        let signature = match sigs.iter_mut().find(|(k, _)| k == key) {
            Some((_, Some(bytes))) => std::mem::take(bytes),
            Some((_, None)) => {
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
    if let Some((extra, _)) = sigs
        .iter()
        .find(|(k, _)| !inputs.iter().any(|(i, _)| i == k))
    {
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

/// Parameters as parsed, in order, a repeated key keeping its first place and its last value
/// (RFC 9651 §4.2.3.2, as `sfv::Parameters` does).
type Params<'de> = Vec<(&'de KeyRef, BareItemFromInput<'de>)>;

/// One inner list of `Signature-Input`: its items (each with its parameters) and its parameters.
#[derive(Default)]
struct InnerList<'de> {
    items: Vec<(BareItemFromInput<'de>, Params<'de>)>,
    params: Params<'de>,
}

fn refs<'a>(params: &'a Params<'_>) -> impl Iterator<Item = (&'a KeyRef, RefBareItem<'a>)> {
    params.iter().map(|(k, v)| (*k, RefBareItem::from(v)))
}

/// The covered components and the `@signature-params` value (the inner list as RFC 9651
/// §4.1.1.1 serialises it), in one pass: a component's identifier is its item's serialisation,
/// cut out of the value as it is written rather than serialised a second time.
fn components_and_value(
    label: &str,
    list: &InnerList<'_>,
) -> Result<(Vec<Component>, String), Error> {
    let mut components: Vec<Component> = Vec::with_capacity(list.items.len());
    let mut value = String::new();
    let mut ser = sfv::ListSerializer::with_buffer(&mut value);
    let mut inner = ser.inner_list();
    // Where the next item starts: after "(", then after each item and its one separating space.
    let mut start = 1;
    for (bare, params) in &list.items {
        let written = inner.bare_item(bare).parameters(refs(params)).finish();
        let id = written.get(start..).unwrap_or_default().to_owned();
        start = written.len() + 1;
        let c = Component::from_parts(id, bare.into(), refs(params))?;
        if components.iter().any(|p| p.id == c.id) {
            return Err(malformed(format!(
                "Signature-Input {label} covers {} twice",
                c.id
            )));
        }
        components.push(c);
    }
    inner.finish().parameters(refs(&list.params));
    drop(ser);
    Ok((components, value))
}

fn parse_params(label: &str, params: &Params<'_>) -> Result<SigParams, Error> {
    let mut p = SigParams::default();
    let bad = |name: &str, want: &str| {
        malformed(format!("Signature-Input {label}: {name} must be {want}"))
    };
    for (k, v) in params {
        let k = k.as_str();
        match k {
            "created" | "expires" => {
                let BareItemFromInput::Integer(i) = v else {
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
                let BareItemFromInput::String(s) = v else {
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

/// Every line of `name`, combined as RFC 9110 §5.3 says; `None` when the field is absent.
fn joined(fields: &dyn FieldSource, name: &'static str) -> Option<Vec<u8>> {
    let mut joined: Option<Vec<u8>> = None;
    fields.for_each_value(name, &mut |v| match &mut joined {
        Some(j) => {
            j.extend_from_slice(b", ");
            j.extend_from_slice(v);
        }
        None => joined = Some(v.to_vec()),
    });
    joined
}

/// A dictionary's members in order: each label with its value read into a `T` (`None`: the
/// value is not of that kind).
type Members<'de, T> = Vec<(&'de KeyRef, Option<T>)>;

/// Parses `field` as one dictionary of `T`s, refusing a label that appears twice (an SF parser
/// would let the second silently replace the first).
fn parse_dict<'de, T: Member<'de>>(
    field: &'de [u8],
    name: &'static str,
) -> Result<Members<'de, T>, Error> {
    let mut duplicate = None;
    let visitor = Dict {
        members: Vec::new(),
        duplicate: &mut duplicate,
    };
    match Parser::new(field).parse_dictionary_with_visitor(visitor) {
        Ok(d) => Ok(d),
        Err(_) if duplicate.is_some() => Err(malformed(format!(
            "{name} has label {} more than once",
            duplicate.unwrap_or_default()
        ))),
        Err(e) => Err(malformed(format!(
            "{name} is not a valid structured dictionary: {e}"
        ))),
    }
}

/// What a member's value is read into, by the entry visitor it gives for its slot.
trait Member<'de>: Sized {
    fn visitor(slot: &mut Option<Self>) -> impl EntryVisitor<'de>;
}

struct Dict<'a, 'de, T> {
    members: Members<'de, T>,
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

impl<'de, T: Member<'de>> DictionaryVisitor<'de> for Dict<'_, 'de, T> {
    type Out = Members<'de, T>;
    type Error = DuplicateLabel;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if self.members.iter().any(|(k, _)| *k == key) {
            *self.duplicate = Some(key.as_str().to_owned());
            return Err(DuplicateLabel);
        }
        self.members.push((key, None));
        let at = self.members.len() - 1;
        Ok(T::visitor(&mut self.members[at].1))
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok(self.members)
    }
}

/// `Signature-Input`: each member an inner list (a bare item stays `None`).
impl<'de> Member<'de> for InnerList<'de> {
    fn visitor(slot: &mut Option<Self>) -> impl EntryVisitor<'de> {
        InputEntry(slot)
    }
}

struct InputEntry<'a, 'de>(&'a mut Option<InnerList<'de>>);

impl<'de> EntryVisitor<'de> for InputEntry<'_, 'de> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(Ignored)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        Ok(self.0.insert(InnerList::default()))
    }
}

impl<'de> InnerListVisitor<'de> for &mut InnerList<'de> {
    type Error = Infallible;

    fn item(&mut self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(ListItem(&mut self.items))
    }

    fn finish(self) -> Result<impl ParameterVisitor<'de>, Self::Error> {
        Ok(ParamsOf(&mut self.params))
    }
}

struct ListItem<'a, 'de>(&'a mut Vec<(BareItemFromInput<'de>, Params<'de>)>);

impl<'de> ItemVisitor<'de> for ListItem<'_, 'de> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare_item: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Self::Error> {
        self.0.push((bare_item, Vec::new()));
        let at = self.0.len() - 1;
        Ok(ParamsOf(&mut self.0[at].1))
    }
}

struct ParamsOf<'a, 'de>(&'a mut Params<'de>);

impl<'de> ParameterVisitor<'de> for ParamsOf<'_, 'de> {
    type Out = ();
    type Error = Infallible;

    fn parameter(
        &mut self,
        key: &'de KeyRef,
        value: BareItemFromInput<'de>,
    ) -> Result<(), Self::Error> {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// `Signature`: each member a byte sequence (anything else stays `None`).
impl<'de> Member<'de> for Vec<u8> {
    fn visitor(slot: &mut Option<Self>) -> impl EntryVisitor<'de> {
        SignatureEntryVisitor(slot)
    }
}

struct SignatureEntryVisitor<'a>(&'a mut Option<Vec<u8>>);

impl<'de> EntryVisitor<'de> for SignatureEntryVisitor<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        Ok(Ignored)
    }
}

impl<'de> ItemVisitor<'de> for SignatureEntryVisitor<'_> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare_item: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Self::Error> {
        if let BareItemFromInput::ByteSequence(b) = bare_item {
            *self.0 = Some(b);
        }
        // Parameters on a signature carry no meaning here.
        Ok(Ignored)
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

    /// The reading through `sfv::Dictionary` this module used before its visitors: labels,
    /// component identifiers, `@signature-params` and signature bytes must come out the same.
    fn through_dictionary(input: &str, sig: &str) -> Vec<(String, Vec<String>, String, Vec<u8>)> {
        use sfv::{BareItem, Dictionary, FieldType, ListEntry};
        let inputs: Dictionary = Parser::new(input).parse().unwrap();
        let sigs: Dictionary = Parser::new(sig).parse().unwrap();
        inputs
            .iter()
            .map(|(k, e)| {
                let ListEntry::InnerList(list) = e else {
                    panic!("{k:?} is not an inner list")
                };
                let mut ser = sfv::ListSerializer::new();
                ser.members(std::iter::once(e));
                let Some(ListEntry::Item(item)) = sigs.get(k) else {
                    panic!("no signature for {k:?}")
                };
                let BareItem::ByteSequence(b) = &item.bare_item else {
                    panic!("{k:?} is not bytes")
                };
                (
                    k.as_str().to_owned(),
                    list.items.iter().map(|i| i.serialize()).collect(),
                    ser.finish().unwrap(),
                    b.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn the_visitors_read_what_a_dictionary_reads() {
        let cases: &[(&str, &str)] = &[
            (
                "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
                "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
            ),
            (
                "s=(\"@query-param\";name=\"Pet\" \"example-dict\";key=\"a\" \"example-dict\";sf \"x-bin\";bs);created=1;keyid=\"k\"",
                "s=:AA==:;p=1",
            ),
            // A repeated parameter keeps its place and takes the last value.
            (
                "s=(\"@method\");created=1;keyid=\"a\";created=2",
                "s=:AQ==:",
            ),
            // Every kind of parameter value, in its canonical serialisation.
            (
                "s=(\"@method\");created=1;dec=1.50;tok=a:b/c;flag;off=?0;bin=:AAE=:;keyid=\"q\\\"\\\\\";neg=-7",
                "s=:AQI=:",
            ),
            // Whitespace the grammar allows, and several labels over the combined lines.
            (
                "a=(  \"@method\"   \"@path\" );created=1,   b=();created=2;expires=3",
                "b=:AA==:,a=:AQ==:",
            ),
        ];
        for (input, sig) in cases {
            let got = parse_signatures(&fields(&[("Signature-Input", input), ("Signature", sig)]))
                .unwrap()
                .unwrap();
            let got: Vec<_> = got
                .into_iter()
                .map(|e| {
                    (
                        e.label,
                        e.components.into_iter().map(|c| c.id).collect(),
                        e.params_value,
                        e.signature,
                    )
                })
                .collect();
            assert_eq!(got, through_dictionary(input, sig), "{input}");
        }
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
