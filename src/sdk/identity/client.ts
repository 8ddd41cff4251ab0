/**
 * The agent side of the Mandate server's identity API: attest once, then renew the X.509-SVID and
 * obtain JWT-SVIDs by proving possession of the current SVID key (SVID-PoP), and read the bundles.
 */
import { MandateError } from '../../errors.ts';
import { JsonHttp, type JsonHttpOptions } from './http.ts';
import { SVID_POP_SCHEME, signSvidPop, type SvidCredential } from './pop.ts';
import { readBundlesResponse, readJwtSvidResponse, readX509SvidResponse, type BundlesResponse, type JwtSvidResponse, type X509SvidResponse } from './responses.ts';

export type { BundlesResponse, JwtSvidResponse, X509SvidResponse } from './responses.ts';
export type { SvidCredential } from './pop.ts';

/** How a workload proves what it is on first contact. A join token works once. */
export type Attestation =
  | { type: 'join_token'; token: string }
  | { type: 'k8s_psat'; token: string; cluster?: string }
  | { type: 'static'; selectors: string[] };

export type IdentityClientOptions = JsonHttpOptions;

/** The operations the agent needs from the server; IdentityClient is the HTTP implementation. */
export interface IdentityApi {
  attest(attestation: Attestation, csrPem: string, spiffeId?: string): Promise<X509SvidResponse>;
  renewX509(current: SvidCredential, csrPem: string): Promise<X509SvidResponse>;
  fetchJwtSvid(current: SvidCredential, audience: string[]): Promise<JwtSvidResponse>;
  bundles(): Promise<BundlesResponse>;
}

export const ATTEST_PATH = '/v1/attest';
export const RENEW_X509_PATH = '/v1/svid/x509';
export const JWT_SVID_PATH = '/v1/svid/jwt';
export const BUNDLES_PATH = '/v1/bundles';

function checkAudience(audience: unknown): asserts audience is string[] {
  if (!Array.isArray(audience) || audience.length === 0) throw new MandateError('ERR_BAD_REQUEST', 'audience must name at least one audience');
  for (const a of audience) {
    if (typeof a !== 'string' || a === '') throw new MandateError('ERR_BAD_REQUEST', 'every audience must be a non-empty string');
  }
}

/**
 * HTTP client of the Mandate identity API. Errors are MandateErrors: the server's own code for a
 * refusal, ERR_TIMEOUT / ERR_SERVER_UNREACHABLE for transport failures, ERR_SERVER_RESPONSE_INVALID
 * (or the specific bundle/SVID code) for a malformed answer.
 *
 * @example
 *   const client = new IdentityClient({ serverUrl: 'https://mandate.example.org', caFile: 'ca.pem' });
 *   const { privateKey, csrPem } = await generateKeyAndCsr();
 *   const svid = await client.attest({ type: 'join_token', token }, csrPem);
 *   const jwt = await client.fetchJwtSvid({ chain: svid.chain, privateKey }, ['https://api.example.org']);
 */
export class IdentityClient implements IdentityApi {
  readonly #http: JsonHttp;

  constructor(opts: IdentityClientOptions) {
    this.#http = new JsonHttp(opts);
  }

  /** POST /v1/attest: the first SVID, for a CSR whose key the workload keeps. */
  async attest(attestation: Attestation, csrPem: string, spiffeId?: string): Promise<X509SvidResponse> {
    const body = JSON.stringify({ attestation, csr: csrPem, ...(spiffeId !== undefined ? { spiffe_id: spiffeId } : {}) });
    const what = `POST ${ATTEST_PATH}`;
    return readX509SvidResponse(await this.#http.send({ method: 'POST', path: ATTEST_PATH, body }), what);
  }

  /** POST /v1/svid/x509: a new SVID for a new CSR, authenticated by the current SVID. */
  async renewX509(current: SvidCredential, csrPem: string): Promise<X509SvidResponse> {
    const body = JSON.stringify({ csr: csrPem });
    const raw = await this.#signedPost(current, RENEW_X509_PATH, body);
    return readX509SvidResponse(raw, `POST ${RENEW_X509_PATH}`);
  }

  /** POST /v1/svid/jwt: a JWT-SVID for the audiences, authenticated by the current X.509-SVID. */
  async fetchJwtSvid(current: SvidCredential, audience: string[]): Promise<JwtSvidResponse> {
    checkAudience(audience);
    const raw = await this.#signedPost(current, JWT_SVID_PATH, JSON.stringify({ audience }));
    return readJwtSvidResponse(raw, `POST ${JWT_SVID_PATH}`);
  }

  /** GET /v1/bundles: the server's own bundle and its federated bundles. */
  async bundles(): Promise<BundlesResponse> {
    return readBundlesResponse(await this.#http.send({ method: 'GET', path: BUNDLES_PATH }), `GET ${BUNDLES_PATH}`);
  }

  /** Closes pooled connections to the server. */
  async close(): Promise<void> {
    await this.#http.close();
  }

  async #signedPost(current: SvidCredential, path: string, body: string): Promise<unknown> {
    const pop = await signSvidPop(current, { htm: 'POST', htu: path, body });
    return this.#http.send({ method: 'POST', path, body, headers: { authorization: `${SVID_POP_SCHEME} ${pop}` } });
  }
}
