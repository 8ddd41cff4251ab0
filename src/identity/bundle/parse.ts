/**
 * Parsing SPIFFE bundles (SPIFFE Trust Domain and Bundle §4) and plain JWT bundles (JWKS).
 *
 * The trust domain is always given by the caller, never read from the document: a bundle is
 * authoritative only for the trust domain it was configured for (Federation §7.3).
 */
import type { X509Certificate } from 'node:crypto';
import type { JWK } from 'jose';
import { MandateError } from '../../errors.ts';
import { parseTrustDomain } from '../spiffe-id/parse.ts';
import type { Bundle } from './bundle.ts';
import { jwtAuthorityFromJwk } from './jwt-authority.ts';
import { x509AuthorityFromJwk } from './x509-authority.ts';

/** Largest bundle document accepted, in bytes of JSON text. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;

/** `use` values a plain JWKS entry may carry and still be a JWT authority. */
const JWKS_SIGNING_USES: ReadonlySet<unknown> = new Set([undefined, 'sig', 'jwt-svid']);

type JsonObject = Record<string, unknown>;

function invalid(problem: string, cause?: unknown): MandateError {
  return new MandateError('ERR_BUNDLE_INVALID', problem, cause === undefined ? undefined : { cause });
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonText(text: string): unknown {
  // UTF-16 length never exceeds the UTF-8 byte length, so the cheap check goes first.
  if (text.length > MAX_BUNDLE_BYTES || Buffer.byteLength(text, 'utf8') > MAX_BUNDLE_BYTES) {
    throw invalid(`bundle document is larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalid('bundle document is not valid JSON', err);
  }
}

function decodeDocument(input: unknown): JsonObject {
  let doc = input;
  if (typeof input === 'string') doc = parseJsonText(input);
  else if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_BUNDLE_BYTES) throw invalid(`bundle document is larger than ${MAX_BUNDLE_BYTES} bytes`);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (err) {
      throw invalid('bundle document is not UTF-8', err);
    }
    doc = parseJsonText(text);
  }
  if (!isObject(doc)) throw invalid(`bundle document must be a JSON object, got ${Array.isArray(doc) ? 'an array' : doc === null ? 'null' : typeof doc}`);
  return doc;
}

function keysOf(doc: JsonObject): unknown[] {
  // Bundle spec §4.1.3: "keys" MUST be present; an empty array is a valid (revoking) bundle.
  if (doc.keys === undefined) throw invalid('no authorities: the "keys" member is missing');
  if (!Array.isArray(doc.keys)) throw invalid('"keys" is not an array');
  return doc.keys;
}

function optionalCount(doc: JsonObject, name: string): number | undefined {
  const value = doc[name];
  if (value === undefined) return undefined;
  // Integers beyond 2^53 would silently lose precision, and a sequence must compare exactly.
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`"${name}" must be a non-negative integer below 2^53, got ${JSON.stringify(value)}`);
  }
  return value;
}

function addJwtAuthority(authorities: Map<string, JWK>, jwk: JWK | undefined, where: string): void {
  if (jwk === undefined) return;
  const kid = jwk.kid as string;
  if (authorities.has(kid)) throw invalid(`${where}: duplicate kid ${JSON.stringify(kid)}`);
  authorities.set(kid, jwk);
}

function addX509Authority(authorities: X509Certificate[], cert: X509Certificate | undefined): void {
  if (cert !== undefined && !authorities.some((known) => known.raw.equals(cert.raw))) authorities.push(cert);
}

function bundleHeader(doc: JsonObject, trustDomain: string): Bundle {
  const bundle: Bundle = { trustDomain: parseTrustDomain(trustDomain), x509Authorities: [], jwtAuthorities: new Map() };
  const sequence = optionalCount(doc, 'spiffe_sequence');
  const refreshHint = optionalCount(doc, 'spiffe_refresh_hint');
  if (sequence !== undefined) bundle.sequence = sequence;
  if (refreshHint !== undefined) bundle.refreshHint = refreshHint;
  return bundle;
}

/**
 * Parses a SPIFFE bundle (JSON text, UTF-8 bytes, or an already parsed value) as the bundle of
 * `trustDomain`. Entries with an unknown `kty` or `use` (e.g. `wit-svid`) are ignored; `x509-svid`
 * entries need exactly one `x5c` certificate and no `kid`; `jwt-svid` entries need a unique `kid`.
 *
 * A document whose `keys` is empty, or holds only ignored entries, yields a bundle without
 * authorities: every SVID of that trust domain is then untrusted (bundle spec §4.1.3). Only a
 * document without `keys` is rejected as having no authorities.
 *
 * @throws MandateError ERR_BUNDLE_INVALID naming the key index and the rule that failed;
 *   ERR_TRUST_DOMAIN_INVALID for a bad `trustDomain`.
 * @example const bundle = parseSpiffeBundle(await readFile('partner.json', 'utf8'), 'partner.example');
 */
export function parseSpiffeBundle(json: unknown, trustDomain: string): Bundle {
  const doc = decodeDocument(json);
  const bundle = bundleHeader(doc, trustDomain);
  keysOf(doc).forEach((entry, i) => {
    const where = `keys[${i}]`;
    if (!isObject(entry)) throw invalid(`${where}: entry is not a JSON object`);
    if (entry.use === 'x509-svid') addX509Authority(bundle.x509Authorities, x509AuthorityFromJwk(entry, where));
    else if (entry.use === 'jwt-svid') addJwtAuthority(bundle.jwtAuthorities, jwtAuthorityFromJwk(entry, where), where);
  });
  return bundle;
}

/**
 * Parses a plain JWKS of JWT-SVID signing keys (the Workload API's JWT bundle) as the bundle of
 * `trustDomain`. Every key needs a unique `kid`; keys whose `use` is set to something other than
 * `sig` or `jwt-svid`, and keys of types JWT-SVID cannot use, are ignored.
 *
 * @throws MandateError ERR_BUNDLE_INVALID naming the key index and the rule that failed.
 * @example const bundle = parseJwtBundle(jwksBytes, 'example.org'); bundle.jwtAuthorities.get(kid);
 */
export function parseJwtBundle(json: unknown, trustDomain: string): Bundle {
  const doc = decodeDocument(json);
  const bundle = bundleHeader(doc, trustDomain);
  keysOf(doc).forEach((entry, i) => {
    const where = `keys[${i}]`;
    if (!isObject(entry)) throw invalid(`${where}: entry is not a JSON object`);
    if (!JWKS_SIGNING_USES.has(entry.use)) return;
    addJwtAuthority(bundle.jwtAuthorities, jwtAuthorityFromJwk(entry, where), where);
  });
  return bundle;
}
