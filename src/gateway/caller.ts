/**
 * Who is calling, for whom: the gateway's first step on every request. The agent must present an
 * OBO token of our delegation authority for this tool server's resource, sender-constrained (a DPoP
 * proof, or the mTLS certificate it is bound to); on the mTLS listener the certificate must also be
 * a valid X.509-SVID of the token's current actor. A principal's own token (no `act`) is not an
 * agent's and is refused.
 *
 * Failures are OAuthErrors carrying the RFC 6750 / 9449 / 9728 challenge: 401 with
 * `resource_metadata` pointing at the tool server's protected-resource metadata, or 403
 * `insufficient_scope` naming the scopes needed.
 */
import type { X509Certificate } from 'node:crypto';
import { OAuthError } from '../delegation/oauth/errors.ts';
import { unauthorizedChallenge } from '../delegation/oauth/resource-metadata.ts';
import type { AccessTokenVerifier, VerifiedAccessToken } from '../delegation/tokens/verify.ts';

export interface Caller {
  token: VerifiedAccessToken;
  /** The current actor: the agent's SPIFFE ID. */
  agent: string;
  principal: { issuer: string; subject: string };
  sourceAddress: string;
}

export interface AuthenticateInput {
  authorization: string | undefined;
  dpop: string | string[] | undefined;
  method: string;
  /** The request URL as the agent addressed it (for the DPoP `htu`). */
  url: string;
  resource: string;
  metadataUrl: string;
  /** Scopes of which the token needs at least one. */
  scopes: readonly string[];
  clientCertificate?: X509Certificate;
  /** The SPIFFE ID of a client certificate that verified as an X.509-SVID (mTLS listener). */
  certificateSpiffeId?: string;
  sourceAddress: string;
}

function challenge(metadataUrl: string, error: OAuthError): OAuthError {
  const description = error.message;
  const header = unauthorizedChallenge(metadataUrl, { error: 'invalid_token', description });
  return new OAuthError('invalid_token', description, { status: 401, headers: { ...error.headers, 'www-authenticate': header }, cause: error });
}

/** Verifies the presented token for this resource and returns the caller, or throws a challenge. */
export async function authenticate(verifier: AccessTokenVerifier, input: AuthenticateInput): Promise<Caller> {
  if (input.authorization === undefined) {
    // RFC 6750 §3.1: no error code when no credentials were sent; the metadata tells the agent where to get some.
    throw new OAuthError('invalid_token', 'an access token for this tool server is required', {
      status: 401, headers: { 'www-authenticate': unauthorizedChallenge(input.metadataUrl) },
    });
  }
  let token: VerifiedAccessToken;
  try {
    token = await verifier.verify({
      authorization: input.authorization, dpop: input.dpop, method: input.method, url: input.url,
      audience: input.resource, clientCertificate: input.clientCertificate,
    });
  } catch (err) {
    if (err instanceof OAuthError && err.status === 401) {
      // Keep a DPoP nonce or DPoP-specific challenge as it is; add the metadata pointer otherwise.
      if (err.error === 'use_dpop_nonce') throw err;
      throw challenge(input.metadataUrl, err);
    }
    throw err;
  }
  const refuse = (description: string) => challenge(input.metadataUrl, new OAuthError('invalid_token', description));
  if (token.actor === undefined) throw refuse('this is a principal\'s own token; an agent calls with an On-Behalf-Of token that names it as actor');
  if (token.binding === 'none') throw refuse('the access token must be sender-constrained (DPoP or mutual TLS)');
  if (input.certificateSpiffeId !== undefined && input.certificateSpiffeId !== token.actor) {
    throw refuse(`the client certificate is ${input.certificateSpiffeId}, not the token's current actor ${token.actor}`);
  }
  if (input.scopes.length > 0 && !input.scopes.some((s) => token.scopes.includes(s))) {
    throw insufficientScope(input.metadataUrl, [...input.scopes], `the token carries none of the scopes this tool server needs (${input.scopes.join(' ')})`);
  }
  return { token, agent: token.actor, principal: token.principal, sourceAddress: input.sourceAddress };
}

/** 403 insufficient_scope naming the scopes needed (RFC 6750 §3.1; MCP step-up authorization). */
export function insufficientScope(metadataUrl: string, needed: string[], description: string): OAuthError {
  return new OAuthError('insufficient_scope', description, {
    status: 403, headers: { 'www-authenticate': unauthorizedChallenge(metadataUrl, { error: 'insufficient_scope', description, scope: needed }) },
  });
}
