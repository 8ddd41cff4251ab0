/**
 * Helpers for the delegation attack table (test/scenarios/delegation-attacks.test.ts): a protected
 * resource that runs Mandate's AccessTokenVerifier on real HTTP requests, raw HTTP calls that keep
 * what a refusal looked like, token forgery (foreign keys, `alg: none`, HS256 keyed with the public
 * JWK, wrong `typ`), the browser consent flow that yields a real authorization code, and the checks
 * every refusal must pass (an OAuth error body a person can read, nothing internal in it).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactSign, type JWK } from 'jose';
import { OAuthError } from '../../src/delegation/oauth/errors.ts';
import type { AccessTokenVerifier } from '../../src/delegation/tokens/verify.ts';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  mandate: 'urn:mandate:params:oauth:token-type:mandate',
} as const;
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** One HTTP request of the table. `body` is sent as is; the caller sets its content type. */
export interface AttackRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface AttackReply {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: Record<string, unknown> | undefined;
}

/** Sends one request without following redirects, and keeps status, headers and the raw body. */
export async function send(r: AttackRequest): Promise<AttackReply> {
  const res = await fetch(r.url, { method: r.method ?? 'POST', headers: r.headers, body: r.body, redirect: 'manual' });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** `application/x-www-form-urlencoded` with repeats for list values. */
export function form(params: Record<string, string | string[] | undefined>): string {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const value of Array.isArray(v) ? v : [v]) body.append(k, value);
  }
  return body.toString();
}

/** A form POST to a Mandate OAuth endpoint. */
export function formPost(url: string, params: Record<string, string | string[] | undefined>, headers: Record<string, string> = {}): AttackRequest {
  return { url, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form(params) };
}

export function basicAuth(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/**
 * A protected resource on 127.0.0.1: every request is checked by the verifier, with the audience
 * chosen by path (`/mcp` and `/other`), the URL as the client addressed it, and the request's own
 * method, Authorization and DPoP headers. Refusals are answered as RFC 6750 / RFC 9449 ask: the
 * OAuthError's status, its WWW-Authenticate header and `{error, error_description}`.
 */
export interface ProtectedResource {
  url: string;
  /** The resource indicators it answers for, by path. */
  resources: { mcp: string; other: string };
  close(): Promise<void>;
}

export async function startProtectedResource(verifier: () => AccessTokenVerifier): Promise<ProtectedResource> {
  let base = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const audience = path === '/mcp' ? `${base}/mcp` : path === '/other' ? `${base}/other` : undefined;
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    if (audience === undefined) {
      reply(404, { error: 'not_found' });
      return;
    }
    req.resume();
    req.on('end', () => {
      verifier().verify({ authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method ?? 'GET', url: `${base}${req.url ?? '/'}`, audience }).then(
        (token) => reply(200, { sub: token.principal.subject, actor: token.actor, chain: token.chain, scopes: token.scopes, binding: token.binding }),
        (err: unknown) => {
          if (err instanceof OAuthError) reply(err.status, err.toJSON(), err.headers);
          // Anything else is a verifier defect: the row fails on the status and says what was thrown.
          else reply(500, { error: 'server_error', error_description: `the verifier threw ${(err as Error)?.name ?? typeof err} instead of an OAuth error` });
        },
      );
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    resources: { mcp: `${base}/mcp`, other: `${base}/other` },
    close: () => new Promise<void>((done) => {
      server.close(() => done());
      server.closeAllConnections();
    }),
  };
}

/** Signs `payload` with `key` under exactly the protected header given (kid, typ and alg as the attacker wants). */
export async function signJws(header: { alg: string; kid?: string; typ?: string; [k: string]: unknown }, payload: Record<string, unknown>, key: KeyObject | Uint8Array): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader(header).sign(key);
}

/** An unsecured JWT (RFC 7519 §6): header `alg: none` and an empty signature. */
export function unsecuredJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ ...header, alg: 'none' })}.${part(payload)}.`;
}

/** The HS256 key-confusion forgery: the public JWK (as published) used as the HMAC secret. */
export function publicJwkAsSecret(jwk: JWK): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(jwk));
}

/** The unverified payload of a compact JWS. */
export function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Every JWT-shaped string in `text` (to make sure none of the tokens sent comes back or is logged). */
export function jwtsIn(text: string): string[] {
  return text.match(/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g) ?? [];
}

/** What must never be in an error reply: stack frames, source paths, exception class names. */
const LEAKS: Array<[RegExp, string]> = [
  [/\n\s+at \S/, 'a stack trace'],
  [/\bat (?:async )?\S+ \((?:file:|\/)/, 'a stack frame'],
  [/(?:file:\/\/|\/work\/|\/home\/|\/tmp\/|\/usr\/|node_modules|\bsrc\/)/, 'an internal path'],
  [/\.(?:ts|js|mjs):\d+/, 'a source location'],
  [/\b(?:Type|Reference|Syntax|Range)Error\b/, 'an exception class'],
];

/** Asserts that a refusal's text carries nothing internal and echoes none of the tokens that were sent. */
export function assertNoLeak(text: string, sentTokens: readonly string[], what: string): void {
  for (const [pattern, name] of LEAKS) assert.doesNotMatch(text, pattern, `${what}: the reply contains ${name}: ${text.slice(0, 300)}`);
  for (const token of sentTokens) assert.ok(!text.includes(token), `${what}: the reply echoes a token that was sent`);
}

/** Asserts an error description a person can act on: a sentence, not a code or a dump. */
export function assertReadable(description: unknown, what: string): asserts description is string {
  assert.equal(typeof description, 'string', `${what}: error_description is missing`);
  const d = description as string;
  assert.ok(d.length >= 12 && d.length <= 600, `${what}: error_description has ${d.length} characters: ${d}`);
  assert.match(d, /[a-z]{2,} [a-z]{2,}/i, `${what}: error_description is not words: ${d}`);
  assert.doesNotMatch(d, /[\x00-\x1f\x7f]/, `${what}: error_description contains control characters`);
}

/** PKCE (RFC 7636 §4.1-4.2): a fresh verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function setCookies(headers: Headers): Map<string, string> {
  const jar = new Map<string, string>();
  for (const line of headers.getSetCookie()) {
    const pair = line.split(';')[0] ?? '';
    const eq = pair.indexOf('=');
    if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return jar;
}

function cookieHeader(jar: Map<string, string>): string {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}

function hiddenField(html: string, name: string): string {
  const found = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  assert.ok(found, `the page has no hidden field ${name}`);
  return (found[1] as string).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/**
 * A real authorization code: the browser flow a person goes through (authorization request, password
 * sign-in, consent approved), driven over HTTP with the session and CSRF cookies and our own Origin.
 * Returns the code from the redirect back to the client.
 */
export async function authorizationCodeFromConsent(base: string, o: {
  clientId: string; redirectUri: string; challenge: string; resource: string; scope: string; agent: string; username: string; password: string;
}): Promise<string> {
  const origin = new URL(base).origin;
  const authorize = new URL(`${base}/oauth/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: o.clientId, redirect_uri: o.redirectUri, code_challenge: o.challenge,
    code_challenge_method: 'S256', resource: o.resource, scope: o.scope, agent: o.agent, state: 'st-1',
  })) authorize.searchParams.set(k, v);
  const start = await send({ url: authorize.href, method: 'GET' });
  assert.equal(start.status, 303, `authorization request: ${start.status} ${start.text.slice(0, 200)}`);
  const signInUrl = new URL(start.headers.get('location') ?? '', base);
  const request = signInUrl.searchParams.get('request') ?? '';

  const signInPage = await send({ url: signInUrl.href, method: 'GET' });
  assert.equal(signInPage.status, 200, `sign-in page: ${signInPage.status}`);
  const jar = setCookies(signInPage.headers);
  const signIn = await send(formPost(`${base}/signin`, { request, csrf: hiddenField(signInPage.text, 'csrf'), username: o.username, password: o.password }, { cookie: cookieHeader(jar), origin }));
  assert.equal(signIn.status, 303, `sign-in: ${signIn.status} ${signIn.text.slice(0, 200)}`);
  for (const [k, v] of setCookies(signIn.headers)) jar.set(k, v);

  const consentUrl = new URL(signIn.headers.get('location') ?? '', base);
  const consentPage = await send({ url: consentUrl.href, method: 'GET', headers: { cookie: cookieHeader(jar) } });
  assert.equal(consentPage.status, 200, `consent page: ${consentPage.status}`);
  const approved = await send(formPost(`${base}/consent`, { request, csrf: hiddenField(consentPage.text, 'csrf'), decision: 'approve' }, { cookie: cookieHeader(jar), origin }));
  assert.equal(approved.status, 303, `consent: ${approved.status} ${approved.text.slice(0, 200)}`);
  const back = new URL(approved.headers.get('location') ?? '');
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in the redirect back: ${back.search}`);
  return code;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.max(0, ms)));
}
