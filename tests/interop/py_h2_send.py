"""Send raw HTTP/1.1 request files to sigproxy over HTTP/2 with httpx (PyPI httpx[http2]).

Usage: py_h2_send.py --base URL [--cacert FILE] FILE...

Each FILE is a request as on the wire (from py_gateway_sign.py, py_sign.py or js_sign.mjs).
Its Host becomes the HTTP/2 :authority (httpx maps it), Content-Length is httpx's own; the
other fields and the body are sent as they are. http:// bases use prior-knowledge h2c; https://
bases negotiate h2 by ALPN and verify the proxy against --cacert. Prints one JSON line per
file: {"file", "status", "http_version", "code"} (code: the JSON error code, or null).
"""

import argparse
import json
import sys
from pathlib import Path

import httpx


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode("ascii").split(" ")
    headers = []
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, headers, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--cacert")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    tls = a.base.startswith("https://")
    client = httpx.Client(
        http1=False,
        http2=True,
        verify=a.cacert if tls else False,
        timeout=20.0,
    )
    for f in a.files:
        method, target, headers, body = parse(Path(f).read_bytes())
        skip = {"content-length", "connection", "transfer-encoding"}
        fields = [(k, v) for k, v in headers if k.lower() not in skip]
        r = client.request(method, a.base + target, headers=fields, content=body or None)
        try:
            code = r.json().get("error", {}).get("code")
        except (ValueError, AttributeError):
            code = None
        print(json.dumps({"file": f, "status": r.status_code, "http_version": r.http_version, "code": code}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
