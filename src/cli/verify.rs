//! `sigproxy verify`: "would this request verify, and if not, exactly why?" — offline, on one raw
//! HTTP/1.1 request, printing one JSON object. Exit 0 valid, 1 invalid, 2 usage or config error.

use std::path::PathBuf;
use std::process::ExitCode;

use ed25519_dalek::VerifyingKey;
use serde_json::json;

use super::request_file::RawRequest;
use super::{EXIT_INVALID, EXIT_USAGE, read_file, unix_now};
use crate::error::Error;
use crate::signature::{
    self, KeyResolver, RequestView, Requirement, ResolvedKey, Verified, VerifyOptions, digest,
};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Policy file: its `signature:` settings and `keys:` (and key_files) are used.
    #[arg(long, conflicts_with_all = ["public_key", "key_id"], required_unless_present = "public_key")]
    pub config: Option<PathBuf>,
    /// Public key file: base64 of the 32 raw bytes, SPKI PEM, or an OKP JWK.
    #[arg(long, requires = "key_id")]
    pub public_key: Option<PathBuf>,
    /// The keyid the public key answers to.
    #[arg(long, requires = "public_key")]
    pub key_id: Option<String>,
    /// Client id reported for the key (default: the key id).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The raw HTTP/1.1 request (CRLF or LF line ends).
    #[arg(long)]
    pub request: PathBuf,
    /// Unix time to verify at (default: now).
    #[arg(long)]
    pub now: Option<i64>,
    /// Scheme the client used (default: the policy's public_scheme, else https, as in the RFC 9421
    /// examples; the gateway's plain listener sees http: pass `--scheme http` to check a request
    /// as it verified there when @scheme or @target-uri is covered).
    #[arg(long)]
    pub scheme: Option<String>,
    /// Authority the client signed (default: the policy's public_authority, else Host).
    #[arg(long)]
    pub authority: Option<String>,
    /// Without --config: must a body be covered by content-digest (default required, as in
    /// the policy's defaults; `optional` for the RFC 9421 appendix examples).
    #[arg(
        long,
        value_enum,
        default_value = "required",
        conflicts_with = "config"
    )]
    pub body_digest: BodyDigest,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BodyDigest {
    Required,
    Optional,
    Off,
}

struct OneKey {
    key_id: String,
    client_id: String,
    key: VerifyingKey,
}

impl KeyResolver for OneKey {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
        (key_id == self.key_id).then_some(ResolvedKey {
            key: &self.key,
            client_id: &self.client_id,
            revoked: false,
        })
    }
}

/// Everything a verification needs besides the request.
struct Setup {
    keys: Box<dyn KeyResolver>,
    options: VerifyOptions,
    scheme: Option<String>,
    authority: Option<String>,
}

pub fn run(args: &VerifyArgs) -> ExitCode {
    let setup = match setup(args) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let raw = match read_file(&args.request, "request").and_then(|d| {
        RawRequest::parse(&d).map_err(|e| format!("request {}: {e}", args.request.display()))
    }) {
        Ok(r) => r,
        Err(e) => return usage(&e),
    };
    let now = args.now.unwrap_or_else(unix_now);
    let scheme = args
        .scheme
        .clone()
        .or(setup.scheme.clone())
        .unwrap_or_else(|| "https".into());
    let host = raw
        .field("host")
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let authority = args.authority.clone().or(setup.authority.clone()).or(host);
    let view = RequestView {
        method: &raw.method,
        target: &raw.target,
        scheme: &scheme,
        authority: authority.as_deref(),
        fields: &raw.fields,
    };
    let has_body = !raw.body.is_empty();
    let outcome = signature::verify(&view, has_body, &setup.options, setup.keys.as_ref(), now)
        .and_then(|v| check_body(&raw, v));
    let verdict = match &outcome {
        Ok(v) => json!({
            "valid": true,
            "code": "OK",
            "message": "Signature verified",
            "client_id": v.client_id(),
            "key_id": v.key_id(),
            "label": v.label(),
            "signature_base": v.signature_base(),
        }),
        Err(e) => {
            let entry = signature::parse_signatures(&raw.fields)
                .ok()
                .flatten()
                .and_then(|es| es.into_iter().next());
            let base = entry.as_ref().and_then(|en| {
                signature::signature_base(&view, &en.components, &en.params_value).ok()
            });
            json!({
                "valid": false,
                "code": e.code.as_str(),
                "message": format!("{}: {}", e.code.message(), e.detail),
                "client_id": null,
                "key_id": entry.as_ref().and_then(|en| en.params.keyid.clone()),
                "label": entry.as_ref().map(|en| en.label.clone()),
                "signature_base": base,
            })
        }
    };
    super::out(&verdict);
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    }
}

/// A covered Content-Digest only means something once the body is hashed and compared.
fn check_body(raw: &RawRequest, v: Verified) -> Result<Verified, Error> {
    if v.covers_digest() {
        digest::check(&raw.fields, &raw.body)?;
    }
    Ok(v)
}

fn setup(args: &VerifyArgs) -> Result<Setup, String> {
    if let Some(path) = &args.config {
        return setup_from_policy(path);
    }
    let (Some(pk), Some(key_id)) = (&args.public_key, &args.key_id) else {
        return Err("give --config FILE, or --public-key FILE with --key-id ID".into());
    };
    let text = read_file(pk, "public key")?;
    let key = crate::keys::parse_public_key(&String::from_utf8_lossy(&text))
        .map_err(|e| format!("public key {}: {e}", pk.display()))?;
    // Without a policy, check what RFC 9421 checks — the signature, its times — and that a body
    // is covered by a matching digest. Nonce and required components are the policy's business.
    let options = VerifyOptions {
        nonce: Requirement::Optional,
        required_components: Vec::new(),
        body_digest: match args.body_digest {
            BodyDigest::Required => Requirement::Required,
            BodyDigest::Optional => Requirement::Optional,
            BodyDigest::Off => Requirement::Off,
        },
        ..VerifyOptions::default()
    };
    Ok(Setup {
        keys: Box::new(OneKey {
            key_id: key_id.clone(),
            client_id: args.client_id.clone().unwrap_or_else(|| key_id.clone()),
            key,
        }),
        options,
        scheme: None,
        authority: None,
    })
}

/// The policy's `signature:` rules and every key it loads (inline and key_files).
fn setup_from_policy(path: &std::path::Path) -> Result<Setup, String> {
    let policy = crate::policy::load(path).map_err(|e| e.to_string())?;
    let keys = crate::keys::KeySet::from_index(policy.keys.clone());
    let sig = &policy.file.signature;
    Ok(Setup {
        keys: Box::new(keys),
        options: sig.verify.clone(),
        scheme: sig.public_scheme.map(|s| s.as_str().to_owned()),
        authority: sig.public_authority.clone(),
    })
}

fn usage(msg: &str) -> ExitCode {
    let verdict = json!({"valid": false, "code": "USAGE", "message": msg});
    super::out(&verdict);
    eprintln!("sigproxy verify: {msg}");
    ExitCode::from(EXIT_USAGE)
}
