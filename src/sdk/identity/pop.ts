/**
 * SVID-PoP: proof that the caller holds the private key of its current X.509-SVID, for the Mandate
 * server's renewal and JWT-SVID endpoints. A join token is single use, so after the first attestation
 * the workload authenticates with the SVID it already has, signing each request.
 *
 * The proof is a compact JWS: header `{alg, typ: "svid-pop+jwt", x5c}` (leaf first, then
 * intermediates, as in TLS) and payload `{htm, htu, iat, exp, jti, bh}` where `bh` binds the exact
 * request body bytes, so a captured proof cannot carry a different CSR or audience.
 */
import { createHash, randomBytes, type KeyObject, type X509Certificate } from 'node:crypto';
import { SignJWT } from 'jose';
import { MandateError } from '../../errors.ts';

/** `typ` of an SVID-PoP JWS; never accepted where another token type is expected (RFC 8725 §3.11). */
export const SVID_POP_TYPE = 'svid-pop+jwt';

/** The HTTP authentication scheme that carries an SVID-PoP: `Authorization: SVID-PoP <jws>`. */
export const SVID_POP_SCHEME = 'SVID-PoP';

/** Seconds an SVID-PoP stays valid after `iat`. */
export const SVID_POP_LIFETIME_SECONDS = 60;

/** The credential a workload holds: its X.509-SVID chain (leaf first) and the leaf's private key. */
export interface SvidCredential {
  chain: readonly X509Certificate[];
  privateKey: KeyObject;
}

/** The request an SVID-PoP is bound to. */
export interface SvidPopRequest {
  /** HTTP method, e.g. `POST`. */
  htm: string;
  /** Request path on the Mandate server, e.g. `/v1/svid/x509`. */
  htu: string;
  /** The exact body bytes that will be sent (a string is taken as UTF-8). */
  body: string | Uint8Array;
}

export type SvidPopAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'EdDSA';

const EC_ALGS: Readonly<Record<string, SvidPopAlg>> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };

/**
 * The JWS `alg` an SVID-PoP is signed with, chosen from the key (never from input).
 *
 * @example svidPopAlgorithm(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) // 'ES256'
 */
export function svidPopAlgorithm(key: KeyObject): SvidPopAlg {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
      const alg = EC_ALGS[curve];
      if (!alg) throw new MandateError('ERR_KEY_INVALID', `SVID key curve ${curve || '(unknown)'} cannot sign an SVID-PoP: use P-256, P-384 or P-521`);
      return alg;
    }
    case 'rsa': return 'RS256';
    case 'ed25519': return 'EdDSA';
    default:
      throw new MandateError('ERR_KEY_INVALID', `SVID key type ${key.asymmetricKeyType ?? key.type} cannot sign an SVID-PoP: use EC, RSA or Ed25519`);
  }
}

/**
 * `bh` of an SVID-PoP: base64url SHA-256 of the exact request body bytes. Servers recompute it from
 * the bytes they received.
 *
 * @example svidPopBodyHash('{"csr":"..."}') // 'q1w2...'
 */
export function svidPopBodyHash(body: string | Uint8Array): string {
  return createHash('sha256').update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body).digest('base64url');
}

/**
 * Signs an SVID-PoP for one request with the workload's current X.509-SVID key.
 *
 * @example
 *   const body = JSON.stringify({ csr: csrPem });
 *   const pop = await signSvidPop({ chain, privateKey }, { htm: 'POST', htu: '/v1/svid/x509', body });
 *   headers.authorization = `SVID-PoP ${pop}`;
 */
export async function signSvidPop(current: SvidCredential, req: SvidPopRequest, opts: { now?: Date } = {}): Promise<string> {
  if (current.chain.length === 0) throw new MandateError('ERR_X509_SVID_INVALID', 'SVID-PoP needs the current X.509-SVID chain, got no certificate');
  if (current.privateKey.type !== 'private') throw new MandateError('ERR_KEY_INVALID', 'SVID-PoP must be signed with the SVID private key, got a public key');
  const alg = svidPopAlgorithm(current.privateKey);
  const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  return new SignJWT({
    htm: req.htm,
    htu: req.htu,
    iat,
    exp: iat + SVID_POP_LIFETIME_SECONDS,
    jti: randomBytes(16).toString('base64url'),
    bh: svidPopBodyHash(req.body),
  })
    .setProtectedHeader({ alg, typ: SVID_POP_TYPE, x5c: current.chain.map((c) => c.raw.toString('base64')) })
    .sign(current.privateKey);
}
