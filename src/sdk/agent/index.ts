/**
 * The Agent SDK: what an agent imports to act for a person with a Mandate. It gets its SPIFFE
 * identity from an SvidSource, exchanges the person's grant for On-Behalf-Of tokens with MandateAgent
 * (bound to its DPoP key, or with binding 'mtls' to its X.509-SVID), and authorizes its requests to
 * tools (MCP servers via mandateFetch, or for mTLS agents mandateAuthProvider).
 * Protocol code only; nothing here depends on server code.
 *
 * @example
 *   import { MandateAgent, mandateAuthProvider, mandateFetch, SUBJECT_TOKEN_TYPES, workloadApiSource } from './sdk/agent/index.ts';
 */
export { MandateAgent, SUBJECT_TOKEN_TYPES } from './client.ts';
export type { AgentToken, AuthorizationHeaders, AuthorizationServerMetadata, AuthorizeRequest, ExchangeRequest, Grant, MandateAgentOptions, TokenBinding } from './client.ts';
export { AgentAuthError, INVALID_RESPONSE } from './errors.ts';
export { mandateAuthProvider, mandateFetch } from './mcp.ts';
export { filesSource, staticSource, SVID_FILES, workloadApiSource } from './svid-source.ts';
export type { SvidSource, X509SvidPem } from './svid-source.ts';
export { accessTokenHash, DpopSigner, DPOP_PROOF_TYPE } from './dpop.ts';
export type { DpopAlg } from './dpop.ts';
