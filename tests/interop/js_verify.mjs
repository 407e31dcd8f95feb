// Verify one raw HTTP/1.1 request with npm http-message-signatures (dhensby).
//
// Usage: node js_verify.mjs --public-key FILE --key-id ID --request FILE [--tag T] [--scheme http]
//
// Prints {"valid": bool, "error": "..."} and exits 0 when valid, 1 when not, 2 on usage errors.
// Policy: max_age 300 s, tolerance 5 s, wall clock. The library does not look at the body
// (dhensby/node-http-message-signatures#20), so this script requires every signature to cover
// content-digest when there is a body and checks the digest (RFC 9530) against the body itself.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createVerifier, httpbis } from 'http-message-signatures';
import { parseDictionary, isInnerList } from 'structured-headers';
import { loadPublicKey, parse, toLibraryHeaders } from './rawhttp.mjs';

const { values: args } = parseArgs({
  options: {
    'public-key': { type: 'string' }, 'key-id': { type: 'string' }, request: { type: 'string' },
    tag: { type: 'string' }, scheme: { type: 'string', default: 'http' },
  },
});

function finish(valid, error, code) {
  console.log(JSON.stringify({ valid, error }));
  process.exit(code);
}

if (!args['public-key'] || !args['key-id'] || !args.request) finish(false, 'usage: --public-key --key-id --request', 2);
let key;
let req;
try {
  key = loadPublicKey(args['public-key']);
  req = parse(readFileSync(args.request));
} catch (e) {
  finish(false, `usage: ${e.message}`, 2);
}
const hosts = req.headers.filter(([n]) => n.toLowerCase() === 'host');
if (hosts.length !== 1) finish(false, 'usage: exactly one Host header required', 2);
const headers = toLibraryHeaders(req.headers);
const field = (name) => req.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

function checkDigest() {
  const inputs = parseDictionary(field('signature-input').join(', '));
  for (const [label, member] of inputs) {
    if (!isInnerList(member)) throw new Error(`Signature-Input ${label} is not an inner list`);
    if (args.tag !== undefined && member[1].get('tag') !== args.tag) throw new Error(`signature ${label} lacks tag ${args.tag}`);
    if (!member[0].some(([name]) => name === 'content-digest')) throw new Error(`signature ${label} does not cover content-digest`);
  }
  const digests = parseDictionary(field('content-digest').join(', '));
  if (digests.size === 0) throw new Error('Content-Digest missing');
  for (const [alg, [value]] of digests) {
    const hash = { 'sha-256': 'sha256', 'sha-512': 'sha512' }[alg];
    if (!hash) throw new Error(`unsupported digest algorithm ${alg}`);
    const actual = createHash(hash).update(req.body).digest();
    const expected = Buffer.from(value);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw new Error('Content-Digest does not match the body');
  }
}

try {
  const ok = await httpbis.verifyMessage({
    keyLookup: async (params) => (params.keyid === args['key-id']
      ? { id: args['key-id'], algs: ['ed25519'], verify: createVerifier(key, 'ed25519') }
      : null),
    maxAge: 300,
    tolerance: 5,
    all: true,
    ...(args.tag !== undefined ? { requiredParams: ['tag'] } : {}),
  }, { method: req.method, url: `${args.scheme}://${hosts[0][1]}${req.target}`, headers });
  if (ok !== true) finish(false, `library returned ${ok}`, 1);
  if (req.body.length > 0 || field('content-digest').length > 0) checkDigest();
} catch (e) {
  finish(false, `${e.name}: ${e.message}`, 1);
}
finish(true, '', 0);
