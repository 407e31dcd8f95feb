//! Verification of a request's signature against a policy (RFC 9421 §3.2 plus sigproxy's checks):
//! choose the signature by label/tag, check `alg`, the key, `created`/`expires`, the nonce, the
//! covered components and the digest coverage, rebuild the base and verify Ed25519.
//! The body itself is checked against `Content-Digest` by the caller (it may still be streaming),
//! and remembering the nonce is the replay store's job.

use ed25519_dalek::Signature;

use super::components::{Component, ComponentName, Derived};
use super::input::{SignatureEntry, parse_signatures};
use super::{ALG_ED25519, KeyResolver, RequestView, signature_base};
use crate::error::{Error, ErrorCode};

/// How strictly a property is demanded (nonce, body digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Requirement {
    #[default]
    Required,
    Optional,
    Off,
}

impl Requirement {
    pub const NAMES: [(&'static str, Requirement); 3] = [
        ("required", Requirement::Required),
        ("optional", Requirement::Optional),
        ("off", Requirement::Off),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Required => "required",
            Requirement::Optional => "optional",
            Requirement::Off => "off",
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the verifier checks. The policy's `signature:` section parses into one of these
/// (`policy::SignaturePolicy::verify`); its defaults are the policy's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    pub max_age_seconds: u64,
    pub clock_skew_seconds: u64,
    pub nonce: Requirement,
    pub required_components: Vec<Component>,
    pub body_digest: Requirement,
    pub label: Option<String>,
    pub tag: Option<String>,
}

impl Default for VerifyOptions {
    /// The defaults of reference §3.2 (`signature.*`).
    fn default() -> Self {
        let required = ["@method", "@authority", "@path"]
            .iter()
            .filter_map(|c| Component::parse_spec(c).ok())
            .collect();
        Self {
            max_age_seconds: 300,
            clock_skew_seconds: 30,
            nonce: Requirement::Required,
            required_components: required,
            body_digest: Requirement::Required,
            label: None,
            tag: None,
        }
    }
}

/// Proof that a request's signature verified: only code holding one may set identity headers.
/// Every field is private and only [`verify`] makes one, so holding a `Verified` means the
/// verifier accepted a signature; it is read through its accessors. Outside this module a
/// struct literal does not compile:
///
/// ```compile_fail,E0451
/// let forged = sigproxy::signature::Verified {
///     label: "sig1".into(),
///     key_id: "k".into(),
///     client_id: "admin".into(),
///     created: Some(0),
///     expires: None,
///     nonce: None,
///     tag: None,
///     covers_digest: false,
///     covered_fields: Vec::new(),
///     signature_base: String::new(),
/// };
/// ```
#[derive(Clone, Debug)]
pub struct Verified {
    label: String,
    key_id: String,
    client_id: String,
    created: Option<i64>,
    expires: Option<i64>,
    nonce: Option<String>,
    tag: Option<String>,
    covers_digest: bool,
    covered_fields: Vec<String>,
    signature_base: String,
}

impl Verified {
    /// The label of the signature that verified (`sig1`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The client the key belongs to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `created`, Unix seconds (always present: a signature without it does not verify).
    pub fn created(&self) -> Option<i64> {
        self.created
    }

    /// `expires`, Unix seconds, when the signer set one.
    pub fn expires(&self) -> Option<i64> {
        self.expires
    }

    /// The `nonce` parameter, when the signature carries one.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The signature covers `content-digest` (and `body_digest` is not `off`): the caller must
    /// check the body actually received against it ([`super::digest::check`]), an empty or
    /// absent body included, whatever Content-Length or Transfer-Encoding announced.
    pub fn covers_digest(&self) -> bool {
        self.covers_digest
    }

    /// The signature covers every value of the field `name` (any ASCII case): e.g. an override
    /// header the proxy may then let through. A `;key=` member alone does not count.
    pub fn covers_field(&self, name: &str) -> bool {
        self.covered_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
    }

    /// The signature base that verified, byte for byte (for `sigproxy verify`'s report).
    pub fn signature_base(&self) -> &str {
        &self.signature_base
    }
}

/// Verifies the request's signature. `has_body` says whether the request has content
/// (Content-Length > 0 or a Transfer-Encoding); `now` is Unix seconds.
pub fn verify(
    req: &RequestView<'_>,
    has_body: bool,
    opts: &VerifyOptions,
    keys: &dyn KeyResolver,
    now: i64,
) -> Result<Verified, Error> {
    let entries = parse_signatures(req.fields)?.ok_or_else(|| {
        Error::new(
            ErrorCode::SignatureMissing,
            "no Signature-Input and Signature headers",
        )
    })?;
    let mut first_error = None;
    for entry in entries.iter().filter(|e| selected(e, opts)) {
        match verify_entry(req, has_body, opts, keys, now, entry) {
            Ok(v) => return Ok(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        let want = match (&opts.label, &opts.tag) {
            (Some(l), Some(t)) => format!("label {l} and tag \"{t}\""),
            (Some(l), None) => format!("label {l}"),
            (None, Some(t)) => format!("tag \"{t}\""),
            (None, None) => "any label".into(),
        };
        Error::new(
            ErrorCode::SignatureMissing,
            format!("no signature with {want}"),
        )
    }))
}

fn selected(e: &SignatureEntry, opts: &VerifyOptions) -> bool {
    opts.label.as_ref().is_none_or(|l| *l == e.label)
        && opts
            .tag
            .as_ref()
            .is_none_or(|t| e.params.tag.as_ref() == Some(t))
}

fn verify_entry(
    req: &RequestView<'_>,
    has_body: bool,
    opts: &VerifyOptions,
    keys: &dyn KeyResolver,
    now: i64,
    e: &SignatureEntry,
) -> Result<Verified, Error> {
    let label = &e.label;
    let p = &e.params;
    let key_id = p.keyid.as_deref().ok_or_else(|| {
        Error::new(
            ErrorCode::KeyNotFound,
            format!("signature {label} has no keyid parameter"),
        )
    })?;
    let key = keys.resolve(key_id).ok_or_else(|| {
        Error::new(
            ErrorCode::KeyNotFound,
            format!("unknown keyid \"{key_id}\""),
        )
    })?;
    if let Some(alg) = p.alg.as_deref().filter(|a| *a != ALG_ED25519) {
        return Err(Error::new(
            ErrorCode::KeyIdMismatch,
            format!("alg \"{alg}\" does not match key \"{key_id}\", which is ed25519"),
        ));
    }
    if key.revoked {
        return Err(Error::new(
            ErrorCode::KeyRevoked,
            format!(
                "key \"{key_id}\" of client \"{}\" is revoked",
                key.client_id
            ),
        ));
    }
    let signature = Signature::from_slice(&e.signature).map_err(|_| {
        Error::new(
            ErrorCode::SignatureMalformed,
            format!(
                "signature {label} is {} bytes; Ed25519 signatures are 64",
                e.signature.len()
            ),
        )
    })?;
    check_time(p.created, p.expires, opts, now, label)?;
    if opts.nonce == Requirement::Required && p.nonce.is_none() {
        return Err(Error::new(
            ErrorCode::NonceMissing,
            format!("signature {label} has no nonce parameter"),
        ));
    }
    let missing: Vec<&str> = opts
        .required_components
        .iter()
        .filter(|r| !e.components.iter().any(|c| covers(c, r)))
        .map(|r| r.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorCode::ComponentsMissing,
            format!("signature {label} does not cover {}", missing.join(", ")),
        ));
    }
    let covers_digest = e
        .components
        .iter()
        .any(|c| c.name_str() == "content-digest");
    if has_body && opts.body_digest == Requirement::Required && !covers_digest {
        return Err(Error::new(
            ErrorCode::DigestMissing,
            format!("request has a body but signature {label} does not cover content-digest"),
        ));
    }
    let base = signature_base(req, &e.components, &e.params_value)?;
    // verify_strict: RFC 8032 verification plus refusal of small-order keys and R values, so a
    // signature accepted here cannot be mauled into another one that is also accepted.
    key.key
        .verify_strict(base.as_bytes(), &signature)
        .map_err(|_| {
            Error::new(
                ErrorCode::SignatureInvalid,
                format!("Ed25519 signature {label} does not verify with key \"{key_id}\""),
            )
        })?;
    Ok(Verified {
        label: label.clone(),
        key_id: key_id.to_owned(),
        client_id: key.client_id.to_owned(),
        created: p.created,
        expires: p.expires,
        nonce: p.nonce.clone(),
        tag: p.tag.clone(),
        // Not `&& has_body`: a covered digest of a 34-byte body sent with `Content-Length: 0`
        // must fail against the empty body, not skip the check (body stripping).
        covers_digest: covers_digest && opts.body_digest != Requirement::Off,
        covered_fields: e
            .components
            .iter()
            .filter(|c| matches!(c.name, ComponentName::Field(_)) && c.key.is_none())
            .map(|c| c.name_str().to_ascii_lowercase())
            .collect(),
        signature_base: base,
    })
}

fn check_time(
    created: Option<i64>,
    expires: Option<i64>,
    opts: &VerifyOptions,
    now: i64,
    label: &str,
) -> Result<(), Error> {
    let created = created.ok_or_else(|| {
        Error::new(
            ErrorCode::SignatureMalformed,
            format!("signature {label} has no created parameter"),
        )
    })?;
    let skew = opts.clock_skew_seconds as i64;
    let age = now.saturating_sub(created);
    if age < -skew {
        return Err(Error::new(
            ErrorCode::TimestampOutOfWindow,
            format!(
                "created is {} s in the future; clock_skew_seconds is {skew}",
                -age
            ),
        ));
    }
    if age > opts.max_age_seconds as i64 {
        return Err(Error::new(
            ErrorCode::TimestampTooOld,
            format!(
                "created is {age} s old; max_age_seconds is {}",
                opts.max_age_seconds
            ),
        ));
    }
    if let Some(expires) = expires {
        // No skew on `expires`: it is the signer's own deadline, on the signer's own clock.
        if now > expires {
            return Err(Error::new(
                ErrorCode::TimestampTooOld,
                format!("signature expired {} s ago", now - expires),
            ));
        }
    }
    Ok(())
}

/// Whether covering `c` satisfies the requirement `r`. `@target-uri` carries scheme, authority,
/// path and query; `@request-target` carries path and query; `@query` carries every
/// `@query-param`. Nothing but `@method` covers the method.
pub fn covers(c: &Component, r: &Component) -> bool {
    use Derived::*;
    match (&c.name, &r.name) {
        (ComponentName::Field(a), ComponentName::Field(b)) => a == b,
        (ComponentName::Derived(a), ComponentName::Derived(b)) => {
            (a == b && (*a != QueryParam || c.param_name == r.param_name))
                || matches!(
                    (a, b),
                    (
                        TargetUri,
                        Scheme | Authority | Path | Query | QueryParam | RequestTarget
                    )
                )
                || matches!((a, b), (RequestTarget | Query, QueryParam))
                || matches!((a, b), (RequestTarget, Path | Query))
        }
        _ => false,
    }
}

/// A `Verified` for the unit tests of code that consumes one (the decision table, the gate),
/// made the only way there is: a request signed with a throwaway key and run through [`verify`].
/// Key id `k`, client `c`, nonce `n`; the signature covers `@method` and `covered_fields`.
#[cfg(test)]
pub(crate) fn verified_for_tests(covered_fields: &[&str]) -> Verified {
    use super::ResolvedKey;
    use super::sign::{SignSpec, sign};
    use ed25519_dalek::{SigningKey, VerifyingKey};

    struct One(VerifyingKey);
    impl KeyResolver for One {
        fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
            (key_id == "k").then_some(ResolvedKey {
                key: &self.0,
                client_id: "c",
                revoked: false,
            })
        }
    }
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let mut fields: Vec<(String, Vec<u8>)> = covered_fields
        .iter()
        .map(|f| ((*f).to_owned(), b"x".to_vec()))
        .collect();
    let mut components = vec![Component::parse_spec("@method").unwrap()];
    components.extend(
        covered_fields
            .iter()
            .map(|f| Component::parse_spec(f).unwrap()),
    );
    let spec = SignSpec {
        label: "sig1",
        components: &components,
        key_id: "k",
        created: 1,
        expires: None,
        nonce: Some("n"),
        tag: None,
        include_alg: true,
    };
    fn view(fields: &Vec<(String, Vec<u8>)>) -> RequestView<'_> {
        RequestView {
            method: "GET",
            target: "/",
            scheme: "https",
            authority: Some("example.test"),
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
    verify(&view(&fields), false, &opts, &One(key.verifying_key()), 1).unwrap()
}

#[cfg(test)]
mod tests;
