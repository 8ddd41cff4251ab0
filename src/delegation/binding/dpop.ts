/**
 * Server side of DPoP (RFC 9449): checking a `DPoP` proof header at the token endpoint or a resource
 * server (§4.3), replay detection on the proof's `jti` (§11.1) and stateless server nonces (§8, §9).
 * Every refusal is an OAuthError `invalid_dpop_proof` naming the failed check, or `use_dpop_nonce`
 * carrying a fresh `DPoP-Nonce` header.
 *
 * @example
 *   const proof = await verifyDpopProof(req.headers.dpop, { method: req.method, url: `https://${host}${req.url}` },
 *     { algorithms: ['ES256', 'EdDSA'], replay, nonces, requireNonce: true });
 *   // mint a token with cnf: { jkt: proof.jkt }
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JWK } from 'jose';
import { decodeBase64UrlStrict } from '../../identity/bundle/encoding.ts';
import { accessTokenHash, DPOP_PROOF_TYPE } from '../../sdk/agent/dpop.ts';
import { normaliseHtu } from '../../sdk/agent/htu.ts';
import { OAuthError } from '../oauth/errors.ts';
import { proofKey, verifyJwsSignature } from './proof-key.ts';
import type { ReplayGuard } from './replay.ts';

/** What a proof's `jwk` and `alg` must be for each asymmetric JWS algorithm a verifier may accept. */
const ASYMMETRIC: Readonly<Record<string, { kty: string; crv?: string }>> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};

/** JWK members that carry private or symmetric key material (RFC 7517 §9.2, RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Longest proof header accepted; an RSA-4096 proof is under 2 KiB. */
const MAX_PROOF_LENGTH = 8192;
/** Longest `jti` accepted (characters). */
const MAX_JTI_LENGTH = 256;
const DEFAULT_MAX_AGE_SECONDS = 60;
const DEFAULT_CLOCK_SKEW_SECONDS = 30;
const DEFAULT_NONCE_WINDOW_SECONDS = 300;

export interface DpopVerifyOptions {
  /** JWS algorithms accepted, all asymmetric (e.g. `['ES256', 'EdDSA']`). */
  algorithms: readonly string[];
  /** How long after its `iat` a proof is accepted. Default 60 seconds. */
  maxAgeSeconds?: number;
  /** Tolerance for clocks that differ, both ways. Default 30 seconds. */
  clockSkewSeconds?: number;
  /** Remembers proof `jti`s (scoped by key) so each proof is accepted once. */
  replay: ReplayGuard;
  /** Source of server nonces; when set, a proof's `nonce` claim, if present, must be current. */
  nonces?: DpopNonces;
  /** Refuse proofs without a current `nonce` with `use_dpop_nonce`. Needs `nonces`. */
  requireNonce?: boolean;
}

export interface DpopRequest {
  /** The HTTP method of the request, as received. */
  method: string;
  /** The full URL of the request as this server is addressed (query and fragment are ignored). */
  url: string;
  /** The access token the request carries, for resource-server use: the proof's `ath` must match. */
  accessToken?: string;
  now?: Date;
}

export interface VerifiedDpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof key: the `cnf.jkt` to bind tokens to or check against. */
  jkt: string;
  /** The public key from the proof header. */
  jwk: JWK;
  jti: string;
  iat: number;
  htm: string;
  htu: string;
}

/**
 * Stateless DPoP nonces: an HMAC of the current time window under a server secret. A nonce is valid
 * in the window it was made in and the next one, so it lives between one and two windows. All
 * clients share the nonce of a window; it proves the proof was made recently, nothing more. Replicas
 * that must accept each other's nonces need the same secret.
 *
 * @example
 *   const nonces = new DpopNonces({ secret: config.dpopNonceSecret });
 *   res.setHeader('DPoP-Nonce', nonces.current());
 */
export class DpopNonces {
  readonly windowSeconds: number;
  readonly #secret: Buffer;

  constructor(opts: { secret?: Uint8Array; windowSeconds?: number } = {}) {
    const window = opts.windowSeconds ?? DEFAULT_NONCE_WINDOW_SECONDS;
    if (!Number.isSafeInteger(window) || window < 1) throw new TypeError(`windowSeconds must be a positive integer, got ${window}`);
    if (opts.secret !== undefined && opts.secret.length < 32) throw new TypeError(`the DPoP nonce secret must have at least 32 bytes, got ${opts.secret.length}`);
    this.windowSeconds = window;
    this.#secret = opts.secret === undefined ? randomBytes(32) : Buffer.from(opts.secret);
  }

  /** The nonce to hand out now (in `DPoP-Nonce`). */
  current(now: Date = new Date()): string {
    return this.#nonceOf(this.#windowOf(now));
  }

  /** Whether `nonce` was made in the current or the previous window. */
  isValid(nonce: string, now: Date = new Date()): boolean {
    const window = this.#windowOf(now);
    return equalStrings(nonce, this.#nonceOf(window)) || equalStrings(nonce, this.#nonceOf(window - 1));
  }

  #windowOf(now: Date): number {
    return Math.floor(now.getTime() / (this.windowSeconds * 1000));
  }

  #nonceOf(window: number): string {
    return createHmac('sha256', this.#secret).update(`mandate dpop-nonce ${this.windowSeconds} ${window}`).digest('base64url');
  }
}

function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function invalid(description: string, cause?: unknown): OAuthError {
  return new OAuthError('invalid_dpop_proof', description, { cause });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function jsonObjectPart(part: string, name: string): Record<string, unknown> {
  const bytes = decodeBase64UrlStrict(part);
  if (bytes === undefined || bytes.length === 0) throw invalid(`DPoP proof ${name} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw invalid(`DPoP proof ${name} is not UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`DPoP proof ${name} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** RFC 9449 §4.3 points 1-2: exactly one header holding one well-formed compact JWS. */
function singleProof(proof: string | string[] | undefined): string {
  if (Array.isArray(proof)) {
    if (proof.length !== 1) throw invalid(`request has ${proof.length} DPoP headers, exactly one is allowed`);
    return singleProof(proof[0]);
  }
  if (proof === undefined || proof === '') throw invalid('request has no DPoP header');
  if (proof.includes(',')) throw invalid('request has more than one DPoP proof (the DPoP header value contains ",")');
  if (proof.length > MAX_PROOF_LENGTH) throw invalid(`DPoP proof is ${proof.length} characters, over the limit of ${MAX_PROOF_LENGTH}`);
  return proof;
}

function checkOptions(opts: DpopVerifyOptions): { maxAge: number; skew: number } {
  if (opts.algorithms.length === 0) throw new TypeError('DPoP verification needs at least one algorithm');
  for (const alg of opts.algorithms) {
    if (!Object.hasOwn(ASYMMETRIC, alg)) throw new TypeError(`DPoP algorithm ${alg} is not an asymmetric JWS algorithm this verifier supports`);
  }
  const maxAge = opts.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(maxAge) || maxAge <= 0) throw new TypeError(`maxAgeSeconds must be positive, got ${maxAge}`);
  if (!Number.isFinite(skew) || skew < 0) throw new TypeError(`clockSkewSeconds must not be negative, got ${skew}`);
  if (opts.requireNonce === true && opts.nonces === undefined) throw new TypeError('requireNonce needs a DpopNonces source in `nonces`');
  return { maxAge, skew };
}

/** RFC 9449 §4.3 points 3-5 and 7: typ, alg, and a public jwk that fits alg. */
function checkHeader(header: Record<string, unknown>, algorithms: readonly string[]): { alg: string; jwk: JWK } {
  const { typ, alg, jwk } = header;
  if (typ === undefined) throw invalid(`DPoP proof has no typ header (must be ${DPOP_PROOF_TYPE})`);
  if (typ !== DPOP_PROOF_TYPE) throw invalid(`DPoP proof typ ${JSON.stringify(typ)} is not ${DPOP_PROOF_TYPE}`);
  if (typeof alg !== 'string') throw invalid('DPoP proof has no alg header');
  if (alg === 'none') throw invalid('DPoP proof alg "none" is not allowed: a proof must be signed with an asymmetric algorithm');
  if (!Object.hasOwn(ASYMMETRIC, alg)) throw invalid(`DPoP proof alg ${JSON.stringify(alg)} is not an asymmetric signature algorithm`);
  if (!algorithms.includes(alg)) throw invalid(`DPoP proof alg ${alg} is not accepted here (accepted: ${algorithms.join(', ')})`);
  if ('crit' in header) throw invalid('DPoP proof header "crit" is not supported');
  if (jwk === undefined) throw invalid('DPoP proof has no jwk header');
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('DPoP proof jwk header is not a JSON object');
  const key = jwk as Record<string, unknown>;
  const secret = PRIVATE_MEMBERS.find((m) => m in key);
  if (secret !== undefined) throw invalid(`DPoP proof jwk contains the private key member "${secret}": it must hold only the public key`);
  const spec = ASYMMETRIC[alg] as { kty: string; crv?: string };
  if (key.kty !== spec.kty || (spec.crv !== undefined && key.crv !== spec.crv)) {
    throw invalid(`DPoP proof jwk (kty ${String(key.kty)}${key.crv === undefined ? '' : `, crv ${String(key.crv)}`}) does not fit alg ${alg}`);
  }
  if (key.alg !== undefined && key.alg !== alg) throw invalid(`DPoP proof jwk is for alg ${String(key.alg)}, not ${alg}`);
  return { alg, jwk: key as JWK };
}

/** Imports the proof's key (cached per key) and checks the signature; returns the key's thumbprint. */
async function checkSignature(signingInput: string, signature: Buffer, alg: string, jwk: JWK): Promise<string> {
  let imported;
  try {
    imported = proofKey(jwk);
  } catch (err) {
    throw invalid(`DPoP proof jwk is not a usable ${alg} public key: ${(err as Error).message}`, err);
  }
  if (!(await verifyJwsSignature(signingInput, signature, alg, imported.key))) throw invalid('DPoP proof signature does not verify with its jwk');
  return imported.jkt;
}

interface ProofClaims {
  jti: string;
  htm: string;
  htu: string;
  iat: number;
}

/** RFC 9449 §4.3 point 3: the claims every proof carries. */
function requiredClaims(payload: Record<string, unknown>): ProofClaims {
  const { jti, htm, htu, iat } = payload;
  if (typeof jti !== 'string' || jti === '') throw invalid('DPoP proof has no jti claim');
  if (jti.length > MAX_JTI_LENGTH) throw invalid(`DPoP proof jti is ${jti.length} characters, over the limit of ${MAX_JTI_LENGTH}`);
  if (typeof htm !== 'string' || htm === '') throw invalid('DPoP proof has no htm claim');
  if (typeof htu !== 'string' || htu === '') throw invalid('DPoP proof has no htu claim');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('DPoP proof has no numeric iat claim');
  return { jti, htm, htu, iat };
}

/** RFC 9449 §4.3 point 9: htu matches the request URI, both normalised, query and fragment ignored. */
function checkHtu(htu: string, requestUrl: string): string {
  let expected: string;
  try {
    expected = normaliseHtu(requestUrl);
  } catch (err) {
    throw new OAuthError('invalid_request', `request URL is not an http(s) URI a DPoP proof can match: ${(err as Error).message}`, { cause: err });
  }
  let actual: string;
  try {
    actual = normaliseHtu(htu);
  } catch (err) {
    throw invalid(`DPoP proof htu is not an http(s) URI: ${(err as Error).message}`, err);
  }
  if (actual !== expected) throw invalid(`DPoP proof htu ${actual} does not match the request URI ${expected}`);
  return actual;
}

/** RFC 9449 §4.3 point 10, §8: the nonce the server handed out, when it requires or checks one. */
function checkNonce(nonce: unknown, opts: DpopVerifyOptions, now: Date): void {
  const nonces = opts.nonces;
  if (nonces === undefined) return;
  const retry = (description: string): OAuthError => new OAuthError('use_dpop_nonce', description, { headers: { 'DPoP-Nonce': nonces.current(now) } });
  if (nonce === undefined) {
    if (opts.requireNonce === true) throw retry('DPoP proof has no nonce claim: sign a new proof with the nonce from the DPoP-Nonce header');
    return;
  }
  if (typeof nonce !== 'string') throw invalid('DPoP proof nonce claim is not a string');
  if (!nonces.isValid(nonce, now)) throw retry('DPoP proof nonce is stale or unknown: sign a new proof with the nonce from the DPoP-Nonce header');
}

/**
 * Checks a DPoP proof header against the request it came with (RFC 9449 §4.3) and records its `jti`
 * so the same proof is refused next time. Binding an access token's `cnf.jkt` to the returned `jkt`
 * (token endpoint) or checking it (resource server, checkDpopBinding) is the caller's step.
 *
 * @param proof the `DPoP` request header(s) as received (Node gives a string, joining repeats with ",").
 * @throws OAuthError invalid_dpop_proof naming the failed check; use_dpop_nonce (status 400, header
 *   `DPoP-Nonce`) when a nonce is needed; invalid_request when `req.url` is not an http(s) URL.
 * @throws TypeError when `opts` is inconsistent (no or unknown algorithms, requireNonce without nonces).
 * @example await verifyDpopProof(req.headers.dpop, { method: 'POST', url: 'https://mandate.example/oauth/token' }, { algorithms: ['ES256'], replay })
 */
export async function verifyDpopProof(proof: string | string[] | undefined, req: DpopRequest, opts: DpopVerifyOptions): Promise<VerifiedDpopProof> {
  const { maxAge, skew } = checkOptions(opts);
  const now = req.now ?? new Date();
  const jws = singleProof(proof);
  const parts = jws.split('.');
  if (parts.length !== 3) throw invalid(`DPoP proof has ${parts.length} parts, a compact JWS has 3`);
  const [h, p, s] = parts as [string, string, string];
  const header = jsonObjectPart(h, 'header');
  const payload = jsonObjectPart(p, 'payload');
  const { alg, jwk } = checkHeader(header, opts.algorithms);
  // jose would accept a signature part that differs only in unused trailing bits; an alias is refused.
  const signature = decodeBase64UrlStrict(s);
  if (signature === undefined || signature.length === 0) throw invalid('DPoP proof signature is not base64url');
  const jkt = await checkSignature(`${h}.${p}`, signature, alg, jwk);
  const claims = requiredClaims(payload);

  if (claims.htm !== req.method) throw invalid(`DPoP proof htm ${claims.htm} does not match the request method ${req.method}`);
  const htu = checkHtu(claims.htu, req.url);
  checkNonce(payload.nonce, opts, now);

  const nowSeconds = now.getTime() / 1000;
  const age = nowSeconds - claims.iat;
  // Accepted while now < iat + maxAge + skew: exactly the span the replay guard remembers the jti.
  if (age >= maxAge + skew) throw invalid(`DPoP proof iat is ${Math.floor(age)} s old; proofs are accepted for ${maxAge} s (+${skew} s clock skew)`);
  if (-age > skew) throw invalid(`DPoP proof iat is ${Math.ceil(-age)} s in the future (clock skew allowed: ${skew} s)`);

  if (req.accessToken !== undefined) {
    if (payload.ath === undefined) throw invalid('DPoP proof has no ath claim, but the request carries an access token');
    if (typeof payload.ath !== 'string' || !equalStrings(payload.ath, accessTokenHash(req.accessToken))) {
      throw invalid('DPoP proof ath does not match the hash of the access token');
    }
  }

  const replayId = createHash('sha256').update(`${jkt}\n${claims.jti}`).digest('base64url');
  if (!opts.replay.remember(replayId, (claims.iat + maxAge + skew) * 1000, now.getTime())) {
    throw invalid('DPoP proof replayed: its jti was already used with this key (or the replay cache is full)');
  }
  return { jkt, jwk, jti: claims.jti, iat: claims.iat, htm: claims.htm, htu };
}
