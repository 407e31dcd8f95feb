"""Sign one request with PyPI http-message-signatures (pyauth) for the gateway tests.

Usage: py_gateway_sign.py --key FILE --key-id ID --method M --authority HOST:PORT --target T
                          [--body-file F] [--nonce N] [--created UNIX] --out FILE

Writes the raw HTTP/1.1 request (as on the wire) to --out. Covers @method @authority @path
@query, plus content-type and content-digest when there is a body (the library computes the
sha-256 Content-Digest itself). A random nonce unless --nonce is given; `created` now.
"""

import argparse
import datetime
import secrets
import time
from pathlib import Path

from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from rawhttp import Headers, Request, load_private_key


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--method", default="GET")
    ap.add_argument("--authority", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--body-file")
    ap.add_argument("--nonce")
    ap.add_argument("--created", type=int)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    body = Path(a.body_file).read_bytes() if a.body_file else b""
    lines = [("Host", a.authority), ("User-Agent", "pyauth-gateway-test/1")]
    components = ["@method", "@authority", "@path", "@query"]
    if body:
        lines += [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
        components.append("content-type")
    req = Request(a.method, "http", a.authority, a.target, Headers(lines), body)
    key = load_private_key(a.key)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={a.key_id: key}),
    )
    created = a.created if a.created is not None else int(time.time())
    signer.sign(
        req,
        key_id=a.key_id,
        created=datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc),
        nonce=a.nonce or secrets.token_urlsafe(16),
        label="py",
        covered_component_ids=components,
        body=body or None,
    )
    Path(a.out).write_bytes(req.to_bytes())


if __name__ == "__main__":
    main()
