"""Raw HTTP/1.1 request files and Ed25519 key files, shared by py_sign.py and py_verify.py.

Only what the interop scripts need: a request is a request line, CRLF header lines, a blank
line and the body, exactly as it would go on the wire. No chunked encoding, no obs-fold.
"""

import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


class Headers:
    """Ordered field lines; the mapping methods are what pyauth's signer needs."""

    def __init__(self, lines=None):
        self.lines = list(lines or [])

    def items(self):
        return list(self.lines)

    def __iter__(self):
        return iter(dict.fromkeys(name for name, _ in self.lines))

    def __contains__(self, name):
        return any(n.lower() == name.lower() for n, _ in self.lines)

    def __getitem__(self, name):
        values = [v for n, v in self.lines if n.lower() == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name, value):
        self.lines = [(n, v) for n, v in self.lines if n.lower() != name.lower()]
        self.lines.append((name, value))

    def __delitem__(self, name):
        self.lines = [(n, v) for n, v in self.lines if n.lower() != name.lower()]

    def append(self, name, value):
        self.lines.append((name, value))


class Request:
    """What pyauth's component resolver reads: method, absolute url, headers."""

    def __init__(self, method, scheme, authority, target, headers, body=b""):
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.target = target
        self.headers = headers
        self.body = body

    @property
    def url(self):
        return f"{self.scheme}://{self.authority}{self.target}"

    def to_bytes(self):
        out = [f"{self.method} {self.target} HTTP/1.1".encode()]
        for name, value in self.headers.items():
            out.append(f"{name}: {value}".encode("latin-1"))
        return b"\r\n".join(out) + b"\r\n\r\n" + self.body


def parse_request(raw, scheme="http"):
    """Parse one raw request; the authority comes from Host (HTTP/1.1)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no blank line ending the header section")
    lines = head.split(b"\r\n")
    method, target, version = lines[0].decode("ascii").split(" ")
    if version != "HTTP/1.1":
        raise ValueError(f"unexpected version {version!r}")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ValueError(f"header line without colon: {line!r}")
        headers.append(name, value.strip(" \t"))
    hosts = [v for n, v in headers.items() if n.lower() == "host"]
    if len(hosts) != 1:
        raise ValueError("exactly one Host header required")
    return Request(method, scheme, hosts[0], target, headers, body)


def _b64(data):
    return base64.b64decode(data.strip() + "=" * (-len(data.strip()) % 4), validate=True)


def load_private_key(path):
    text = Path(path).read_text()
    if "-----BEGIN" in text:
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return key
    return ed25519.Ed25519PrivateKey.from_private_bytes(_b64(text))


def load_public_key(path):
    text = Path(path).read_text()
    if "-----BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    stripped = text.strip()
    if stripped.startswith("{"):
        jwk = json.loads(stripped)
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError("JWK is not OKP/Ed25519")
        return ed25519.Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        )
    return ed25519.Ed25519PublicKey.from_public_bytes(_b64(stripped))


def die(message, code=2):
    print(message, file=sys.stderr)
    sys.exit(code)
