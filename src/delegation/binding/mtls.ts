/**
 * Sender-constraint checks on an access token's `cnf` (confirmation) claim: certificate-bound tokens
 * (RFC 8705 §3, `cnf["x5t#S256"]`) and DPoP-bound tokens (RFC 9449 §6, `cnf.jkt`). A bound token is
 * honoured only when the request proves possession of the same certificate or key.
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { OAuthError } from '../oauth/errors.ts';

/**
 * `x5t#S256` of a certificate (RFC 8705 §3.1): base64url SHA-256 of its DER encoding.
 *
 * @example certificateThumbprint(tlsSocket.getPeerX509Certificate()) // 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2'
 */
export function certificateThumbprint(cert: X509Certificate | Buffer): string {
  return createHash('sha256').update(cert instanceof X509Certificate ? cert.raw : cert).digest('base64url');
}

function cnfMember(cnf: unknown, name: string): string | undefined {
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return undefined;
  const value = (cnf as Record<string, unknown>)[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks that the client certificate of the request is the one the token is bound to.
 *
 * @throws OAuthError invalid_token when the token has no `cnf["x5t#S256"]`, the request presented no
 *   client certificate, or the certificate is another one.
 * @example checkCertificateBinding(claims.cnf, socket.getPeerX509Certificate())
 */
export function checkCertificateBinding(cnf: unknown, cert: X509Certificate | undefined): void {
  const expected = cnfMember(cnf, 'x5t#S256');
  if (expected === undefined) throw new OAuthError('invalid_token', 'access token is not bound to a client certificate (no cnf x5t#S256)');
  if (cert === undefined) throw new OAuthError('invalid_token', 'access token is bound to a client certificate, but the request was made without one');
  if (!same(certificateThumbprint(cert), expected)) throw new OAuthError('invalid_token', "client certificate does not match the access token's cnf x5t#S256");
}

/**
 * Checks that the key of the request's verified DPoP proof (its `jkt`) is the one the token is
 * bound to (RFC 9449 §7.1).
 *
 * @throws OAuthError invalid_token when the token has no `cnf.jkt` or it names another key.
 * @example checkDpopBinding(claims.cnf, (await verifyDpopProof(header, req, opts)).jkt)
 */
export function checkDpopBinding(cnf: unknown, jkt: string): void {
  const expected = cnfMember(cnf, 'jkt');
  if (expected === undefined) throw new OAuthError('invalid_token', 'access token is not DPoP-bound (no cnf jkt)');
  if (!same(jkt, expected)) throw new OAuthError('invalid_token', "DPoP proof key does not match the access token's cnf jkt");
}
