/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, as the MCP
 * authorization spec requires): a `client_id` that is an https URL with a path names the document
 * describing the client, and the authority fetches it when the client first shows up.
 *
 * The URL is chosen by whoever calls the authorization endpoint, so the fetch is built to be useless
 * for server-side request forgery and cheap to abuse at worst:
 * - https only; http only when `allowPrivateAddresses` is on and the host is loopback (tests, labs);
 * - the client_id must be a normalised URL with a path, without query, fragment or user name;
 * - every address of the host must be public (private, loopback, link-local and unique-local ones
 *   only with `allowPrivateAddresses`), checked inside the connection so it cannot be rebound
 *   (egress.ts); refusals do not reveal what a name resolved to;
 * - redirects are not followed; one deadline covers connect, headers and body; the body is read up
 *   to `maxBytes` and abandoned past it; only `application/json` is accepted.
 * The document must repeat the URL exactly as its `client_id`, name the client and its redirect
 * URIs, and authenticate with `none` (the default here) or `private_key_jwt` with a `jwks_uri`; it
 * must not carry `client_secret*` members, since a document anyone can read cannot hold a secret.
 *
 * Accepted documents are kept for `cacheTtl` seconds, or less when the response's Cache-Control
 * says so (`max-age`, `no-store`, `no-cache`), in a cache of bounded size; concurrent lookups of
 * one URL share a fetch. Failures are not cached.
 *
 * @example
 *   const documents = new MetadataDocumentClients(config.delegation.clientIdMetadataDocuments);
 *   const client = await documents.resolve('https://app.example.com/oauth/client.json');
 */
import { isIP } from 'node:net';
import { request, type Dispatcher } from 'undici';
import { isLoopbackHost } from '../../config/address.ts';
import type { DelegationConfig } from '../../config/types.ts';
import { isMandateError, messageOf } from '../../errors.ts';
import { recordCacheLookup } from '../../observability/metrics.ts';
import { clientSpanAttributes, injectTraceContext, SpanKind, withSpan } from '../../observability/tracing.ts';
import { isOAuthError, OAuthError } from '../oauth/errors.ts';
import type { OAuthClient } from './client.ts';
import { isJsonObject, parseClientMetadata, type MetadataRules } from './client-metadata.ts';
import { addressRefusal, guardedAgent, type Resolver } from './egress.ts';

export type MetadataDocumentConfig = Omit<DelegationConfig['clientIdMetadataDocuments'], 'enabled'>;

export interface MetadataDocumentOptions {
  /** Trust anchors (PEM) replacing the default CA list, for tests and labs. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Replaces the system resolver (egress.ts). */
  resolve?: Resolver;
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
  /** Most documents kept at once (default 1000); the least recently used goes first. */
  maxEntries?: number;
}

/** Longest client_id URL fetched. */
export const MAX_CLIENT_ID_URL_LENGTH = 2000;

/** True for a client_id shaped like a URL (`http://` or `https://`), which only a metadata document can describe. */
export function isUrlClientId(clientId: string): boolean {
  return /^https?:\/\//i.test(clientId);
}

/**
 * Checks a client_id before anything is fetched. IP-literal hosts are checked here against the
 * address rules; names are checked when they are resolved.
 *
 * @returns undefined when it may be fetched, else a sentence saying why not.
 */
export function checkClientIdUrl(clientId: string, allowPrivateAddresses: boolean): string | undefined {
  if (clientId.length > MAX_CLIENT_ID_URL_LENGTH) return `must not be longer than ${MAX_CLIENT_ID_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    return 'must be an absolute https URL';
  }
  const loopbackHttp = url.protocol === 'http:' && allowPrivateAddresses && isLoopbackHost(url.hostname);
  if (url.protocol !== 'https:' && !loopbackHttp) return 'must be an https URL';
  if (url.username !== '' || url.password !== '') return 'must not contain a user name or password';
  if (clientId.includes('#')) return 'must not contain a fragment';
  if (clientId.includes('?')) return 'must not contain a query';
  if (url.pathname === '/') return 'must contain a path, e.g. https://app.example.com/oauth/client.json';
  if (url.href !== clientId) return `must be written in normalised form (${url.href.slice(0, 200)}): no dot segments, lower-case scheme and host, no default port`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const refusal = isIP(host) !== 0 ? addressRefusal(host, allowPrivateAddresses) : undefined;
  if (refusal !== undefined) return `must not point at ${refusal}`;
  return undefined;
}

const RULES_BASE: Omit<MetadataRules, 'jwksUriHttpOnLoopback'> = {
  authMethods: ['none', 'private_key_jwt'],
  defaultAuthMethod: 'none',
  nameRequired: true,
};

const REDIRECT = new Set([301, 302, 303, 307, 308]);

interface Entry {
  client: OAuthClient;
  expiresAt: number;
}

function invalid(clientId: string, why: string, cause?: unknown): OAuthError {
  return new OAuthError('invalid_client', `client metadata document ${clientId.slice(0, 200)}: ${why}`, cause === undefined ? {} : { cause });
}

/** Drops a response body; undici reports a destroyed, unread body as an 'error' event, expected here. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Seconds the response may be reused for, capped at `max`. */
function freshness(cacheControl: string | undefined, max: number): number {
  if (cacheControl === undefined) return max;
  let ttl = max;
  for (const directive of cacheControl.toLowerCase().split(',')) {
    const [name, value] = directive.trim().split('=', 2) as [string, string | undefined];
    if (name === 'no-store' || name === 'no-cache') return 0;
    if (name === 'max-age' && value !== undefined && /^[0-9]+$/.test(value)) ttl = Math.min(ttl, Number(value));
  }
  return ttl;
}

/** The network reason, as an error code only: details of what was reached stay out of replies. */
function networkReason(err: unknown): string {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (isMandateError(e, 'ERR_FORBIDDEN')) return `refused: ${e.message}`;
  }
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return `cannot be fetched (${code})`;
  }
  return 'cannot be fetched';
}

export class MetadataDocumentClients {
  readonly #config: MetadataDocumentConfig;
  readonly #agent: Dispatcher;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #rules: MetadataRules;
  readonly #cache = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<OAuthClient>>();

  constructor(config: MetadataDocumentConfig, opts: MetadataDocumentOptions = {}) {
    this.#config = config;
    this.#now = opts.now ?? Date.now;
    this.#maxEntries = opts.maxEntries ?? 1000;
    this.#rules = { ...RULES_BASE, jwksUriHttpOnLoopback: config.allowPrivateAddresses };
    this.#agent = guardedAgent({
      allowPrivateAddresses: config.allowPrivateAddresses,
      connectTimeout: config.timeout,
      ...(opts.ca !== undefined && { ca: opts.ca }),
      ...(opts.resolve !== undefined && { resolve: opts.resolve }),
    });
  }

  /**
   * The client the document at `clientId` describes, from the cache or fetched now.
   *
   * @throws OAuthError invalid_client with a description of what is wrong
   */
  resolve(clientId: string): Promise<OAuthClient> {
    const cached = this.#cache.get(clientId);
    if (cached !== undefined) {
      this.#cache.delete(clientId);
      if (cached.expiresAt > this.#now()) {
        this.#cache.set(clientId, cached); // most recently used last
        recordCacheLookup('client_metadata', true);
        return Promise.resolve(cached.client);
      }
    }
    recordCacheLookup('client_metadata', false);
    const pending = this.#inFlight.get(clientId);
    if (pending !== undefined) return pending;
    const fetching = this.#load(clientId).finally(() => this.#inFlight.delete(clientId));
    this.#inFlight.set(clientId, fetching);
    return fetching;
  }

  /** Closes the connections kept for reuse. */
  async close(): Promise<void> {
    await this.#agent.close();
  }

  async #load(clientId: string): Promise<OAuthClient> {
    const why = checkClientIdUrl(clientId, this.#config.allowPrivateAddresses);
    if (why !== undefined) throw invalid(clientId, `the client_id ${why}`);
    const { doc, ttl } = await withSpan('client metadata fetch', clientSpanAttributes('GET', new URL(clientId)), () => this.#fetch(clientId), { kind: SpanKind.CLIENT });
    const client = this.#accept(clientId, doc);
    if (ttl > 0) {
      while (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(clientId, { client, expiresAt: this.#now() + ttl * 1000 });
    }
    return client;
  }

  async #fetch(clientId: string): Promise<{ doc: unknown; ttl: number }> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#config.timeout);
    timer.unref();
    try {
      const res = await request(clientId, {
        method: 'GET',
        dispatcher: this.#agent,
        signal: controller.signal,
        headers: injectTraceContext({ accept: 'application/json' }),
      });
      if (REDIRECT.has(res.statusCode)) {
        discard(res.body);
        throw invalid(clientId, `answered with a redirect (HTTP ${res.statusCode}); redirects are not followed`);
      }
      if (res.statusCode !== 200) {
        discard(res.body);
        throw invalid(clientId, `answered HTTP ${res.statusCode}`);
      }
      const type = header(res.headers, 'content-type')?.split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        discard(res.body);
        throw invalid(clientId, `has content type ${JSON.stringify(type ?? '(none)').slice(0, 100)}, not application/json`);
      }
      const declared = Number(header(res.headers, 'content-length'));
      if (declared > this.#config.maxBytes) {
        discard(res.body);
        throw invalid(clientId, `is larger than ${this.#config.maxBytes} bytes`);
      }
      const text = await this.#readLimited(res.body, clientId);
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw invalid(clientId, 'is not valid JSON', err);
      }
      return { doc, ttl: freshness(header(res.headers, 'cache-control'), this.#config.cacheTtl) };
    } catch (err) {
      if (timedOut) throw invalid(clientId, `did not arrive within ${this.#config.timeout} ms`, err);
      if (isOAuthError(err)) throw err;
      throw invalid(clientId, networkReason(err), err);
    } finally {
      clearTimeout(timer);
    }
  }

  async #readLimited(body: Dispatcher.ResponseData['body'], clientId: string): Promise<string> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > this.#config.maxBytes) {
        discard(body);
        throw invalid(clientId, `is larger than ${this.#config.maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, total));
    } catch (err) {
      throw invalid(clientId, 'is not UTF-8 text', err);
    }
  }

  #accept(clientId: string, doc: unknown): OAuthClient {
    if (!isJsonObject(doc)) throw invalid(clientId, 'is not a JSON object');
    if (doc.client_id !== clientId) throw invalid(clientId, 'its client_id member does not equal the URL it was fetched from');
    const secret = Object.keys(doc).find((k) => k.startsWith('client_secret'));
    if (secret !== undefined) throw invalid(clientId, `must not contain ${secret}: a public document cannot hold a client secret`);
    let metadata;
    try {
      metadata = parseClientMetadata(doc, this.#rules);
    } catch (err) {
      throw invalid(clientId, messageOf(err), err);
    }
    return {
      clientId,
      name: metadata.clientName ?? clientId, // client_name is required here, so always present
      redirectUris: metadata.redirectUris,
      authMethod: metadata.authMethod,
      grantTypes: metadata.grantTypes,
      ...(metadata.jwksUri !== undefined && { jwksUri: metadata.jwksUri }),
      origin: 'metadata-document',
    };
  }
}
