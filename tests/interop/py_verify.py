"""Verify one raw HTTP/1.1 request with PyPI http-message-signatures (pyauth).

Usage: py_verify.py --public-key FILE --key-id ID --request FILE [--tag T] [--scheme http]

Prints {"valid": bool, "error": "..."} and exits 0 when valid, 1 when not, 2 on usage errors.
Policy (mirrors sigproxy's defaults): max_age 300 s, clock skew 5 s (pyauth's default), wall
clock; a non-empty body must be covered by content-digest and match it (pyauth checks this when
given the body).
"""

import argparse
import datetime
import json
import sys

from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
from rawhttp import load_public_key, parse_request


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--request", required=True)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--scheme", default="http")
    args = ap.parse_args()
    try:
        key = load_public_key(args.public_key)
        with open(args.request, "rb") as f:
            req = parse_request(f.read(), scheme=args.scheme)
    except (OSError, ValueError) as e:
        print(json.dumps({"valid": False, "error": f"usage: {e}"}))
        sys.exit(2)
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={args.key_id: key}, private_keys={}),
    )
    try:
        results = verifier.verify(
            req,
            max_age=datetime.timedelta(seconds=300),
            expect_tag=args.tag,
            body=req.body,
        )
    except Exception as e:  # the library raises several types; any of them is a rejection
        print(json.dumps({"valid": False, "error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps({"valid": True, "error": "", "labels": [r.label for r in results]}))
    sys.exit(0)


if __name__ == "__main__":
    main()
