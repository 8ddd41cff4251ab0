/**
 * The Mandate server's identity responses, read as untrusted input: every field is checked and turned
 * into protocol objects (SpiffeId, certificates, Bundle) before the agent uses it.
 */
import type { X509Certificate } from 'node:crypto';
import { MandateError } from '../../errors.ts';
import type { Bundle } from '../../identity/bundle/bundle.ts';
import { parseSpiffeBundle } from '../../identity/bundle/parse.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../identity/spiffe-id/parse.ts';
import { parseX509Svid } from '../../identity/x509-svid/parse.ts';

/** An X.509-SVID as the server issued it, with the bundles the workload should trust. */
export interface X509SvidResponse {
  spiffeId: SpiffeId;
  /** Leaf first, then intermediates; no trust anchor. */
  chain: X509Certificate[];
  /** The leaf's notAfter. */
  expiresAt: Date;
  /** Bundle of the server's (and the SVID's) trust domain. */
  bundle: Bundle;
  /** Bundles of federated trust domains. */
  federatedBundles: Bundle[];
}

export interface JwtSvidResponse {
  spiffeId: SpiffeId;
  /** The JWT-SVID, JWS compact serialisation. */
  token: string;
  expiresAt: Date;
}

export interface BundlesResponse {
  /** The server's own trust domain. */
  trustDomain: string;
  /** Own bundle and federated bundles, one per trust domain. */
  bundles: Bundle[];
}

type Doc = Record<string, unknown>;

function invalid(what: string, problem: string): MandateError {
  return new MandateError('ERR_SERVER_RESPONSE_INVALID', `response to ${what}: ${problem}`);
}

function object(value: unknown, what: string, field: string): Doc {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(what, `"${field}" is not a JSON object`);
  return value as Doc;
}

function string(doc: Doc, field: string, what: string): string {
  const value = doc[field];
  if (typeof value !== 'string' || value === '') throw invalid(what, `"${field}" is missing or not a string`);
  return value;
}

function date(doc: Doc, field: string, what: string): Date {
  const value = new Date(string(doc, field, what));
  if (Number.isNaN(value.getTime())) throw invalid(what, `"${field}" is not an ISO date`);
  return value;
}

function bundleMap(value: unknown, what: string, field: string): Bundle[] {
  const doc = object(value ?? {}, what, field);
  const bundles: Bundle[] = [];
  for (const [name, json] of Object.entries(doc)) {
    // The key, not the document, names the trust domain (bundle spec §3).
    const trustDomain = parseTrustDomain(name);
    if (bundles.some((b) => b.trustDomain === trustDomain)) throw invalid(what, `"${field}" names trust domain ${trustDomain} twice`);
    bundles.push(parseSpiffeBundle(json, trustDomain));
  }
  return bundles;
}

/**
 * Reads the answer of POST /v1/attest and POST /v1/svid/x509. The leaf must satisfy the X.509-SVID
 * rules and carry the SPIFFE ID the server names.
 *
 * @example const svid = readX509SvidResponse(await http.send(req), 'POST /v1/attest');
 */
export function readX509SvidResponse(raw: unknown, what: string): X509SvidResponse {
  const doc = object(raw, what, '(body)');
  const spiffeId = parseSpiffeId(string(doc, 'spiffe_id', what));
  const parsed = parseX509Svid(string(doc, 'x509_svid', what));
  if (parsed.spiffeId.toString() !== spiffeId.toString()) {
    throw invalid(what, `x509_svid names ${parsed.spiffeId} but spiffe_id is ${spiffeId}`);
  }
  date(doc, 'expires_at', what);
  const leaf = parsed.chain[0] as X509Certificate;
  const bundle = parseSpiffeBundle(doc.bundle, spiffeId.trustDomain);
  const federatedBundles = bundleMap(doc.federated_bundles, what, 'federated_bundles');
  if (federatedBundles.some((b) => b.trustDomain === spiffeId.trustDomain)) {
    throw invalid(what, `federated_bundles must not contain the SVID's own trust domain ${spiffeId.trustDomain}`);
  }
  return { spiffeId, chain: parsed.chain, expiresAt: new Date(leaf.validTo), bundle, federatedBundles };
}

/** Reads the answer of POST /v1/svid/jwt. */
export function readJwtSvidResponse(raw: unknown, what: string): JwtSvidResponse {
  const doc = object(raw, what, '(body)');
  const token = string(doc, 'token', what);
  if (token.split('.').length !== 3) throw invalid(what, '"token" is not a compact JWS');
  return { spiffeId: parseSpiffeId(string(doc, 'spiffe_id', what)), token, expiresAt: date(doc, 'expires_at', what) };
}

/** Reads the answer of GET /v1/bundles; the server's own bundle must be present. */
export function readBundlesResponse(raw: unknown, what: string): BundlesResponse {
  const doc = object(raw, what, '(body)');
  const trustDomain = parseTrustDomain(string(doc, 'trust_domain', what));
  const bundles = bundleMap(doc.bundles, what, 'bundles');
  if (!bundles.some((b) => b.trustDomain === trustDomain)) throw invalid(what, `"bundles" lacks the server's own trust domain ${trustDomain}`);
  return { trustDomain, bundles };
}
