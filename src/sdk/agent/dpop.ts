/**
 * Agent side of DPoP (RFC 9449): a key pair the agent holds and the proofs it signs with it, one per
 * HTTP request. The OBO token the agent receives is bound to this key (`cnf.jkt` = `jkt`), so the token
 * is useless without a fresh proof from the same key.
 *
 * Protocol code only (jose and node:crypto); nothing here depends on server code.
 *
 * @example
 *   const signer = await DpopSigner.generate();            // ES256
 *   const dpop = await signer.proof('POST', 'https://mandate.example/oauth/token');
 *   // later, at a resource server:
 *   const proof = await signer.proof('GET', url, { accessToken, nonce });
 *   headers = { authorization: `DPoP ${accessToken}`, dpop: proof };
 */
import { createHash, createPublicKey, KeyObject, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, generateKeyPair, SignJWT, type JWK } from 'jose';
import { normaliseHtu } from './htu.ts';

/** The JWS `typ` of a DPoP proof (RFC 9449 §4.2). */
export const DPOP_PROOF_TYPE = 'dpop+jwt';

/** Asymmetric JWS algorithms a DpopSigner can sign with. */
export type DpopAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'EdDSA' | 'Ed25519';

interface KeySpec {
  /** node:crypto `asymmetricKeyType`. */
  type: 'ec' | 'rsa' | 'ed25519';
  /** node:crypto curve name for EC keys. */
  curve?: string;
}

const KEYS: Readonly<Record<DpopAlg, KeySpec>> = {
  ES256: { type: 'ec', curve: 'prime256v1' },
  ES384: { type: 'ec', curve: 'secp384r1' },
  ES512: { type: 'ec', curve: 'secp521r1' },
  RS256: { type: 'rsa' },
  RS384: { type: 'rsa' },
  RS512: { type: 'rsa' },
  PS256: { type: 'rsa' },
  PS384: { type: 'rsa' },
  PS512: { type: 'rsa' },
  EdDSA: { type: 'ed25519' },
  Ed25519: { type: 'ed25519' },
};

const KEY_TYPE_NAMES: Readonly<Record<KeySpec['type'], string>> = { ec: 'EC', rsa: 'RSA', ed25519: 'Ed25519' };

/** RFC 7518 §3.3 / §3.5: RSA keys of fewer bits must not be used. */
const MIN_RSA_BITS = 2048;

/** The members of each key type that RFC 7638 hashes; the public JWK carries exactly these. */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] };

/** Fetch's "normalize a method": these methods are sent upper-cased whatever case the caller used. */
const FETCH_NORMALISED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
/** RFC 9110 §5.6.2 token: what an HTTP method may consist of. */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * `ath` of a DPoP proof: base64url SHA-256 of the access token (RFC 9449 §4.2).
 *
 * @example accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU') // 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'
 */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'utf8').digest('base64url');
}

function keyMismatch(key: KeyObject, alg: DpopAlg): string | undefined {
  const spec = KEYS[alg];
  const type = key.asymmetricKeyType ?? key.type;
  if (type !== spec.type) return `alg ${alg} needs an ${KEY_TYPE_NAMES[spec.type]} key, got ${type}`;
  const details = key.asymmetricKeyDetails ?? {};
  if (spec.curve !== undefined && details.namedCurve !== spec.curve) return `alg ${alg} needs curve ${spec.curve}, got ${details.namedCurve ?? 'unknown'}`;
  if (spec.type === 'rsa' && (details.modulusLength ?? 0) < MIN_RSA_BITS) return `RSA key has ${details.modulusLength ?? 0} bits, fewer than ${MIN_RSA_BITS}`;
  return undefined;
}

function publicJwkOf(key: KeyObject): JWK {
  const full = createPublicKey(key).export({ format: 'jwk' }) as Record<string, unknown>;
  const members = PUBLIC_MEMBERS[full.kty as string] ?? [];
  return Object.freeze(Object.fromEntries(members.map((m) => [m, full[m]]))) as JWK;
}

/** Holds one DPoP key pair and signs proofs with it. The private key never leaves the instance. */
export class DpopSigner {
  readonly alg: DpopAlg;
  /** RFC 7638 SHA-256 thumbprint of the public key: the `cnf.jkt` of tokens bound to this signer. */
  readonly jkt: string;
  /** The public key, as it appears in the `jwk` header of every proof. */
  readonly publicJwk: JWK;
  readonly #privateKey: KeyObject | CryptoKey;

  private constructor(alg: DpopAlg, privateKey: KeyObject | CryptoKey, publicJwk: JWK, jkt: string) {
    this.alg = alg;
    this.#privateKey = privateKey;
    this.publicJwk = publicJwk;
    this.jkt = jkt;
  }

  /**
   * A signer with a fresh, non-extractable key pair (RSA: 2048 bits, EdDSA: Ed25519).
   *
   * @example const signer = await DpopSigner.generate('EdDSA');
   */
  static async generate(alg: DpopAlg = 'ES256'): Promise<DpopSigner> {
    if (!Object.hasOwn(KEYS, alg)) throw new TypeError(`DPoP alg ${String(alg)} is not supported: use one of ${Object.keys(KEYS).join(', ')}`);
    const { privateKey } = await generateKeyPair(alg);
    return DpopSigner.fromKey(privateKey, alg);
  }

  /**
   * A signer for an existing private key (node:crypto KeyObject or WebCrypto CryptoKey, extractable
   * or not).
   *
   * @throws TypeError when the key is not a private key that fits `alg`.
   * @example const signer = await DpopSigner.fromKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, 'ES384');
   */
  static async fromKey(privateKey: KeyObject | CryptoKey, alg: DpopAlg): Promise<DpopSigner> {
    if (!Object.hasOwn(KEYS, alg)) throw new TypeError(`DPoP alg ${String(alg)} is not supported: use one of ${Object.keys(KEYS).join(', ')}`);
    if (!(privateKey instanceof KeyObject) && !privateKey.usages.includes('sign')) throw new TypeError('the CryptoKey is not usable for signing');
    const key = privateKey instanceof KeyObject ? privateKey : KeyObject.from(privateKey);
    if (key.type !== 'private') throw new TypeError(`a DPoP signer needs a private key, got a ${key.type} key`);
    const mismatch = keyMismatch(key, alg);
    if (mismatch !== undefined) throw new TypeError(mismatch);
    const publicJwk = publicJwkOf(key);
    return new DpopSigner(alg, privateKey, publicJwk, await calculateJwkThumbprint(publicJwk, 'sha256'));
  }

  /**
   * A DPoP proof for one request: fresh random `jti`, `iat` now, `htm` the method, `htu` the URL
   * normalised without query and fragment; `ath` when the request carries an access token and
   * `nonce` when the server sent one in `DPoP-Nonce`.
   *
   * @throws TypeError when `method` is not an HTTP method or `url` is not an http(s) URL.
   * @example await signer.proof('GET', 'https://tools.example/mcp?x=1', { accessToken, nonce })
   */
  async proof(method: string, url: string, opts: { accessToken?: string; nonce?: string } = {}): Promise<string> {
    if (!METHOD.test(method)) throw new TypeError(`${JSON.stringify(method)} is not an HTTP method`);
    let htu: string;
    try {
      htu = normaliseHtu(url);
    } catch (err) {
      throw new TypeError(`DPoP proof URL is not an http(s) URI: ${(err as Error).message}`, { cause: err });
    }
    const claims: Record<string, unknown> = {
      jti: randomBytes(16).toString('base64url'),
      htm: FETCH_NORMALISED.has(method.toUpperCase()) ? method.toUpperCase() : method,
      htu,
      iat: Math.floor(Date.now() / 1000),
    };
    if (opts.accessToken !== undefined) claims.ath = accessTokenHash(opts.accessToken);
    if (opts.nonce !== undefined) claims.nonce = opts.nonce;
    return new SignJWT(claims).setProtectedHeader({ alg: this.alg, typ: DPOP_PROOF_TYPE, jwk: this.publicJwk }).sign(this.#privateKey);
  }
}
