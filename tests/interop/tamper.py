"""Byte-level edits of a signed raw request, for the tampered interop scenarios.

Each function takes and returns raw request bytes. They edit the wire form only; none of them
re-signs (re-signed variants are made by the signer scripts with the library's API).
"""

import base64
import re


def _split(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0], lines[1:], body


def _join(request_line, headers, body):
    return b"\r\n".join([request_line, *headers]) + b"\r\n\r\n" + body


def _find(headers, name):
    for i, line in enumerate(headers):
        if line.split(b":", 1)[0].strip().lower() == name.lower().encode():
            return i
    raise KeyError(name)


def set_header(raw, name, value):
    line, headers, body = _split(raw)
    i = _find(headers, name)
    headers[i] = headers[i].split(b":", 1)[0] + b": " + value.encode()
    return _join(line, headers, body)


def replace_body(raw, body):
    line, headers, _ = _split(raw)
    i = _find(headers, "content-length")
    headers[i] = b"Content-Length: " + str(len(body)).encode()
    return _join(line, headers, body)


def set_method(raw, method):
    line, headers, body = _split(raw)
    _, target, version = line.split(b" ")
    return _join(b" ".join([method.encode(), target, version]), headers, body)


def set_target(raw, target):
    line, headers, body = _split(raw)
    method, _, version = line.split(b" ")
    return _join(b" ".join([method, target.encode(), version]), headers, body)


_SIG_MEMBER = re.compile(rb"^(Signature:\s*[A-Za-z0-9_.*-]+=:)([A-Za-z0-9+/=]*)(:.*)$", re.I)


def _edit_signature(raw, edit):
    line, headers, body = _split(raw)
    i = _find(headers, "signature")
    m = _SIG_MEMBER.match(headers[i])
    if m is None:
        raise ValueError(f"unexpected Signature line {headers[i]!r}")
    sig = edit(base64.b64decode(m.group(2)))
    headers[i] = m.group(1) + base64.b64encode(sig) + m.group(3)
    return _join(line, headers, body)


def flip_signature_bit(raw):
    return _edit_signature(raw, lambda s: s[:10] + bytes([s[10] ^ 0x01]) + s[11:])


def truncate_signature(raw):
    return _edit_signature(raw, lambda s: s[:-1])


def break_signature_input(raw):
    """Drop the inner list's closing parenthesis: not a valid SF dictionary any more."""
    line, headers, body = _split(raw)
    i = _find(headers, "signature-input")
    if b")" not in headers[i]:
        raise ValueError("Signature-Input has no inner list")
    headers[i] = headers[i].replace(b")", b"", 1)
    return _join(line, headers, body)


def duplicate_label(raw):
    """Put a second Signature line with the same label before the real one.

    A last-wins dictionary parser sees only the real signature and accepts; RFC 8941 parsing of
    the combined field keeps the last value too, so only an explicit duplicate check rejects it.
    """
    line, headers, body = _split(raw)
    i = _find(headers, "signature")
    m = _SIG_MEMBER.match(headers[i])
    if m is None:
        raise ValueError(f"unexpected Signature line {headers[i]!r}")
    bogus = m.group(1) + base64.b64encode(bytes(64)) + b":"
    headers.insert(i, bogus)
    return _join(line, headers, body)
