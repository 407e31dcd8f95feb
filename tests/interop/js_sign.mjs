// Generate signed interop scenarios with npm http-message-signatures (dhensby).
//
// Usage: node js_sign.mjs --key FILE --key-id ID --out DIR [--now UNIX]
//
// Writes DIR/NAME.http (raw request bytes as on the wire) for every scenario and DIR/manifest.json
// listing each file with its expected sigproxy outcome: "valid" or a reference §4.5 code. Every
// signature is made by the library's signMessage; the library does not do digests, so this script
// adds Content-Digest (RFC 9530) itself before signing. Tampered variants are byte edits of a valid
// request, except those whose signature parameters change (expired, future, unknown keyid, alg
// mismatch), which are re-signed so that only the parameter is wrong.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSigner, httpbis } from 'http-message-signatures';
import { fromLibraryHeaders, loadPrivateKey, serialize, toLibraryHeaders } from './rawhttp.mjs';
import * as tamper from './tamper.mjs';

const TAG = 'sigproxy-interop';
const HOST = 'api.example.com';
const QUERY_TARGET = '/api/items?q=a%20b&tag=x%2Fy&empty=';
const ORDER_BODY = '{"item":"gadget","quantity":7,"note":"x < y & z"}';
const GET_COMPONENTS = ['@method', '@authority', '@path', '@query'];
const POST_COMPONENTS = ['@method', '@authority', '@path', '@query', 'content-type', 'content-digest'];
const TARGET_URI_COMPONENTS = ['@method', '@target-uri', '@authority', 'content-type', 'content-digest'];

const { values: args } = parseArgs({
  options: { key: { type: 'string' }, 'key-id': { type: 'string' }, out: { type: 'string' }, now: { type: 'string' } },
});
if (!args.key || !args['key-id'] || !args.out) {
  console.error('usage: node js_sign.mjs --key FILE --key-id ID --out DIR [--now UNIX]');
  process.exit(2);
}
const keyId = args['key-id'];
const now = args.now ? Number.parseInt(args.now, 10) : Math.floor(Date.now() / 1000);
const privateKey = loadPrivateKey(args.key);
const out = args.out;
mkdirSync(out, { recursive: true });
const entries = [];

function request(method, authority, target, headers, body, digestAlg) {
  const lines = [['Host', authority], ...headers];
  const bytes = body ? Buffer.from(body) : Buffer.alloc(0);
  if (bytes.length) {
    lines.push(['Content-Length', String(bytes.length)]);
    if (digestAlg) {
      const hash = createHash(digestAlg === 'sha-512' ? 'sha512' : 'sha256').update(bytes).digest('base64');
      lines.push(['Content-Digest', `${digestAlg}=:${hash}:`]);
    }
  }
  return { method, authority, target, headers: lines, body: bytes };
}

async function sign(req, fields, { keyid, created = now, expires = 'default', alg } = {}) {
  const params = ['created', 'expires', 'nonce', 'keyid', 'alg', 'tag'].filter((p) => p !== 'expires' || expires !== null);
  const paramValues = {
    created: new Date(created * 1000),
    nonce: randomBytes(16).toString('base64url'),
    tag: TAG,
  };
  if (expires !== null) paramValues.expires = new Date((expires === 'default' ? created + 300 : expires) * 1000);
  if (keyid) paramValues.keyid = keyid;
  if (alg) paramValues.alg = alg;
  const signed = await httpbis.signMessage(
    { key: createSigner(privateKey, 'ed25519', keyId), fields, params, paramValues },
    { method: req.method, url: `http://${req.authority}${req.target}`, headers: toLibraryHeaders(req.headers) },
  );
  return serialize({ ...req, headers: fromLibraryHeaders(signed.headers) });
}

function write(name, raw, expect, note, derivedFrom) {
  writeFileSync(join(out, `${name}.http`), raw);
  entries.push({ name, file: `${name}.http`, expect, note, ...(derivedFrom ? { derived_from: derivedFrom } : {}) });
}

const get = () => request('GET', HOST, QUERY_TARGET, [['Accept', 'application/json'], ['User-Agent', 'js-sign/1']]);
const post = (digest = 'sha-256') => request('POST', HOST, '/api/orders?dry_run=1', [['Content-Type', 'application/json']], ORDER_BODY, digest);
const post512 = () => request('POST', `${HOST}:8443`, '/api/orders/42', [['Content-Type', 'application/json; charset=utf-8']],
  '{"status":"shipped","items":[4,5,6]}', 'sha-512');

const getRaw = await sign(get(), GET_COMPONENTS);
const postRaw = await sign(post(), POST_COMPONENTS);
const post512Raw = await sign(post512(), TARGET_URI_COMPONENTS);
write('get-query', getRaw, 'valid', 'GET, encoded query, @method @authority @path @query');
write('post-sha256', postRaw, 'valid', 'POST JSON, sha-256 Content-Digest covered');
write('post-sha512-target-uri', post512Raw, 'valid', 'POST, sha-512 Content-Digest, @target-uri (http scheme, non-default port)');

write('post-sha256--body-tampered', tamper.replaceBody(postRaw, ORDER_BODY.replace('7', '8')),
  'DIGEST_MISMATCH', 'body changed after signing', 'post-sha256');
write('post-sha512--body-tampered', tamper.replaceBody(post512Raw, '{"status":"lost","items":[4,5,6]}'),
  'DIGEST_MISMATCH', 'body changed after signing', 'post-sha512-target-uri');
write('post-sha256--header-tampered', tamper.setHeader(postRaw, 'Content-Type', 'text/plain'),
  'SIGNATURE_INVALID', 'covered content-type changed', 'post-sha256');
write('get-query--method-tampered', tamper.setMethod(getRaw, 'DELETE'), 'SIGNATURE_INVALID', 'GET changed to DELETE', 'get-query');
write('get-query--authority-tampered', tamper.setHeader(getRaw, 'Host', 'evil.example.com'),
  'SIGNATURE_INVALID', 'Host changed', 'get-query');
write('post-sha512--authority-tampered', tamper.setHeader(post512Raw, 'Host', HOST),
  'SIGNATURE_INVALID', 'port dropped from Host (changes @authority and @target-uri)', 'post-sha512-target-uri');
write('get-query--query-tampered', tamper.setTarget(getRaw, '/api/items?q=a+b&tag=x%2Fy&empty='),
  'SIGNATURE_INVALID', 'query re-encoded %20 -> +', 'get-query');
write('post-sha256--sig-bitflip', tamper.flipSignatureBit(postRaw), 'SIGNATURE_INVALID', 'one bit of the signature flipped', 'post-sha256');
write('get-query--sig-truncated', tamper.truncateSignature(getRaw), 'SIGNATURE_MALFORMED', 'signature is 63 bytes, not 64', 'get-query');
write('get-query--malformed-input', tamper.breakSignatureInput(getRaw), 'SIGNATURE_MALFORMED', 'Signature-Input inner list not closed', 'get-query');
write('post-sha256--duplicate-label', tamper.duplicateLabel(postRaw), 'SIGNATURE_MALFORMED',
  'a second Signature line reuses the label (bogus first, real last)', 'post-sha256');

write('get-query--expired', await sign(get(), GET_COMPONENTS, { created: now - 120, expires: now - 60 }),
  'TIMESTAMP_TOO_OLD', 're-signed: created now-120, expires now-60', 'get-query');
write('get-query--created-too-old', await sign(get(), GET_COMPONENTS, { created: now - 400, expires: null }),
  'TIMESTAMP_TOO_OLD', 're-signed: created now-400, no expires (max_age 300)', 'get-query');
write('get-query--created-future', await sign(get(), GET_COMPONENTS, { created: now + 120 }),
  'TIMESTAMP_OUT_OF_WINDOW', 're-signed: created now+120 (skew 30)', 'get-query');
write('post-sha256--unknown-keyid', await sign(post(), POST_COMPONENTS, { keyid: 'no-such-key' }),
  'KEY_NOT_FOUND', 're-signed with keyid=no-such-key', 'post-sha256');
write('get-query--alg-mismatch', await sign(get(), GET_COMPONENTS, { alg: 'rsa-pss-sha512' }),
  'KEY_ID_MISMATCH', 're-signed: Ed25519 signature with alg="rsa-pss-sha512"', 'get-query');
write('post-sha256--digest-not-covered', await sign(post(null), ['@method', '@authority', '@path', '@query', 'content-type']),
  'DIGEST_MISSING', 'body present, content-digest neither sent nor covered', 'post-sha256');

const { version } = JSON.parse(readFileSync(new URL('./node_modules/http-message-signatures/package.json', import.meta.url)));
writeFileSync(join(out, 'manifest.json'), JSON.stringify({
  library: 'npm:http-message-signatures', version, key_id: keyId, now, scenarios: entries,
}, null, 2) + '\n');
