#!/usr/bin/env python3
"""Pre-sign N raw HTTP/1.1 requests (RFC 9421, Ed25519) for the load harness, each with its own nonce.

Writes the header blocks of all requests (each ending in CRLF CRLF) to OUT, and the shared body
(if any) to OUT.body; cycle.lua appends that body to every header block. It rebuilds the same
signature base `sigproxy sign` builds (components @method @authority @path @query, plus
content-digest content-type with a body); run.sh checks this byte for byte against
`sigproxy sign --emit-request` before every run, so a drift fails loudly instead of benchmarking
401s. Not a general signer: only what the harness sends.

usage: presign.py KEYFILE KEYID AUTHORITY METHOD PATH_AND_QUERY BODY_BYTES COUNT CREATED NONCE_PREFIX OUT
       (BODY_BYTES 0 = no body; COUNT 1 with NONCE_PREFIX used verbatim is the self-check mode)
"""

import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def main() -> None:
    keyfile, keyid, authority, method, target, body_bytes, count, created, prefix, out = sys.argv[1:11]
    seed = base64.b64decode(open(keyfile, "rb").read().strip())
    key = Ed25519PrivateKey.from_private_bytes(seed)
    count, created, body_bytes = int(count), int(created), int(body_bytes)
    path, _, query = target.partition("?")
    query = "?" + query
    body = bytes((i * 7 + 13) % 251 for i in range(body_bytes)) if body_bytes else b""

    fixed = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    comps = '"@method" "@authority" "@path" "@query"'
    base_fixed = f'"@method": {method}\n"@authority": {authority}\n"@path": {path}\n"@query": {query}\n'
    if body:
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        ctype = "application/octet-stream"
        fixed += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}", f"Content-Digest: {digest}"]
        comps += ' "content-digest" "content-type"'
        base_fixed += f'"content-digest": {digest}\n"content-type": {ctype}\n'
    head = "\r\n".join(fixed) + "\r\n"

    with open(out, "wb") as f:
        for i in range(count):
            nonce = prefix if count == 1 else f"{prefix}{i:08d}"
            params = f'({comps});created={created};keyid="{keyid}";alg="ed25519";nonce="{nonce}"'
            base = base_fixed + f'"@signature-params": {params}'
            sig = base64.b64encode(key.sign(base.encode())).decode()
            f.write(
                (head + f"Signature-Input: sig1={params}\r\nSignature: sig1=:{sig}:\r\n\r\n").encode()
            )
    with open(out + ".body", "wb") as f:
        f.write(body)


if __name__ == "__main__":
    main()
