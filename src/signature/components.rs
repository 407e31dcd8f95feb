//! Component identifiers (RFC 9421 §2): parsing them from a covered-components list and deriving
//! their values from a request. Request components only: `@status`, `req` and `tr` are refused
//! with a message that says why.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sfv::{Dictionary, FieldType, Item, KeyRef, List, Parser, RefBareItem};

use super::RequestView;
use super::fields::{push_canonical_value, trim_ows};
use super::query::{self, Lookup};
use super::target::{Target, normalize_authority};
use crate::error::{Error, ErrorCode};

/// Derived components of a request (RFC 9421 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Derived {
    Method,
    TargetUri,
    Authority,
    Scheme,
    RequestTarget,
    Path,
    Query,
    QueryParam,
}

impl Derived {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "@method" => Self::Method,
            "@target-uri" => Self::TargetUri,
            "@authority" => Self::Authority,
            "@scheme" => Self::Scheme,
            "@request-target" => Self::RequestTarget,
            "@path" => Self::Path,
            "@query" => Self::Query,
            "@query-param" => Self::QueryParam,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Method => "@method",
            Self::TargetUri => "@target-uri",
            Self::Authority => "@authority",
            Self::Scheme => "@scheme",
            Self::RequestTarget => "@request-target",
            Self::Path => "@path",
            Self::Query => "@query",
            Self::QueryParam => "@query-param",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ComponentName {
    Derived(Derived),
    /// A header field, by lowercase name.
    Field(String),
}

/// One covered component: its name, its parameters, and its identifier serialised exactly as it
/// appears on the left of a signature base line (`"@query-param";name="id"`). Two components are
/// equal when their identifiers are: the identifier determines every other field.
#[derive(Clone, Debug)]
pub struct Component {
    pub name: ComponentName,
    /// `;sf` — re-serialise the field as a structured field.
    pub sf: bool,
    /// `;key="k"` — one member of a dictionary field.
    pub key: Option<String>,
    /// `;bs` — each field line wrapped as a byte sequence.
    pub bs: bool,
    /// `;name="n"` of `@query-param` (the encoded name).
    pub param_name: Option<String>,
    pub id: String,
}

impl PartialEq for Component {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Component {}

fn malformed(detail: String) -> Error {
    Error::new(ErrorCode::SignatureMalformed, detail)
}

impl Component {
    /// Parses one member of a covered-components inner list.
    pub fn from_item(item: &Item) -> Result<Self, Error> {
        Self::from_parts(
            item.serialize(),
            RefBareItem::from(&item.bare_item),
            item.params
                .iter()
                .map(|(k, v)| (k.as_ref(), RefBareItem::from(v))),
        )
    }

    /// `from_item` over a member borrowed from the field as it is parsed (no `Item` built), with
    /// `id` its serialisation.
    pub fn from_parts<'a>(
        id: String,
        bare: RefBareItem<'a>,
        params: impl Iterator<Item = (&'a KeyRef, RefBareItem<'a>)>,
    ) -> Result<Self, Error> {
        let RefBareItem::String(s) = bare else {
            return Err(malformed(format!(
                "component identifier {id} is not a string"
            )));
        };
        let raw = s.as_str();
        let name = if raw.starts_with('@') {
            match (Derived::from_name(raw), raw) {
                (Some(d), _) => ComponentName::Derived(d),
                (None, "@status") => {
                    return Err(malformed(
                        "\"@status\" is a response component; sigproxy verifies requests".into(),
                    ));
                }
                (None, "@signature-params") => {
                    return Err(malformed(
                        "\"@signature-params\" cannot be a covered component".into(),
                    ));
                }
                (None, _) => return Err(malformed(format!("unknown derived component \"{raw}\""))),
            }
        } else {
            if raw.is_empty() || raw.bytes().any(|b| !is_lower_tchar(b)) {
                return Err(malformed(format!(
                    "component name \"{raw}\" is not a lowercase field name"
                )));
            }
            ComponentName::Field(raw.to_owned())
        };
        let mut c = Component {
            name,
            sf: false,
            key: None,
            bs: false,
            param_name: None,
            id,
        };
        for (k, v) in params {
            match (k.as_str(), v) {
                ("sf", RefBareItem::Boolean(true)) => c.sf = true,
                ("bs", RefBareItem::Boolean(true)) => c.bs = true,
                ("key", RefBareItem::String(s)) => c.key = Some(s.as_str().to_owned()),
                ("name", RefBareItem::String(s)) => c.param_name = Some(s.as_str().to_owned()),
                ("req", _) => {
                    return Err(malformed(format!(
                        "{}: ;req refers to a request from a response signature",
                        c.id
                    )));
                }
                ("tr", _) => {
                    return Err(malformed(format!(
                        "{}: ;tr (trailer fields) is not supported by a proxy that verifies before forwarding",
                        c.id
                    )));
                }
                (other, _) => {
                    return Err(malformed(format!(
                        "{}: unsupported component parameter \"{other}\"",
                        c.id
                    )));
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Parses a component as written on a command line or in the policy: `@method`,
    /// `content-digest`, `"@query-param";name="id"`, `example-dict;key="a"`.
    pub fn parse_spec(spec: &str) -> Result<Self, Error> {
        let spec = spec.trim();
        let quoted = if spec.starts_with('"') {
            spec.to_owned()
        } else {
            let (name, params) = spec.split_once(';').map_or((spec, ""), |(n, p)| (n, p));
            if params.is_empty() {
                format!("\"{name}\"")
            } else {
                format!("\"{name}\";{params}")
            }
        };
        let item: Item = Parser::new(&quoted)
            .parse()
            .map_err(|e| malformed(format!("component {spec:?} is not a valid identifier: {e}")))?;
        Self::from_item(&item)
    }

    fn validate(&self) -> Result<(), Error> {
        let is_field = matches!(self.name, ComponentName::Field(_));
        if !is_field && (self.sf || self.bs || self.key.is_some()) {
            return Err(malformed(format!(
                "{}: sf, key and bs apply to fields only",
                self.id
            )));
        }
        if self.bs && (self.sf || self.key.is_some()) {
            return Err(malformed(format!(
                "{}: bs cannot be combined with sf or key",
                self.id
            )));
        }
        let is_qp = self.name == ComponentName::Derived(Derived::QueryParam);
        if is_qp != self.param_name.is_some() {
            return Err(malformed(format!(
                "{}: the name parameter goes with @query-param, and only there",
                self.id
            )));
        }
        Ok(())
    }

    /// The name as a string (`@path`, `content-type`).
    pub fn name_str(&self) -> &str {
        match &self.name {
            ComponentName::Derived(d) => d.name(),
            ComponentName::Field(f) => f,
        }
    }

    /// Appends this component's value for `req` to `out` (RFC 9421 §2.1–§2.2).
    pub fn push_value(&self, req: &RequestView<'_>, out: &mut String) -> Result<(), Error> {
        match &self.name {
            ComponentName::Derived(d) => push_derived(*d, self, req, out),
            ComponentName::Field(f) => self.push_field(f, req, out),
        }
    }

    fn push_field(&self, name: &str, req: &RequestView<'_>, out: &mut String) -> Result<(), Error> {
        let mut lines = 0usize;
        let mut ok = true;
        if self.bs {
            req.fields.for_each_value(name, &mut |v| {
                if lines > 0 {
                    out.push_str(", ");
                }
                out.push(':');
                out.push_str(&B64.encode(trim_ows(v)));
                out.push(':');
                lines += 1;
            });
        } else if self.sf || self.key.is_some() {
            let mut joined = String::new();
            req.fields.for_each_value(name, &mut |v| {
                if lines > 0 {
                    joined.push_str(", ");
                }
                ok &= push_canonical_value(&mut joined, v);
                lines += 1;
            });
            if lines > 0 && ok {
                return self.push_structured(name, &joined, out);
            }
        } else {
            req.fields.for_each_value(name, &mut |v| {
                if lines > 0 {
                    out.push_str(", ");
                }
                ok &= push_canonical_value(out, v);
                lines += 1;
            });
        }
        if lines == 0 {
            return Err(invalid(format!(
                "covered field \"{name}\" is not in the request"
            )));
        }
        if !ok {
            return Err(invalid(format!(
                "field \"{name}\" has non-ASCII or control bytes; sign it with ;bs"
            )));
        }
        Ok(())
    }

    fn push_structured(&self, name: &str, joined: &str, out: &mut String) -> Result<(), Error> {
        if let Some(key) = &self.key {
            let dict: Dictionary = Parser::new(joined)
                .parse()
                .map_err(|e| invalid(format!("field \"{name}\" is not a dictionary: {e}")))?;
            let member = dict
                .get(key.as_str())
                .ok_or_else(|| invalid(format!("field \"{name}\" has no member \"{key}\"")))?;
            let list: List = vec![member.clone()];
            out.push_str(&list.serialize().unwrap_or_default());
            return Ok(());
        }
        // The field's type is not known here; the three parses agree on the serialisation of any
        // text that more than one of them accepts, so the first that parses is the right one.
        let serialized = Parser::new(joined)
            .parse::<Dictionary>()
            .ok()
            .and_then(|d| d.serialize())
            .or_else(|| {
                Parser::new(joined)
                    .parse::<List>()
                    .ok()
                    .and_then(|l| l.serialize())
            })
            .or_else(|| {
                Parser::new(joined)
                    .parse::<Item>()
                    .ok()
                    .map(|i| i.serialize())
            })
            .ok_or_else(|| invalid(format!("field \"{name}\" is not a structured field")))?;
        out.push_str(&serialized);
        Ok(())
    }
}

fn invalid(detail: String) -> Error {
    Error::new(ErrorCode::SignatureInvalid, detail)
}

fn is_lower_tchar(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn push_derived(
    d: Derived,
    c: &Component,
    req: &RequestView<'_>,
    out: &mut String,
) -> Result<(), Error> {
    let target = Target::parse(req.target)
        .ok_or_else(|| invalid(format!("request target {:?} cannot be parsed", req.target)))?;
    let authority = match target {
        Target::Absolute { authority, .. } => Some(authority),
        _ => req.authority,
    };
    let need_authority = || {
        invalid(format!(
            "{} needs a Host, and the request has none",
            d.name()
        ))
    };
    let no_path = || {
        invalid(format!(
            "{} is undefined for request target {:?}",
            d.name(),
            req.target
        ))
    };
    match d {
        Derived::Method => out.push_str(req.method),
        Derived::Scheme => out.extend(req.scheme.chars().map(|c| c.to_ascii_lowercase())),
        Derived::Authority => {
            normalize_authority(authority.ok_or_else(need_authority)?, req.scheme, out)
        }
        Derived::RequestTarget => out.push_str(req.target),
        Derived::TargetUri => match target {
            Target::Absolute { .. } => out.push_str(req.target),
            Target::Origin { .. } => {
                out.push_str(req.scheme);
                out.push_str("://");
                out.push_str(authority.ok_or_else(need_authority)?);
                out.push_str(req.target);
            }
            _ => return Err(no_path()),
        },
        Derived::Path => out.push_str(target.path().ok_or_else(no_path)?),
        Derived::Query => {
            target.path().ok_or_else(no_path)?;
            out.push('?');
            out.push_str(target.query().unwrap_or(""));
        }
        Derived::QueryParam => {
            let name = c.param_name.as_deref().unwrap_or_default();
            match query::lookup(target.query().unwrap_or(""), name) {
                Lookup::Found(v) => out.push_str(&v),
                Lookup::Missing => {
                    return Err(invalid(format!(
                        "query parameter \"{name}\" is not in the request"
                    )));
                }
                Lookup::Repeated => {
                    return Err(invalid(format!(
                        "query parameter \"{name}\" occurs more than once; sign @query instead"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(
        spec: &str,
        method: &str,
        target: &str,
        fields: &[(&str, &str)],
    ) -> Result<String, Error> {
        let fields: Vec<(String, Vec<u8>)> = fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        let req = RequestView {
            method,
            target,
            scheme: "https",
            authority: Some("www.example.com"),
            fields: &fields,
        };
        let c = Component::parse_spec(spec)?;
        let mut out = String::new();
        c.push_value(&req, &mut out)?;
        Ok(out)
    }

    #[test]
    fn derived_components() {
        let t = "/path?param=value";
        assert_eq!(value("@method", "POST", t, &[]).unwrap(), "POST");
        assert_eq!(
            value("@target-uri", "POST", t, &[]).unwrap(),
            "https://www.example.com/path?param=value"
        );
        assert_eq!(
            value("@authority", "POST", t, &[]).unwrap(),
            "www.example.com"
        );
        assert_eq!(value("@scheme", "POST", t, &[]).unwrap(), "https");
        assert_eq!(value("@request-target", "POST", t, &[]).unwrap(), t);
        assert_eq!(value("@path", "POST", t, &[]).unwrap(), "/path");
        assert_eq!(value("@query", "POST", t, &[]).unwrap(), "?param=value");
        assert_eq!(value("@query", "GET", "/path", &[]).unwrap(), "?");
        assert_eq!(value("@query", "GET", "/path?", &[]).unwrap(), "?");
        assert_eq!(
            value("\"@query-param\";name=\"param\"", "GET", t, &[]).unwrap(),
            "value"
        );
    }

    #[test]
    fn identifiers_keep_their_parameters() {
        let c = Component::parse_spec("\"@query-param\";name=\"a b\"").unwrap();
        assert_eq!(c.id, "\"@query-param\";name=\"a b\"");
        assert_eq!(
            Component::parse_spec("example-dict;key=\"a\"").unwrap().id,
            "\"example-dict\";key=\"a\""
        );
    }

    #[test]
    fn refuses_what_a_request_verifier_cannot_do() {
        for bad in [
            "@status",
            "@signature-params",
            "@nope",
            "Content-Type",
            "date;req",
            "expires;tr",
            "@method;sf",
            "x;bs;sf",
            "@query-param",
            "@path;name=\"x\"",
            "x;foo",
        ] {
            let e = Component::parse_spec(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::SignatureMalformed, "{bad}: {e}");
        }
    }

    #[test]
    fn missing_field_and_non_ascii() {
        assert!(
            value("date", "GET", "/", &[])
                .unwrap_err()
                .detail
                .contains("\"date\"")
        );
        assert!(value("x", "GET", "/", &[("x", "caf\u{e9}")]).is_err());
        assert_eq!(
            value("x;bs", "GET", "/", &[("x", "caf\u{e9}")]).unwrap(),
            ":Y2Fmw6k=:"
        );
    }
}
