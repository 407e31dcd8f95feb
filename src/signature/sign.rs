//! Signing a request (RFC 9421 §3.1) with Ed25519, for `sigproxy sign` and the demo: the same
//! component and base code as verification, so what we sign is exactly what we verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use sfv::{BareItem, InnerList, Integer, Key, ListEntry, Parameters};

use super::components::Component;
use super::{ALG_ED25519, RequestView, signature_base};
use crate::error::{Error, ErrorCode};

/// What to sign and with which parameters.
#[derive(Clone, Debug)]
pub struct SignSpec<'a> {
    pub label: &'a str,
    pub components: &'a [Component],
    pub key_id: &'a str,
    pub created: i64,
    pub expires: Option<i64>,
    pub nonce: Option<&'a str>,
    pub tag: Option<&'a str>,
    /// Emit `alg="ed25519"` (optional in RFC 9421; some verifiers want it).
    pub include_alg: bool,
}

/// The two header values to add, and the base that was signed.
#[derive(Clone, Debug)]
pub struct SignedHeaders {
    pub signature_input: String,
    pub signature: String,
    pub signature_base: String,
}

fn bad(detail: String) -> Error {
    Error::new(ErrorCode::SignatureMalformed, detail)
}

pub fn sign(
    req: &RequestView<'_>,
    spec: &SignSpec<'_>,
    key: &SigningKey,
) -> Result<SignedHeaders, Error> {
    let label = Key::from_string(spec.label.to_owned()).map_err(|_| {
        bad(format!(
            "label {:?} is not a valid dictionary key",
            spec.label
        ))
    })?;
    let mut params = Parameters::new();
    let int = |v: i64, what: &str| {
        Integer::try_from(v).map_err(|_| bad(format!("{what} {v} is out of range")))
    };
    let string = |v: &str, what: &str| {
        sfv::String::from_string(v.to_owned())
            .map_err(|_| bad(format!("{what} {v:?} must be printable ASCII")))
    };
    let key_of = |k: &str| {
        Key::from_string(k.to_owned()).map_err(|_| bad(format!("bad parameter name {k}")))
    };
    params.insert(
        key_of("created")?,
        BareItem::Integer(int(spec.created, "created")?),
    );
    if let Some(e) = spec.expires {
        params.insert(key_of("expires")?, BareItem::Integer(int(e, "expires")?));
    }
    params.insert(
        key_of("keyid")?,
        BareItem::String(string(spec.key_id, "keyid")?),
    );
    if spec.include_alg {
        params.insert(
            key_of("alg")?,
            BareItem::String(string(ALG_ED25519, "alg")?),
        );
    }
    if let Some(n) = spec.nonce {
        params.insert(key_of("nonce")?, BareItem::String(string(n, "nonce")?));
    }
    if let Some(t) = spec.tag {
        params.insert(key_of("tag")?, BareItem::String(string(t, "tag")?));
    }
    // Each component's identifier is its serialised item: parsed back, it is that item.
    let items = spec
        .components
        .iter()
        .map(|c| {
            sfv::Parser::new(&c.id)
                .parse::<sfv::Item>()
                .map_err(|e| bad(format!("component {}: {e}", c.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inner = InnerList::with_params(items, params);
    let params_value =
        sfv::FieldType::serialize(&vec![ListEntry::InnerList(inner)]).unwrap_or_default();
    let base = signature_base(req, spec.components, &params_value)?;
    let sig = key.sign(base.as_bytes());
    Ok(SignedHeaders {
        signature_input: format!("{}={params_value}", label.as_str()),
        signature: format!("{}=:{}:", label.as_str(), B64.encode(sig.to_bytes())),
        signature_base: base,
    })
}
