// Byte-level edits of a signed raw request, for the tampered interop scenarios (mirrors tamper.py).
// They edit the wire form only; re-signed variants are made by js_sign.mjs with the library's API.
import { parse, serialize } from './rawhttp.mjs';

const SIG_MEMBER = /^([A-Za-z0-9_.*-]+=:)([A-Za-z0-9+/=]*)(:.*)$/;

function edit(raw, fn) {
  const req = parse(raw);
  fn(req);
  return serialize(req);
}

function find(headers, name) {
  const i = headers.findIndex(([n]) => n.toLowerCase() === name.toLowerCase());
  if (i < 0) throw new Error(`no ${name} header`);
  return i;
}

export const setHeader = (raw, name, value) => edit(raw, (r) => { r.headers[find(r.headers, name)][1] = value; });
export const setMethod = (raw, method) => edit(raw, (r) => { r.method = method; });
export const setTarget = (raw, target) => edit(raw, (r) => { r.target = target; });
export const replaceBody = (raw, body) => edit(raw, (r) => {
  r.body = Buffer.from(body);
  r.headers[find(r.headers, 'content-length')][1] = String(r.body.length);
});

function editSignature(raw, fn) {
  return edit(raw, (r) => {
    const i = find(r.headers, 'signature');
    const m = SIG_MEMBER.exec(r.headers[i][1]);
    if (!m) throw new Error(`unexpected Signature value ${r.headers[i][1]}`);
    r.headers[i][1] = m[1] + fn(Buffer.from(m[2], 'base64')).toString('base64') + m[3];
  });
}

export const flipSignatureBit = (raw) => editSignature(raw, (s) => { const c = Buffer.from(s); c[10] ^= 1; return c; });
export const truncateSignature = (raw) => editSignature(raw, (s) => s.subarray(0, s.length - 1));

// Drop the inner list's closing parenthesis: not a valid SF dictionary any more.
export const breakSignatureInput = (raw) => edit(raw, (r) => {
  const i = find(r.headers, 'signature-input');
  r.headers[i][1] = r.headers[i][1].replace(')', '');
});

// A second Signature line with the same label, before the real one: a last-wins parser accepts.
export const duplicateLabel = (raw) => edit(raw, (r) => {
  const i = find(r.headers, 'signature');
  const m = SIG_MEMBER.exec(r.headers[i][1]);
  if (!m) throw new Error(`unexpected Signature value ${r.headers[i][1]}`);
  r.headers.splice(i, 0, [r.headers[i][0], m[1] + Buffer.alloc(64).toString('base64') + ':']);
});
