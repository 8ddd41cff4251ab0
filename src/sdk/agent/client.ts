/**
 * MandateAgent: what an agent runs to act for a person. It exchanges the person's token (or an
 * admin-issued mandate id, or a parent agent's token) at the Mandate authorization server for a short
 * On-Behalf-Of token for one resource (RFC 8693); it keeps that token per resource and grant and
 * exchanges again before it runs out. Two ways to bind the token to the agent:
 *
 *   binding 'dpop' (default)  the agent proves who it is with its JWT-SVID and the token is bound to
 *                             its DPoP key (RFC 9449); every request to the resource carries a proof.
 *   binding 'mtls'            the agent calls Mandate's mutual-TLS token endpoint with its X.509-SVID
 *                             as client certificate (RFC 8705 tls_client_auth) and gets a Bearer token
 *                             bound to that certificate (`cnf.x5t#S256`); requests to the resource
 *                             go over TLS connections presenting the same SVID (tlsDispatcher()).
 *
 * @example
 *   const agent = new MandateAgent({ issuer: 'https://mandate.example.org', svids: workloadApiSource('/run/mandate/agent.sock') });
 *   const grant = { subjectToken: mandateId, subjectTokenType: SUBJECT_TOKEN_TYPES.mandate };
 *   const headers = await agent.authorize({ method: 'POST', url: 'https://tools.example/mcp' }, 'https://tools.example/mcp', grant);
 *   await fetch('https://tools.example/mcp', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
 *
 * @example
 *   const agent = new MandateAgent({ issuer, svids, binding: 'mtls', tlsCa: readFileSync('/etc/mandate/ca.pem', 'utf8') });
 *   const headers = await agent.authorize({ method: 'POST', url }, url, grant); // { Authorization: 'Bearer ...' }
 *   await undiciFetch(url, { method: 'POST', headers, body, dispatcher: await agent.tlsDispatcher() });
 */
import { createHash, X509Certificate } from 'node:crypto';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { DpopSigner } from './dpop.ts';
import { AgentAuthError, INVALID_RESPONSE } from './errors.ts';
import type { SvidSource, X509SvidPem } from './svid-source.ts';
import { SvidDispatcher } from './tls.ts';

/** RFC 8693 §3 token type identifiers, and Mandate's own for an admin-issued mandate id. */
export const SUBJECT_TOKEN_TYPES = {
  /** An access token of this authorization server: a person's token, or a parent agent's OBO token. */
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  /** A JWT access token of a trusted identity provider. */
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  /** An OpenID Connect ID token of a trusted identity provider. */
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  /** The id of a mandate an administrator granted (`mdt_...`). */
  mandate: 'urn:mandate:params:oauth:token-type:mandate',
} as const;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const METADATA_PATH = '/.well-known/oauth-authorization-server';

const DEFAULT_TIMEOUT_MS = 10_000;
/** Largest metadata or token reply read. */
const MAX_REPLY_BYTES = 1024 * 1024;
/** A token is exchanged again once this share of its lifetime has passed ... */
const REFRESH_AT_SHARE = 0.8;
/** ... or when fewer than this many milliseconds are left, whichever comes first. */
const REFRESH_MARGIN_MS = 30_000;
/** Cached tokens kept at most; the oldest goes first. */
const MAX_CACHED_TOKENS = 256;

/** On whose behalf the agent asks: the subject of the exchange. */
export interface Grant {
  subjectToken: string;
  /** One of SUBJECT_TOKEN_TYPES. */
  subjectTokenType: string;
  /** Scopes to ask for; default everything the mandate grants for the resource. */
  scope?: string[];
  /** The mandate to use when the person has given this agent several. */
  mandateId?: string;
}

export interface ExchangeRequest extends Grant {
  /** The resource (RFC 8707) the token is for, e.g. `https://tools.example/mcp`. */
  resource: string;
}

/** What an agent's tokens are bound to: its DPoP key (RFC 9449) or its X.509-SVID (RFC 8705). */
export type TokenBinding = 'dpop' | 'mtls';

export interface AgentToken {
  accessToken: string;
  /**
   * `DPoP`: the token only works with a proof of this agent's DPoP key. `Bearer` (binding 'mtls'):
   * sent as a Bearer token, it only works over a TLS connection presenting this agent's X.509-SVID.
   */
  tokenType: 'DPoP' | 'Bearer';
  /** When the token stops working, by this agent's clock (measured from when it was asked for). */
  expiresAt: Date;
  /** The scopes the token carries. */
  scope: string[];
  resource: string;
}

/** RFC 8414 authorization server metadata, the fields the agent relies on. */
export interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  dpop_signing_alg_values_supported?: string[];
  /** RFC 8705 §5: the endpoints to use with mutual TLS. */
  mtls_endpoint_aliases?: { token_endpoint?: string; [endpoint: string]: unknown };
  [field: string]: unknown;
}

/** The request a resource will receive, for its DPoP proof. */
export interface AuthorizeRequest {
  method: string;
  url: string;
  /** The resource server's latest `DPoP-Nonce`, when it asked for one. */
  nonce?: string;
}

/**
 * Headers to add to a request to the resource: `Authorization: DPoP ...` with a `DPoP` proof, or for
 * binding 'mtls' just `Authorization: Bearer ...`.
 */
export interface AuthorizationHeaders {
  Authorization: string;
  DPoP?: string;
}

export interface MandateAgentOptions {
  /** The authorization server's issuer identifier, exactly as its metadata states it. */
  issuer: string;
  /** Where the agent's SVIDs come from: JWT-SVIDs for binding 'dpop'; the X.509-SVID (`x509()`) for 'mtls' and tlsDispatcher(). */
  svids: SvidSource;
  /** What tokens are bound to; default 'dpop'. */
  binding?: TokenBinding;
  /** The DPoP key tokens are bound to; default a fresh ES256 key for this instance (binding 'dpop'). */
  dpop?: DpopSigner;
  /**
   * PEM trust anchors for the server certificates of mutual-TLS connections (Mandate's mTLS listener,
   * and resource servers reached through tlsDispatcher()); default the system roots.
   */
  tlsCa?: string;
  /**
   * Used for metadata requests and DPoP token requests (e.g. one with a private CA); default the
   * global fetch. Mutual-TLS token requests go through tlsDispatcher().
   */
  fetch?: typeof fetch;
  /** Per request to the authorization server. Default 10 s. */
  timeoutMs?: number;
  /** The clock token lifetimes are judged by (tests move it). */
  now?: () => Date;
}

interface CachedToken {
  token: AgentToken;
  refreshAt: number;
}

function issuerUrl(issuer: string): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new TypeError(`issuer ${JSON.stringify(issuer)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`issuer must be an https URL, got ${url.protocol}`);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') throw new TypeError('issuer must not have a query, fragment or user information (RFC 8414 §2)');
  return url;
}

/** RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path. */
function metadataUrl(issuer: URL): string {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '');
  return `${issuer.origin}${METADATA_PATH}${path}`;
}

function invalidReply(description: string, status?: number): AgentAuthError {
  return new AgentAuthError(INVALID_RESPONSE, description, status === undefined ? {} : { status });
}

/** The body of `res` as JSON, refusing replies over MAX_REPLY_BYTES; undefined when it is not JSON. */
async function readJson(res: Response): Promise<unknown> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_REPLY_BYTES) {
    await res.body?.cancel();
    throw invalidReply(`the reply declares ${declared} bytes, more than ${MAX_REPLY_BYTES}`, res.status);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) {
        await res.body.cancel().catch(() => undefined);
        throw invalidReply(`the reply is larger than ${MAX_REPLY_BYTES} bytes`, res.status);
      }
      chunks.push(chunk);
    }
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An OAuth error reply as AgentAuthError; anything else that is not 2xx as invalid_response. */
function replyError(status: number, doc: unknown, what: string): AgentAuthError {
  if (isObject(doc) && typeof doc.error === 'string' && doc.error !== '') {
    const description = typeof doc.error_description === 'string' ? doc.error_description : undefined;
    return new AgentAuthError(doc.error, description, { status });
  }
  return invalidReply(`${what} answered HTTP ${status} without an OAuth error`, status);
}

function grantKey(resource: string, grant: Grant): string {
  const scope = grant.scope === undefined ? null : [...new Set(grant.scope)].sort();
  // Hashed, so the cache keys hold no copy of the subject token.
  return createHash('sha256').update(JSON.stringify([resource, grant.subjectTokenType, grant.subjectToken, scope, grant.mandateId ?? null])).digest('base64url');
}

function checkRequest(r: ExchangeRequest): void {
  if (typeof r.subjectToken !== 'string' || r.subjectToken === '') throw new TypeError('subjectToken must be a non-empty string');
  if (typeof r.subjectTokenType !== 'string' || r.subjectTokenType === '') throw new TypeError('subjectTokenType must be a token type URI (see SUBJECT_TOKEN_TYPES)');
  if (typeof r.resource !== 'string' || r.resource === '') throw new TypeError('resource must be the URI of the resource the token is for');
  if (r.scope !== undefined && (!Array.isArray(r.scope) || r.scope.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)))) {
    throw new TypeError('scope must be a list of scope tokens (RFC 6749 §3.3)');
  }
}

/** The URI SAN of an X.509-SVID's leaf: the SPIFFE ID. */
function spiffeIdOf(svid: X509SvidPem): string {
  const leaf = new X509Certificate(svid.certPem);
  const uris = (leaf.subjectAltName ?? '').split(', ').filter((san) => san.startsWith('URI:')).map((san) => san.slice(4));
  const [id] = uris;
  if (uris.length !== 1 || id === undefined || !id.startsWith('spiffe://')) throw new TypeError('the X.509-SVID does not name exactly one SPIFFE ID in its URI SAN');
  return id;
}

/**
 * An agent's client of the Mandate authorization server. One instance holds one DPoP key (binding
 * 'dpop') or presents one X.509-SVID (binding 'mtls'); tokens it obtains are bound to that key or
 * certificate and useless to anyone else.
 */
export class MandateAgent {
  readonly issuer: string;
  readonly binding: TokenBinding;
  readonly #issuerUrl: URL;
  readonly #svids: SvidSource;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #now: () => Date;
  #signer: Promise<DpopSigner> | undefined;
  #metadata: Promise<AuthorizationServerMetadata> | undefined;
  /** The token endpoint's latest DPoP-Nonce. */
  #nonce: string | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inFlight = new Map<string, Promise<AgentToken>>();
  readonly #tlsCa: string | undefined;
  /** The dispatcher presenting the X.509-SVID, made at the first read of the SVID. */
  #tls: SvidDispatcher | undefined;
  /** The running read of the X.509-SVID, shared by concurrent callers. */
  #tlsRead: Promise<SvidDispatcher> | undefined;
  #spiffeId: string | undefined;

  constructor(opts: MandateAgentOptions) {
    this.#issuerUrl = issuerUrl(opts.issuer);
    this.issuer = opts.issuer;
    this.binding = opts.binding ?? 'dpop';
    if (this.binding !== 'dpop' && this.binding !== 'mtls') throw new TypeError(`binding must be 'dpop' or 'mtls', got ${JSON.stringify(opts.binding)}`);
    if (this.binding === 'mtls' && typeof opts.svids.x509 !== 'function') throw new TypeError("binding 'mtls' needs an SvidSource with the X.509-SVID (x509())");
    if (opts.tlsCa !== undefined && (typeof opts.tlsCa !== 'string' || !opts.tlsCa.includes('-----BEGIN CERTIFICATE-----'))) throw new TypeError('tlsCa must be PEM certificates');
    this.#tlsCa = opts.tlsCa;
    this.#svids = opts.svids;
    this.#fetch = opts.fetch ?? fetch;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) throw new TypeError(`timeoutMs must be a positive number, got ${opts.timeoutMs}`);
    this.#now = opts.now ?? (() => new Date());
    this.#signer = opts.dpop && Promise.resolve(opts.dpop);
  }

  /** The DPoP key tokens of this agent are bound to (`cnf.jkt` = `jkt`) when its binding is 'dpop'. */
  dpopSigner(): Promise<DpopSigner> {
    // Made on first use: an mTLS agent never needs one.
    this.#signer ??= DpopSigner.generate();
    return this.#signer;
  }

  /**
   * An undici Dispatcher whose TLS connections present this agent's X.509-SVID and trust `tlsCa`:
   * what requests to a resource server carry a certificate-bound token over. The same object for the
   * life of the agent; the SVID is read again at every mutual-TLS token exchange, and when it has
   * rotated, new requests go over new connections with the new certificate.
   *
   * @example
   *   const dispatcher = await agent.tlsDispatcher();
   *   const tlsFetch = (url, init) => undiciFetch(url, { ...init, dispatcher });
   * @throws TypeError when the SvidSource has no X.509-SVID.
   */
  async tlsDispatcher(): Promise<Dispatcher> {
    return this.#tls ?? this.#readSvid();
  }

  /**
   * The agent's SPIFFE ID as its X.509-SVID names it (its client_id at Mandate for mutual TLS).
   *
   * @throws TypeError when the SvidSource has no X.509-SVID.
   */
  async spiffeId(): Promise<string> {
    if (this.#spiffeId === undefined) await this.#readSvid();
    return this.#spiffeId as string;
  }

  /** Reads the X.509-SVID and makes (or updates) the TLS dispatcher with it; one read at a time. */
  #readSvid(): Promise<SvidDispatcher> {
    this.#tlsRead ??= (async () => {
      if (typeof this.#svids.x509 !== 'function') throw new TypeError('this agent\'s SvidSource has no X.509-SVID (x509())');
      const svid = await this.#svids.x509();
      const spiffeId = spiffeIdOf(svid);
      if (this.#tls) this.#tls.update(svid);
      else this.#tls = new SvidDispatcher(svid, this.#tlsCa);
      this.#spiffeId = spiffeId;
      return this.#tls;
    })().finally(() => {
      this.#tlsRead = undefined;
    });
    return this.#tlsRead;
  }

  /** Closes the TLS connections of tlsDispatcher(), once their requests are done. */
  async close(): Promise<void> {
    await this.#tlsRead?.catch(() => undefined);
    await this.#tls?.close();
  }

  /**
   * The authorization server's RFC 8414 metadata, fetched once. Its `issuer` must be this agent's
   * issuer exactly (RFC 8414 §3.3) and it must name a token endpoint.
   *
   * @throws AgentAuthError invalid_response when the metadata is missing or does not fit.
   */
  discover(): Promise<AuthorizationServerMetadata> {
    if (!this.#metadata) {
      this.#metadata = this.#fetchMetadata();
      // A failure is not remembered: the next call asks again.
      this.#metadata.catch(() => {
        this.#metadata = undefined;
      });
    }
    return this.#metadata;
  }

  async #fetchMetadata(): Promise<AuthorizationServerMetadata> {
    const url = metadataUrl(this.#issuerUrl);
    const res = await this.#fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.#timeoutMs) });
    const doc = await readJson(res);
    if (res.status !== 200) throw invalidReply(`authorization server metadata at ${url} answered HTTP ${res.status}`, res.status);
    if (!isObject(doc)) throw invalidReply(`authorization server metadata at ${url} is not a JSON object`, res.status);
    if (doc.issuer !== this.issuer) {
      throw invalidReply(`authorization server metadata at ${url} names issuer ${JSON.stringify(doc.issuer)}, not ${JSON.stringify(this.issuer)} (RFC 8414 §3.3)`);
    }
    if (typeof doc.token_endpoint !== 'string') throw invalidReply(`authorization server metadata at ${url} names no token_endpoint`);
    let endpoint: URL;
    try {
      endpoint = new URL(doc.token_endpoint);
    } catch {
      throw invalidReply(`token_endpoint ${JSON.stringify(doc.token_endpoint)} is not a URL`);
    }
    if (endpoint.protocol !== this.#issuerUrl.protocol) throw invalidReply(`token_endpoint ${doc.token_endpoint} does not use ${this.#issuerUrl.protocol}`);
    const algs = doc.dpop_signing_alg_values_supported;
    if (algs !== undefined && (!Array.isArray(algs) || algs.some((a) => typeof a !== 'string'))) throw invalidReply('dpop_signing_alg_values_supported is not a list of strings');
    const aliases = doc.mtls_endpoint_aliases;
    if (aliases !== undefined && (!isObject(aliases) || (aliases.token_endpoint !== undefined && typeof aliases.token_endpoint !== 'string'))) throw invalidReply('mtls_endpoint_aliases is not an object of endpoint URLs');
    return doc as AuthorizationServerMetadata;
  }

  /**
   * One token exchange (RFC 8693): the subject token in, an OBO token for `resource` out.
   *
   * Binding 'dpop': the agent authenticates with a JWT-SVID for the issuer (as `client_assertion`,
   * and as `actor_token`: the agent is the actor) and sends a DPoP proof, so the token is bound to
   * its key. When the server asks for a DPoP nonce (`use_dpop_nonce`), the request is sent once more
   * with it.
   *
   * Binding 'mtls': the request goes to the metadata's `mtls_endpoint_aliases.token_endpoint` over a
   * TLS connection presenting the X.509-SVID (read again for every exchange), which authenticates
   * the agent (tls_client_auth) and makes it the actor; no DPoP proof, no actor token. The token is
   * a Bearer token bound to the certificate.
   *
   * @throws AgentAuthError with the server's `error` and `error_description` when it refuses;
   *   `invalid_response` when the reply is not a usable token response.
   * @throws TypeError when the request is malformed.
   */
  async exchange(request: ExchangeRequest): Promise<AgentToken> {
    checkRequest(request);
    if (this.binding === 'mtls') return this.#exchangeOverMtls(request);
    const metadata = await this.discover();
    const signer = await this.dpopSigner();
    const algs = metadata.dpop_signing_alg_values_supported;
    if (algs !== undefined && !algs.includes(signer.alg)) {
      throw new AgentAuthError('invalid_dpop_proof', `the authorization server accepts DPoP proofs signed with ${algs.join(', ')}, not ${signer.alg}`);
    }
    const svid = await this.#svids.jwtSvid(this.issuer);
    const form = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: request.subjectToken,
      subject_token_type: request.subjectTokenType,
      actor_token: svid,
      actor_token_type: JWT_TOKEN_TYPE,
      client_assertion_type: JWT_BEARER_ASSERTION,
      client_assertion: svid,
      resource: request.resource,
    });
    if (request.scope !== undefined) form.set('scope', request.scope.join(' '));
    if (request.mandateId !== undefined) form.set('mandate_id', request.mandateId);

    const askedAt = this.#now().getTime();
    let res = await this.#postToken(metadata.token_endpoint, form, signer);
    let doc = await readJson(res);
    if (res.status === 400 && isObject(doc) && doc.error === 'use_dpop_nonce' && res.headers.has('dpop-nonce')) {
      res = await this.#postToken(metadata.token_endpoint, form, signer);
      doc = await readJson(res);
    }
    if (res.status !== 200) throw replyError(res.status, doc, 'the token endpoint');
    return this.#readToken(doc, request, askedAt);
  }

  async #exchangeOverMtls(request: ExchangeRequest): Promise<AgentToken> {
    const metadata = await this.discover();
    const endpoint = metadata.mtls_endpoint_aliases?.token_endpoint;
    if (endpoint === undefined) throw invalidReply('the authorization server metadata names no mtls_endpoint_aliases.token_endpoint (RFC 8705 §5): it has no mutual-TLS token endpoint');
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw invalidReply(`mtls_endpoint_aliases.token_endpoint ${JSON.stringify(endpoint)} is not a URL`);
    }
    if (url.protocol !== 'https:') throw invalidReply(`mtls_endpoint_aliases.token_endpoint ${endpoint} is not an https URL`);
    const dispatcher = await this.#readSvid();
    const form = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: request.subjectToken,
      subject_token_type: request.subjectTokenType,
      resource: request.resource,
    });
    if (request.scope !== undefined) form.set('scope', request.scope.join(' '));
    if (request.mandateId !== undefined) form.set('mandate_id', request.mandateId);
    const askedAt = this.#now().getTime();
    const res = await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      signal: AbortSignal.timeout(this.#timeoutMs),
      dispatcher,
    });
    const doc = await readJson(res as unknown as Response);
    if (res.status !== 200) throw replyError(res.status, doc, 'the mutual-TLS token endpoint');
    return this.#readToken(doc, request, askedAt);
  }

  async #postToken(endpoint: string, form: URLSearchParams, signer: DpopSigner): Promise<Response> {
    const proof = await signer.proof('POST', endpoint, this.#nonce === undefined ? {} : { nonce: this.#nonce });
    const res = await this.#fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', dpop: proof },
      body: form.toString(),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    const nonce = res.headers.get('dpop-nonce');
    if (nonce !== null && nonce !== '') this.#nonce = nonce;
    return res;
  }

  #readToken(doc: unknown, request: ExchangeRequest, askedAt: number): AgentToken {
    if (!isObject(doc)) throw invalidReply('the token response is not a JSON object', 200);
    const { access_token: accessToken, token_type: tokenType, expires_in: expiresIn, scope, issued_token_type: issuedType } = doc;
    if (typeof accessToken !== 'string' || accessToken === '') throw invalidReply('the token response has no access_token', 200);
    const expected = this.binding === 'mtls' ? 'Bearer' : 'DPoP';
    if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== expected.toLowerCase()) {
      const asked = this.binding === 'mtls' ? 'a certificate-bound Bearer token' : 'a DPoP-bound token';
      throw invalidReply(`the token response has token_type ${JSON.stringify(tokenType)}, but ${asked} was asked for`, 200);
    }
    if (issuedType !== undefined && issuedType !== SUBJECT_TOKEN_TYPES.accessToken) throw invalidReply(`the token response issued a ${JSON.stringify(issuedType)}, not an access token`, 200);
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) throw invalidReply('the token response has no positive expires_in', 200);
    if (scope !== undefined && typeof scope !== 'string') throw invalidReply('the token response scope is not a string', 200);
    return {
      accessToken,
      tokenType: expected,
      expiresAt: new Date(askedAt + expiresIn * 1000),
      scope: scope === undefined ? [...(request.scope ?? [])] : scope.split(' ').filter((s) => s !== ''),
      resource: request.resource,
    };
  }

  /**
   * The token for `resource` under `grant`: the one obtained earlier while less than 80% of its
   * lifetime has passed and at least 30 s are left, else a new exchange. Concurrent callers share
   * one exchange.
   *
   * @throws as exchange().
   */
  async tokenFor(resource: string, grant: Grant): Promise<AgentToken> {
    const key = grantKey(resource, grant);
    const cached = this.#tokens.get(key);
    if (cached && this.#now().getTime() < cached.refreshAt) return cached.token;
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const exchange = this.#exchangeAndKeep(key, { ...grant, resource });
    this.#inFlight.set(key, exchange);
    try {
      return await exchange;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  /**
   * Forgets the cached token for `resource` under `grant`, so the next call exchanges again — for
   * when a resource server refused it (revoked mandate, rotated keys) before its expiry.
   */
  forget(resource: string, grant: Grant): void {
    this.#tokens.delete(grantKey(resource, grant));
  }

  async #exchangeAndKeep(key: string, request: ExchangeRequest): Promise<AgentToken> {
    const askedAt = this.#now().getTime();
    const token = await this.exchange(request);
    const expiresAt = token.expiresAt.getTime();
    const refreshAt = Math.min(askedAt + (expiresAt - askedAt) * REFRESH_AT_SHARE, expiresAt - REFRESH_MARGIN_MS);
    const now = this.#now().getTime();
    for (const [k, entry] of this.#tokens) {
      if (entry.token.expiresAt.getTime() <= now) this.#tokens.delete(k);
    }
    this.#tokens.delete(key);
    if (this.#tokens.size >= MAX_CACHED_TOKENS) this.#tokens.delete(this.#tokens.keys().next().value as string);
    this.#tokens.set(key, { token, refreshAt });
    return token;
  }

  /**
   * Headers for one request to the resource: `Authorization: DPoP <token>` with the current token
   * for `resource` (see tokenFor) and a fresh `DPoP` proof of this request carrying the token's hash
   * (`ath`) and the resource server's nonce when given. Binding 'mtls': just
   * `Authorization: Bearer <token>`; send the request through tlsDispatcher().
   *
   * @example
   *   const headers = await agent.authorize({ method: 'GET', url: 'https://tools.example/mcp/items?id=1' }, 'https://tools.example/mcp', grant);
   */
  async authorize(request: AuthorizeRequest, resource: string, grant: Grant): Promise<AuthorizationHeaders> {
    const token = await this.tokenFor(resource, grant);
    if (this.binding === 'mtls') return { Authorization: `Bearer ${token.accessToken}` };
    const signer = await this.dpopSigner();
    const proof = await signer.proof(request.method, request.url, { accessToken: token.accessToken, ...(request.nonce !== undefined && { nonce: request.nonce }) });
    return { Authorization: `DPoP ${token.accessToken}`, DPoP: proof };
  }
}
