/**
 * Who is calling the token, introspection and revocation endpoints (RFC 6749 §2.3, RFC 7521/7523,
 * RFC 8705 §2). Agents authenticate with their SPIFFE identity: a JWT-SVID as `private_key_jwt`
 * client assertion, or their X.509-SVID on the mutual-TLS listener (`tls_client_auth`). An agent
 * needs no registration as a client: its SPIFFE ID is its client id. User-facing clients are public
 * (PKCE) or use a client secret.
 */
import { createHash, timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { isMandateError } from '../../errors.ts';
import type { TrustBundleSet } from '../../identity/bundle/set.ts';
import { verifyJwtSvid } from '../../identity/jwt-svid/verify.ts';
import { isSpiffeId } from '../../identity/spiffe-id/parse.ts';
import { verifyX509Svid } from '../../identity/x509-svid/verify.ts';
import type { OAuthClient } from '../clients/client.ts';
import { OAuthError } from './errors.ts';
import type { OAuthParams } from './form.ts';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export interface AuthenticatedClient {
  client: OAuthClient;
  method: OAuthClient['authMethod'];
  /** The agent's SPIFFE ID when it authenticated with an SVID. */
  spiffeId?: string;
  /** The verified client certificate chain on the mTLS listener (leaf first). */
  certificate?: X509Certificate;
}

export interface ClientAuthDeps {
  resolveClient(clientId: string): Promise<OAuthClient>;
  bundles(): TrustBundleSet;
  /** Audiences a client assertion may carry: the issuer and the token endpoint URLs. */
  assertionAudiences: string[];
}

/** The client certificate chain of a TLS connection, leaf first; empty on plain HTTP or without one. */
export function peerCertificateChain(req: IncomingMessage): X509Certificate[] {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return [];
  const chain: X509Certificate[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push(new NodeX509(cert.raw));
    if (!cert.issuerCertificate || cert.issuerCertificate === cert) break;
    cert = cert.issuerCertificate;
  }
  return chain;
}

/** The agent's own client record: its SPIFFE ID is its client id. */
function agentClient(spiffeId: string, method: 'private_key_jwt' | 'tls_client_auth'): OAuthClient {
  return { clientId: spiffeId, name: spiffeId, redirectUris: [], authMethod: method, spiffeId, grantTypes: [TOKEN_EXCHANGE], origin: 'config' };
}

function basicCredentials(req: IncomingMessage): { id: string; secret: string } | undefined {
  const header = req.headers.authorization;
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'malformed HTTP Basic client credentials', { headers: { 'www-authenticate': 'Basic realm="mandate"' } });
  try {
    // RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
    return { id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw new OAuthError('invalid_client', 'malformed HTTP Basic client credentials');
  }
}

function secretMatches(client: OAuthClient, secret: string): boolean {
  if (!client.secretHash) return false;
  const presented = createHash('sha256').update(secret).digest();
  const expected = Buffer.from(client.secretHash, 'hex');
  return expected.length === presented.length && timingSafeEqual(presented, expected);
}

function invalidClient(description: string): OAuthError {
  return new OAuthError('invalid_client', description);
}

/**
 * Authenticates the caller by exactly one method. `chain` is the verified-or-not peer chain of an
 * mTLS connection (empty elsewhere). Public clients identify with `client_id` only.
 */
export async function authenticateClient(req: IncomingMessage, params: OAuthParams, chain: X509Certificate[], deps: ClientAuthDeps): Promise<AuthenticatedClient> {
  const basic = basicCredentials(req);
  const assertion = params.get('client_assertion');
  const postedSecret = params.get('client_secret');
  const methods = [basic, assertion, postedSecret].filter((m) => m !== undefined).length;
  if (methods > 1) throw new OAuthError('invalid_request', 'use exactly one client authentication method (RFC 6749 §2.3)');
  const claimedId = params.get('client_id');

  if (assertion !== undefined) {
    if (params.get('client_assertion_type') !== JWT_BEARER_ASSERTION) {
      throw new OAuthError('invalid_request', `client_assertion_type must be ${JWT_BEARER_ASSERTION}`);
    }
    let spiffeId: string;
    try {
      const verified = await verifyJwtSvid(assertion, deps.bundles(), { audience: deps.assertionAudiences });
      spiffeId = verified.spiffeId.toString();
    } catch (err) {
      if (isMandateError(err)) throw invalidClient(`the client assertion is not a valid JWT-SVID for this authorization server: ${err.message}`);
      throw err;
    }
    const client = claimedId === undefined || claimedId === spiffeId ? agentClient(spiffeId, 'private_key_jwt') : await deps.resolveClient(claimedId);
    if (client.authMethod !== 'private_key_jwt' || client.spiffeId !== spiffeId) {
      throw invalidClient(`client ${client.clientId} does not authenticate with a JWT-SVID of ${spiffeId}`);
    }
    return { client, method: 'private_key_jwt', spiffeId };
  }

  if (basic !== undefined || postedSecret !== undefined) {
    const id = basic?.id ?? claimedId;
    if (id === undefined) throw new OAuthError('invalid_request', 'client_id is required with client_secret');
    if (basic && claimedId !== undefined && claimedId !== basic.id) throw new OAuthError('invalid_request', 'client_id differs from the HTTP Basic user name');
    const client = await deps.resolveClient(id);
    const expectedMethod = basic ? 'client_secret_basic' : 'client_secret_post';
    if (client.authMethod !== expectedMethod || !secretMatches(client, (basic?.secret ?? postedSecret) as string)) {
      throw new OAuthError('invalid_client', 'client authentication failed', basic ? { headers: { 'www-authenticate': 'Basic realm="mandate"' } } : {});
    }
    return { client, method: expectedMethod };
  }

  if (chain.length > 0) {
    let spiffeId: string;
    try {
      spiffeId = verifyX509Svid(chain, deps.bundles()).spiffeId.toString();
    } catch (err) {
      if (isMandateError(err)) throw invalidClient(`the client certificate is not a valid X.509-SVID: ${err.message}`);
      throw err;
    }
    const client = claimedId === undefined || claimedId === spiffeId ? agentClient(spiffeId, 'tls_client_auth') : await deps.resolveClient(claimedId);
    if (client.authMethod !== 'tls_client_auth' || client.spiffeId !== spiffeId) {
      throw invalidClient(`client ${client.clientId} does not authenticate with the X.509-SVID of ${spiffeId}`);
    }
    return { client, method: 'tls_client_auth', spiffeId, certificate: chain[0] };
  }

  if (claimedId === undefined) throw new OAuthError('invalid_client', 'client authentication is required: client_id, a client assertion, a client secret or an mTLS client certificate');
  if (isSpiffeId(claimedId)) throw invalidClient(`agent ${claimedId} must authenticate with its SVID (client_assertion or mutual TLS)`);
  const client = await deps.resolveClient(claimedId);
  if (client.authMethod !== 'none') throw invalidClient(`client ${client.clientId} must authenticate with ${client.authMethod}`);
  return { client, method: 'none' };
}
