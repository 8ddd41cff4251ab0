/**
 * Verifying Mandate's access tokens where they are used: the verifier a resource server (our
 * gateway, or anyone's API) runs on every request. It checks, in this order and failing closed:
 * the scheme and the token's shape, the signature with a published key, `typ` (`at+jwt` only —
 * never an ID token, DPoP proof or JWT-SVID: RFC 8725 §3.11), issuer, the one audience, times, the
 * sender constraint (DPoP proof with `ath`, or the mTLS client certificate), and revocation.
 *
 * Errors are OAuthErrors for RFC 6750 / RFC 9449 replies, with the WWW-Authenticate header set.
 *
 * @example
 *   const verifier = new AccessTokenVerifier({ issuer, keys: localKeys(tokenKeys), revocation, dpop });
 *   const token = await verifier.verify({ authorization, dpop, method: 'POST', url, audience });
 *   token.principal.subject; token.actor; token.scopes
 */
import { createHash, type X509Certificate } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTVerifyGetKey } from 'jose';
import { certificateThumbprint } from '../binding/mtls.ts';
import { verifyDpopProof, type DpopVerifyOptions } from '../binding/dpop.ts';
import { GenerationalMap } from '../../util/generational-map.ts';
import { OAuthError } from '../oauth/errors.ts';
import { actChain, scopesOf, type AccessTokenClaims } from './claims.ts';
import { ACCESS_TOKEN_TYPE } from './mint.ts';
import type { RevocationCheck } from './revocation.ts';
import type { TokenSigningKeys } from './signing-keys.ts';

export const TOKEN_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] as const;
const MAX_TOKEN_LENGTH = 8 * 1024;
/** Verified tokens remembered per generation (GenerationalMap); at most twice this many are remembered. */
const REMEMBERED_PER_GENERATION = 5_000;

export interface AccessTokenVerifierOptions {
  issuer: string;
  /** Resolves the signing key from the JOSE header: `localKeys(...)` in process, jose's `createRemoteJWKSet(jwksUri)` elsewhere. */
  keys: JWTVerifyGetKey;
  revocation: RevocationCheck;
  dpop: DpopVerifyOptions;
  /** Seconds of leeway for `exp`/`iat`. Default 30. */
  clockToleranceSeconds?: number;
}

export interface PresentedToken {
  /** The Authorization header as received. */
  authorization: string | undefined;
  /** The DPoP header(s) as received. */
  dpop: string | string[] | undefined;
  method: string;
  /** The full request URL as clients address this server. */
  url: string;
  /** The resource this server is: the token's one audience must equal it. */
  audience: string;
  /** The client certificate of an mTLS connection. */
  clientCertificate?: X509Certificate;
  now?: Date;
}

export interface VerifiedAccessToken {
  token: string;
  claims: AccessTokenClaims;
  principal: { issuer: string; subject: string };
  /** The current actor (outermost `act.sub`), or undefined on a principal's own token. */
  actor: string | undefined;
  /** Every actor, outermost first. */
  chain: string[];
  scopes: string[];
  mandateId: string | undefined;
  binding: 'dpop' | 'mtls' | 'none';
}

/** The in-process key resolver: the published keys of this authority. */
export function localKeys(keys: TokenSigningKeys): JWTVerifyGetKey {
  return (header) => {
    const found = header.kid === undefined ? undefined : keys.publicKey(header.kid);
    if (!found || found.alg !== header.alg) throw new joseErrors.JWKSNoMatchingKey();
    return found.key;
  };
}

function challenge(scheme: 'Bearer' | 'DPoP', error: string, description: string, extra = ''): Record<string, string> {
  const safe = description.replace(/["\\\r\n]/g, "'");
  return { 'www-authenticate': `${scheme} error="${error}", error_description="${safe}"${extra}` };
}

/** A token whose signature verified: its claims, and the key that verified it. */
interface Verified {
  header: JWTHeaderParameters;
  key: unknown;
  claims: AccessTokenClaims;
}

/** The claims' `exp` and `nbf` against `now`, as jose checks them (seconds, with leeway). */
function withinTimes(claims: AccessTokenClaims, now: Date | undefined, tolerance: number): boolean {
  const t = Math.floor((now ?? new Date()).getTime() / 1000);
  const nbf = (claims as { nbf?: number }).nbf;
  return claims.exp > t - tolerance && (nbf === undefined || nbf <= t + tolerance);
}

/** Freezes the claims shared by every call that presents the same token. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class AccessTokenVerifier {
  /**
   * The tokens that verified, by a digest of the token (so memory stays bounded whatever their
   * sizes). An agent presents the same token on every call for its whole lifetime, and the signature
   * check is the dearest part of verifying it. A token counts as verified again only while the same
   * key object is still what the key resolver gives for its header, so a retired or replaced key
   * takes effect at once; the times are checked afresh on every call, and failures are never
   * remembered.
   */
  readonly #verified = new GenerationalMap<string, Verified>(REMEMBERED_PER_GENERATION);

  constructor(private readonly opts: AccessTokenVerifierOptions) {}

  /**
   * Signature, `typ`, issuer and times; no audience, binding or revocation (introspection adds those
   * it needs). A token that verified before, under a key still published, is not verified again.
   * The claims returned are frozen: every call with the token shares them.
   */
  async verifySignature(token: string, now?: Date): Promise<AccessTokenClaims> {
    if (token.length > MAX_TOKEN_LENGTH) throw new Error(`token is longer than ${MAX_TOKEN_LENGTH} characters`);
    const tolerance = this.opts.clockToleranceSeconds ?? 30;
    const digest = createHash('sha256').update(token).digest('base64');
    const known = this.#verified.get(digest);
    if (known !== undefined && withinTimes(known.claims, now, tolerance) && await this.#stillPublished(known)) return known.claims;

    let used: { header: JWTHeaderParameters; key: unknown } | undefined;
    const resolve: JWTVerifyGetKey = async (header, input) => {
      const key = await this.opts.keys(header, input);
      used = { header, key };
      return key;
    };
    const { payload } = await jwtVerify(token, resolve, {
      issuer: this.opts.issuer,
      typ: ACCESS_TOKEN_TYPE,
      algorithms: [...TOKEN_ALGORITHMS],
      clockTolerance: tolerance,
      currentDate: now,
      requiredClaims: ['sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'principal_iss'],
    });
    const claims = payload as unknown as AccessTokenClaims;
    if (typeof claims.aud !== 'string') throw new Error('token must carry exactly one audience');
    actChain(claims.act);
    if (used !== undefined) this.#verified.set(digest, { ...used, claims: deepFreeze(claims) });
    return claims;
  }

  /** True while the key resolver still gives the very key that verified the token. */
  async #stillPublished(known: Verified): Promise<boolean> {
    try {
      return (await this.opts.keys(known.header, { payload: '', signature: '' })) === known.key;
    } catch {
      return false;
    }
  }

  async verify(p: PresentedToken): Promise<VerifiedAccessToken> {
    const header = p.authorization ?? '';
    const space = header.indexOf(' ');
    const scheme = space < 0 ? header : header.slice(0, space);
    const token = space < 0 ? '' : header.slice(space + 1).trim();
    const lower = scheme.toLowerCase();
    if (header === '' || (lower !== 'bearer' && lower !== 'dpop')) {
      // RFC 6750 §3.1: no error code when the request carried no credentials at all.
      throw new OAuthError('invalid_token', 'an access token is required (Authorization: DPoP <token> or Bearer <token>)', {
        headers: { 'www-authenticate': 'Bearer, DPoP' },
      });
    }
    const presentedScheme: 'Bearer' | 'DPoP' = lower === 'dpop' ? 'DPoP' : 'Bearer';
    const fail = (description: string, cause?: unknown): OAuthError =>
      new OAuthError('invalid_token', description, { headers: challenge(presentedScheme, 'invalid_token', description), cause });
    if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.$/.test(token)) throw fail('the access token is unsigned (alg "none"); only signed tokens are accepted');
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw fail('the access token is not a compact JWS');

    let claims: AccessTokenClaims;
    try {
      claims = await this.verifySignature(token, p.now);
    } catch (err) {
      throw fail(`the access token is not valid: ${describeJoseError(err)}`, err);
    }
    if (claims.aud !== p.audience) throw fail(`the access token is for ${claims.aud}, not for this resource (${p.audience})`);

    let binding: VerifiedAccessToken['binding'] = 'none';
    const jkt = claims.cnf?.jkt;
    const x5t = claims.cnf?.['x5t#S256'];
    if (jkt !== undefined) {
      // RFC 9449 §7.1: a DPoP-bound token travels only under the DPoP scheme, with a proof of the key.
      if (presentedScheme !== 'DPoP') throw fail('this access token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof');
      let proof;
      try {
        proof = await verifyDpopProof(p.dpop, { method: p.method, url: p.url, accessToken: token, now: p.now }, this.opts.dpop);
      } catch (err) {
        if (err instanceof OAuthError) {
          const scheme = `DPoP error="${err.error}", error_description="${err.message.replace(/["\\\r\n]/g, "'")}"`;
          throw new OAuthError(err.error, err.message, { status: 401, headers: { ...err.headers, 'www-authenticate': scheme } });
        }
        throw err;
      }
      if (proof.jkt !== jkt) throw fail('the DPoP proof is signed by another key than the one the token is bound to');
      binding = 'dpop';
    } else if (presentedScheme === 'DPoP') {
      throw fail('this access token is not DPoP-bound; send it with Authorization: Bearer');
    }
    if (x5t !== undefined) {
      if (!p.clientCertificate) throw fail('this access token is bound to a client certificate: present it over mutual TLS');
      if (certificateThumbprint(p.clientCertificate) !== x5t) throw fail('the client certificate is not the one the access token is bound to');
      binding = 'mtls';
    }
    if (this.opts.revocation.isRevoked({ jti: claims.jti, mandate: claims.mandate })) {
      throw fail(claims.mandate ? 'the access token or its mandate has been revoked' : 'the access token has been revoked');
    }
    const chain = actChain(claims.act);
    return {
      token, claims,
      principal: { issuer: claims.principal_iss, subject: claims.sub },
      actor: chain[0],
      chain,
      scopes: scopesOf(claims),
      mandateId: claims.mandate,
      binding,
    };
  }
}

/** A sentence for jose's verification errors, naming the failed check. */
export function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'it has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim ${err.claim} ${err.reason === 'check_failed' ? 'is wrong' : err.reason}: ${err.message}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'it is not signed by a published key of this issuer';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'its signature algorithm is not allowed';
  if (err instanceof joseErrors.JOSEError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
