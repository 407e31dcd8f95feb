//! `sigproxy sign`: sign a request the way a client team would, and print the headers, a curl
//! line, the raw request, or send it (plain HTTP) and print what came back.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::ValueEnum;

use super::{EXIT_INVALID, EXIT_USAGE, read_file, unix_now};
use crate::signature::digest::{DigestAlg, content_digest_header};
use crate::signature::sign::{SignSpec, sign};
use crate::signature::target::Target;
use crate::signature::{Component, RequestView};

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// Private key file: base64 of the 32-byte seed, PKCS#8 PEM, or an OKP JWK.
    #[arg(long, required_unless_present = "unsigned")]
    pub key: Option<PathBuf>,
    /// The keyid to put in the signature (the `key_id` the gateway knows the key by).
    #[arg(long, required_unless_present = "unsigned")]
    pub key_id: Option<String>,
    /// Send the request without signing it (a legacy caller, for trying hybrid routes).
    #[arg(long, conflicts_with_all = ["key", "key_id"])]
    pub unsigned: bool,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body, or `@FILE` to read it from a file. Adds Content-Digest and covers it.
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Components to cover, space-separated (repeatable). Default: @method @authority @path
    /// @query, plus content-digest and content-type when present.
    #[arg(long)]
    pub components: Vec<String>,
    #[arg(long, default_value = "sig1")]
    pub label: String,
    #[arg(long)]
    pub tag: Option<String>,
    /// Add `expires` this many seconds after `created`.
    #[arg(long)]
    pub expires: Option<u64>,
    /// `created` as Unix seconds (default: now).
    #[arg(long)]
    pub created: Option<i64>,
    /// Nonce to use (default: 128 random bits, base64url).
    #[arg(long, conflicts_with = "no_nonce")]
    pub nonce: Option<String>,
    /// Sign without a nonce.
    #[arg(long)]
    pub no_nonce: bool,
    /// Leave out `alg="ed25519"`.
    #[arg(long)]
    pub no_alg: bool,
    /// Content-Digest algorithm for a body.
    #[arg(long, value_enum, default_value = "sha-256")]
    pub digest: DigestChoice,
    /// Send the request (http:// only) and print status, headers and body.
    #[arg(long, conflicts_with = "curl")]
    pub send: bool,
    /// Print a ready-to-run curl command line.
    #[arg(long)]
    pub curl: bool,
    /// Also write the complete signed request, as it would go on the wire, to this file.
    #[arg(long)]
    pub emit_request: Option<PathBuf>,
    /// Timeout in seconds for --send.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Absolute URL: http://host[:port]/path?query
    pub url: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DigestChoice {
    #[value(name = "sha-256")]
    Sha256,
    #[value(name = "sha-512")]
    Sha512,
}

/// A request ready to go: everything `--send`, `--curl` and `--emit-request` need.
pub struct Prepared {
    pub scheme: String,
    pub authority: String,
    pub method: String,
    pub target: String,
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub body_file: Option<String>,
    pub added: Vec<(String, String)>,
}

pub fn run(args: &SignArgs) -> ExitCode {
    match prepare(args) {
        Ok(p) => output(args, &p),
        Err(e) => {
            eprintln!("sigproxy sign: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

pub fn prepare(args: &SignArgs) -> Result<Prepared, String> {
    let Some(Target::Absolute {
        scheme,
        authority,
        path,
        query,
    }) = Target::parse(&args.url)
    else {
        return Err(format!("{:?} is not an absolute http(s) URL", args.url));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    let target = match query {
        Some(q) => format!("{}?{q}", if path.is_empty() { "/" } else { path }),
        None => (if path.is_empty() { "/" } else { path }).to_owned(),
    };
    let (body, body_file) = match args.data.as_deref() {
        Some(d) if d.starts_with('@') => (
            read_file(&PathBuf::from(&d[1..]), "body file")?,
            Some(d[1..].to_owned()),
        ),
        Some(d) => (d.as_bytes().to_vec(), None),
        None => (Vec::new(), None),
    };
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for h in &args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        fields.push((n.trim().to_owned(), v.trim().as_bytes().to_vec()));
    }
    let has = |fields: &[(String, Vec<u8>)], n: &str| {
        fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(n))
    };
    if !has(&fields, "host") {
        fields.insert(0, ("Host".into(), authority.as_bytes().to_vec()));
    }
    let mut added = Vec::new();
    if !body.is_empty() {
        if !has(&fields, "content-length") {
            fields.push(("Content-Length".into(), body.len().to_string().into_bytes()));
        }
        if !has(&fields, "content-digest") && !args.unsigned {
            let alg = match args.digest {
                DigestChoice::Sha256 => DigestAlg::Sha256,
                DigestChoice::Sha512 => DigestAlg::Sha512,
            };
            let v = content_digest_header(alg, &body);
            fields.push(("Content-Digest".into(), v.clone().into_bytes()));
            added.push(("Content-Digest".to_owned(), v));
        }
    }
    let (Some(key_path), Some(key_id)) = (&args.key, &args.key_id) else {
        // --unsigned (clap requires key and key id otherwise)
        let authority = authority.to_owned();
        let method = args.method.clone();
        return Ok(Prepared {
            scheme,
            authority,
            method,
            target,
            fields,
            body,
            body_file,
            added,
        });
    };
    let key_text = read_file(key_path, "private key")?;
    let key = crate::keys::parse_private_key(&String::from_utf8_lossy(&key_text))
        .map_err(|e| format!("private key {}: {e}", key_path.display()))?;
    let components = components(args, &fields)?;
    let nonce = match (&args.nonce, args.no_nonce) {
        (Some(n), _) => Some(n.clone()),
        (None, true) => None,
        (None, false) => Some(random_nonce()?),
    };
    let created = args.created.unwrap_or_else(unix_now);
    let spec = SignSpec {
        label: &args.label,
        components: &components,
        key_id,
        created,
        expires: args.expires.map(|e| created.saturating_add(e as i64)),
        nonce: nonce.as_deref(),
        tag: args.tag.as_deref(),
        include_alg: !args.no_alg,
    };
    let host = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let view = RequestView {
        method: &args.method,
        target: &target,
        scheme: &scheme,
        authority: host.as_deref(),
        fields: &fields,
    };
    let signed = sign(&view, &spec, &key).map_err(|e| e.detail.into_owned())?;
    fields.push((
        "Signature-Input".into(),
        signed.signature_input.clone().into_bytes(),
    ));
    fields.push(("Signature".into(), signed.signature.clone().into_bytes()));
    added.push(("Signature-Input".to_owned(), signed.signature_input));
    added.push(("Signature".to_owned(), signed.signature));
    Ok(Prepared {
        scheme,
        authority: authority.to_owned(),
        method: args.method.clone(),
        target,
        fields,
        body,
        body_file,
        added,
    })
}

fn components(args: &SignArgs, fields: &[(String, Vec<u8>)]) -> Result<Vec<Component>, String> {
    let specs: Vec<String> = if args.components.is_empty() {
        let mut d: Vec<String> = ["@method", "@authority", "@path", "@query"]
            .map(String::from)
            .to_vec();
        for f in ["content-digest", "content-type"] {
            if fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(f)) {
                d.push(f.into());
            }
        }
        d
    } else {
        args.components
            .iter()
            .flat_map(|c| c.split_whitespace().map(String::from))
            .collect()
    };
    specs
        .iter()
        .map(|s| Component::parse_spec(s).map_err(|e| e.detail.into_owned()))
        .collect()
}

fn random_nonce() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the nonce: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

impl Prepared {
    /// The request as it goes on the wire.
    pub fn wire(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (k, v) in &self.fields {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    fn curl(&self) -> String {
        let url = format!("{}://{}{}", self.scheme, self.authority, self.target);
        let mut s = format!(
            "curl -sS -i -X {} {}",
            shell_quote(&self.method),
            shell_quote(&url)
        );
        for (k, v) in &self.fields {
            if k.eq_ignore_ascii_case("content-length")
                || (k.eq_ignore_ascii_case("host") && String::from_utf8_lossy(v) == self.authority)
            {
                continue;
            }
            s.push_str(" \\\n  -H ");
            s.push_str(&shell_quote(&format!(
                "{k}: {}",
                String::from_utf8_lossy(v)
            )));
        }
        match (&self.body_file, self.body.is_empty()) {
            (Some(f), _) => s.push_str(&format!(
                " \\\n  --data-binary {}",
                shell_quote(&format!("@{f}"))
            )),
            (None, false) => s.push_str(&format!(
                " \\\n  --data-binary {}",
                shell_quote(&String::from_utf8_lossy(&self.body))
            )),
            (None, true) => {}
        }
        s
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn output(args: &SignArgs, p: &Prepared) -> ExitCode {
    if let Some(path) = &args.emit_request
        && let Err(e) = std::fs::write(path, p.wire(false))
    {
        eprintln!("sigproxy sign: cannot write {}: {e}", path.display());
        return ExitCode::from(EXIT_USAGE);
    }
    if args.curl {
        super::out(p.curl());
    } else if args.send {
        return send(p, Duration::from_secs(args.timeout.max(1)));
    } else {
        for (k, v) in &p.added {
            super::out(format_args!("{k}: {v}"));
        }
    }
    ExitCode::SUCCESS
}

fn send(p: &Prepared, timeout: Duration) -> ExitCode {
    if p.scheme != "http" {
        eprintln!(
            "sigproxy sign: --send speaks plain http only; use --curl for {}",
            p.scheme
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let addr = if p.authority.contains(':') && !p.authority.ends_with(']') {
        p.authority.clone()
    } else {
        format!("{}:80", p.authority)
    };
    let result = (|| -> std::io::Result<Vec<u8>> {
        let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&addr)?.collect();
        let first = addrs
            .first()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = TcpStream::connect_timeout(first, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(&p.wire(true))?;
        let mut resp = Vec::new();
        s.take(16 << 20).read_to_end(&mut resp)?;
        Ok(resp)
    })();
    match result {
        Ok(resp) => {
            let text = String::from_utf8_lossy(&resp);
            super::out(text.replace("\r\n", "\n").trim_end());
            let ok = text
                .split(' ')
                .nth(1)
                .is_some_and(|code| code.starts_with('2'));
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            }
        }
        Err(e) => {
            eprintln!("sigproxy sign: sending to {addr}: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
