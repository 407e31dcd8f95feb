// Raw HTTP/1.1 request files and Ed25519 key files, shared by js_sign.mjs and js_verify.mjs.
// Only what the interop scripts need: request line, CRLF header lines, blank line, body.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function loadPrivateKey(path) {
  const text = readFileSync(path, 'utf8');
  if (text.includes('-----BEGIN')) return createPrivateKey(text);
  const seed = Buffer.from(text.trim(), 'base64');
  if (seed.length !== 32) throw new Error(`private key: expected a 32-byte seed, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function loadPublicKey(path) {
  const text = readFileSync(path, 'utf8').trim();
  if (text.includes('-----BEGIN')) return createPublicKey(text);
  if (text.startsWith('{')) return createPublicKey({ key: JSON.parse(text), format: 'jwk' });
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== 32) throw new Error(`public key: expected 32 raw bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

// headers: ordered [name, value] pairs.
export function serialize({ method, target, headers, body }) {
  const head = [`${method} ${target} HTTP/1.1`, ...headers.map(([n, v]) => `${n}: ${v}`)].join('\r\n');
  return Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), body ?? Buffer.alloc(0)]);
}

export function parse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('no blank line ending the header section');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const [method, target, version] = lines[0].split(' ');
  if (version !== 'HTTP/1.1') throw new Error(`unexpected version ${version}`);
  const headers = lines.slice(1).map((line) => {
    const colon = line.indexOf(':');
    if (colon < 0) throw new Error(`header line without colon: ${line}`);
    return [line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')];
  });
  return { method, target, headers, body: raw.subarray(end + 4) };
}

// The library's Request shape: headers as an object, repeated lines as arrays (wire order kept).
export function toLibraryHeaders(headers) {
  const out = {};
  const names = {};
  for (const [name, value] of headers) {
    const lc = name.toLowerCase();
    if (!(lc in names)) {
      names[lc] = name;
      out[name] = value;
    } else {
      const prev = out[names[lc]];
      out[names[lc]] = Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return out;
}

export function fromLibraryHeaders(obj) {
  return Object.entries(obj).flatMap(([n, v]) => (Array.isArray(v) ? v.map((x) => [n, x]) : [[n, v]]));
}
