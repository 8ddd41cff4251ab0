/**
 * The agent-side identity SDK: what a workload imports to obtain and use its SPIFFE identity from a
 * Mandate server. Protocol code only; nothing here depends on server code.
 *
 * @example
 *   import { IdentityClient, generateKeyAndCsr } from './sdk/identity/index.ts';
 */
export { IdentityClient, ATTEST_PATH, BUNDLES_PATH, JWT_SVID_PATH, RENEW_X509_PATH } from './client.ts';
export type { Attestation, IdentityApi, IdentityClientOptions } from './client.ts';
export { generateKeyAndCsr, WORKLOAD_KEY_TYPES } from './csr.ts';
export type { WorkloadKeyType } from './csr.ts';
export { signSvidPop, svidPopAlgorithm, svidPopBodyHash, SVID_POP_LIFETIME_SECONDS, SVID_POP_SCHEME, SVID_POP_TYPE } from './pop.ts';
export type { SvidCredential, SvidPopAlg, SvidPopRequest } from './pop.ts';
export { MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT_MS } from './http.ts';
export type { BundlesResponse, JwtSvidResponse, X509SvidResponse } from './responses.ts';
