"""Generate signed interop scenarios with PyPI http-message-signatures (pyauth).

Usage: py_sign.py --key FILE --key-id ID --out DIR [--now UNIX]

Writes DIR/NAME.http (raw request bytes as on the wire) for every scenario and
DIR/manifest.json listing each file with its expected sigproxy outcome: "valid" or a reference §4.5
code. Every signature is made by the library's own signing API; tampered variants are byte edits
of a valid request, except those whose signature parameters change (expired, future, unknown
keyid, alg mismatch), which are re-signed so that only the parameter is wrong.
"""

import argparse
import datetime
import json
import secrets
import time
from importlib.metadata import version
from pathlib import Path

import tamper
from http_message_signatures import ContentDigest, HTTPMessageSigner, MappingKeyResolver, algorithms
from rawhttp import Headers, Request, load_private_key

TAG = "sigproxy-interop"
HOST = "api.example.com"
QUERY_TARGET = "/api/items?q=a%20b&tag=x%2Fy&empty="
ORDER_BODY = b'{"item":"widget","quantity":3,"note":"caf\\u00e9 & co"}'
GET_COMPONENTS = ("@method", "@authority", "@path", "@query")
POST_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-type", "content-digest")
TARGET_URI_COMPONENTS = ("@method", "@target-uri", "@authority", "content-type", "content-digest")


class SHA512Digest(ContentDigest):
    algorithm = "sha-512"


class Ed25519ClaimingRsaPss(algorithms.ED25519):
    """Signs with Ed25519 but advertises alg="rsa-pss-sha512": the alg-mismatch scenario."""

    algorithm_id = "rsa-pss-sha512"


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)


class Scenarios:
    def __init__(self, key, key_id, now, out):
        self.key, self.key_id, self.now, self.out = key, key_id, now, out
        self.entries = []

    def request(self, method, authority, target, headers, body=b""):
        lines = [("Host", authority), *headers]
        if body:
            lines.append(("Content-Length", str(len(body))))
        return Request(method, "http", authority, target, Headers(lines), body)

    def sign(self, req, components, *, key_id=None, created=None, expires="default", nonce=True,
             alg=algorithms.ED25519, digest=ContentDigest, sign_body=True):
        key_id = key_id or self.key_id
        created = self.now if created is None else created
        expires = created + 300 if expires == "default" else expires
        signer = HTTPMessageSigner(
            signature_algorithm=alg,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: self.key}),
        )
        signer.content_digest_class = digest
        signer.sign(
            req,
            key_id=key_id,
            created=utc(created),
            expires=utc(expires) if expires is not None else None,
            nonce=secrets.token_urlsafe(16) if nonce else None,
            tag=TAG,
            covered_component_ids=components,
            body=req.body if (req.body and sign_body) else None,
        )
        return req.to_bytes()

    def write(self, name, raw, expect, note, derived_from=None):
        (self.out / f"{name}.http").write_bytes(raw)
        entry = {"name": name, "file": f"{name}.http", "expect": expect, "note": note}
        if derived_from:
            entry["derived_from"] = derived_from
        self.entries.append(entry)


def generate(s):
    now = s.now
    get = lambda: s.request("GET", HOST, QUERY_TARGET, [("Accept", "application/json"), ("User-Agent", "py-sign/1")])  # noqa: E731
    post = lambda body=ORDER_BODY: s.request(  # noqa: E731
        "POST", HOST, "/api/orders?dry_run=1", [("Content-Type", "application/json")], body)
    post512 = lambda: s.request(  # noqa: E731
        "POST", f"{HOST}:8443", "/api/orders/42", [("Content-Type", "application/json; charset=utf-8")],
        b'{"status":"shipped","items":[1,2,3]}')

    get_raw = s.sign(get(), GET_COMPONENTS)
    post_raw = s.sign(post(), POST_COMPONENTS)
    post512_raw = s.sign(post512(), TARGET_URI_COMPONENTS, digest=SHA512Digest)
    s.write("get-query", get_raw, "valid", "GET, encoded query, @method @authority @path @query")
    s.write("post-sha256", post_raw, "valid", "POST JSON, sha-256 Content-Digest covered")
    s.write("post-sha512-target-uri", post512_raw, "valid",
            "POST, sha-512 Content-Digest, @target-uri (http scheme, non-default port)")

    s.write("post-sha256--body-tampered", tamper.replace_body(post_raw, ORDER_BODY.replace(b"3", b"9")),
            "DIGEST_MISMATCH", "body changed after signing", "post-sha256")
    s.write("post-sha512--body-tampered", tamper.replace_body(post512_raw, b'{"status":"lost","items":[1,2,3]}'),
            "DIGEST_MISMATCH", "body changed after signing", "post-sha512-target-uri")
    s.write("post-sha256--header-tampered", tamper.set_header(post_raw, "Content-Type", "text/plain"),
            "SIGNATURE_INVALID", "covered content-type changed", "post-sha256")
    s.write("get-query--method-tampered", tamper.set_method(get_raw, "DELETE"),
            "SIGNATURE_INVALID", "GET changed to DELETE", "get-query")
    s.write("get-query--authority-tampered", tamper.set_header(get_raw, "Host", "evil.example.com"),
            "SIGNATURE_INVALID", "Host changed", "get-query")
    s.write("post-sha512--authority-tampered", tamper.set_header(post512_raw, "Host", HOST),
            "SIGNATURE_INVALID", "port dropped from Host (changes @authority and @target-uri)",
            "post-sha512-target-uri")
    s.write("get-query--query-tampered", tamper.set_target(get_raw, "/api/items?q=a+b&tag=x%2Fy&empty="),
            "SIGNATURE_INVALID", "query re-encoded %20 -> +", "get-query")
    s.write("post-sha256--sig-bitflip", tamper.flip_signature_bit(post_raw),
            "SIGNATURE_INVALID", "one bit of the signature flipped", "post-sha256")
    s.write("get-query--sig-truncated", tamper.truncate_signature(get_raw),
            "SIGNATURE_MALFORMED", "signature is 63 bytes, not 64", "get-query")
    s.write("get-query--malformed-input", tamper.break_signature_input(get_raw),
            "SIGNATURE_MALFORMED", "Signature-Input inner list not closed", "get-query")
    s.write("post-sha256--duplicate-label", tamper.duplicate_label(post_raw),
            "SIGNATURE_MALFORMED", "a second Signature line reuses the label (bogus first, real last)",
            "post-sha256")

    s.write("get-query--expired", s.sign(get(), GET_COMPONENTS, created=now - 120, expires=now - 60),
            "TIMESTAMP_TOO_OLD", "re-signed: created now-120, expires now-60", "get-query")
    s.write("get-query--created-too-old", s.sign(get(), GET_COMPONENTS, created=now - 400, expires=None),
            "TIMESTAMP_TOO_OLD", "re-signed: created now-400, no expires (max_age 300)", "get-query")
    s.write("get-query--created-future", s.sign(get(), GET_COMPONENTS, created=now + 120),
            "TIMESTAMP_OUT_OF_WINDOW", "re-signed: created now+120 (skew 30)", "get-query")
    s.write("post-sha256--unknown-keyid", s.sign(post(), POST_COMPONENTS, key_id="no-such-key"),
            "KEY_NOT_FOUND", "re-signed with keyid=no-such-key", "post-sha256")
    s.write("get-query--alg-mismatch", s.sign(get(), GET_COMPONENTS, alg=Ed25519ClaimingRsaPss),
            "KEY_ID_MISMATCH", 're-signed: Ed25519 signature with alg="rsa-pss-sha512"', "get-query")
    s.write("post-sha256--digest-not-covered",
            s.sign(post(), ("@method", "@authority", "@path", "@query", "content-type"), sign_body=False),
            "DIGEST_MISSING", "body present, content-digest neither sent nor covered", "post-sha256")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", required=True, help="private key: base64 seed or PKCS#8 PEM")
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--now", type=int, default=None, help="unix seconds (default: wall clock)")
    args = ap.parse_args()
    now = int(time.time()) if args.now is None else args.now
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = Scenarios(load_private_key(args.key), args.key_id, now, out)
    generate(s)
    manifest = {
        "library": "pypi:http-message-signatures",
        "version": version("http-message-signatures"),
        "key_id": args.key_id,
        "now": now,
        "scenarios": s.entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
