/**
 * Helpers for the delegation flow scenarios (test/scenarios/delegation-flows.test.ts): the page
 * browser (src/cli/page-browser.ts), the authorization request
 * walked to the consent page with password or external-provider sign-in, the consent approved, and a
 * client's metadata document served from a local HTTP server.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hiddenField, PageBrowser as CookieBrowser, type BrowserReply } from '../../src/cli/page-browser.ts';
import type { TestIdp } from '../../src/delegation/principals/oidc-provider.fixture.ts';

/** The browser the demo agent uses, under the name these scenarios know it by. */
export { CookieBrowser, hiddenField, type BrowserReply };

/** PKCE (RFC 7636): a fresh verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** An authorization request (RFC 6749 §4.1.1 with PKCE, RFC 8707 `resource` and Mandate's `agent`). */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  challenge: string;
  resource: string;
  agent: string;
  scope?: string;
  state?: string;
}

export function authorizationUrl(issuer: string, r: AuthorizationRequest): URL {
  const url = new URL(`${issuer}/oauth/authorize`);
  const params: Record<string, string | undefined> = {
    response_type: 'code', client_id: r.clientId, redirect_uri: r.redirectUri, code_challenge: r.challenge,
    code_challenge_method: 'S256', resource: r.resource, agent: r.agent, scope: r.scope, state: r.state,
  };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url;
}

/**
 * Signs in at Mandate's sign-in page (`signInUrl` is where the authorization request sent the
 * browser) and returns the reply that ends the sign-in (a redirect to the consent page).
 */
export type SignIn = (browser: CookieBrowser, signInUrl: URL) => Promise<BrowserReply>;

/** Directory sign-in: the sign-in page's form with its CSRF token. */
export function passwordSignIn(username: string, password: string): SignIn {
  return async (browser, signInUrl) => {
    const page = await browser.get(signInUrl);
    assert.equal(page.status, 200, `sign-in page: ${page.status} ${page.text.slice(0, 200)}`);
    return browser.post('/signin', { request: signInUrl.searchParams.get('request') ?? '', csrf: hiddenField(page.text, 'csrf'), username, password });
  };
}

/** Where an external provider's sign-in came back: the callback as the provider redirected to it. */
export interface ProviderSignInResult {
  reply: BrowserReply;
  callback: URL;
}

/**
 * Sign-in at an external OpenID provider: the link on Mandate's sign-in page, the provider's own
 * login and consent (TestIdp), and the provider's redirect back to Mandate's callback.
 */
export async function providerSignIn(browser: CookieBrowser, signInUrl: URL, idp: TestIdp, providerId: string, login: string): Promise<ProviderSignInResult> {
  const page = await browser.get(signInUrl);
  assert.equal(page.status, 200, `sign-in page: ${page.status}`);
  const request = signInUrl.searchParams.get('request') ?? '';
  const link = `/signin/${providerId}?request=${encodeURIComponent(request)}`;
  assert.ok(page.text.includes(`href="${link.replace(/&/g, '&amp;')}"`), `the sign-in page links to ${link}`);
  const toProvider = await browser.get(link);
  assert.equal(toProvider.status, 303, `sign-in with ${providerId}: ${toProvider.status} ${toProvider.text.slice(0, 200)}`);
  assert.equal(toProvider.location?.origin, new URL(idp.issuer).origin, 'the browser is sent to the provider');
  const callback = await idp.signIn(toProvider.location!.href, { login });
  assert.equal(callback.origin, browser.publicOrigin, `the provider sends the browser back to Mandate: ${callback.origin}${callback.pathname}`);
  return { reply: await browser.get(callback), callback };
}

/** The consent page reached: its request id, its HTML and CSRF token. */
export interface ConsentPage {
  request: string;
  html: string;
  csrf: string;
}

/**
 * Starts the authorization request and follows it to the consent page, signing in with `signIn`
 * when Mandate asks for it (not at all when the browser's session is still good).
 */
export async function toConsent(browser: CookieBrowser, issuer: string, r: AuthorizationRequest, signIn: SignIn): Promise<ConsentPage> {
  const start = await browser.get(authorizationUrl(issuer, r));
  assert.equal(start.status, 303, `authorization request: ${start.status} ${start.text.slice(0, 300)}`);
  let next = start.location!;
  assert.equal(next.origin, browser.publicOrigin, `the authorization request went elsewhere: ${next.href}`);
  if (next.pathname === '/signin') {
    const signedIn = await signIn(browser, next);
    assert.equal(signedIn.status, 303, `sign-in: ${signedIn.status} ${signedIn.text.slice(0, 300)}`);
    next = signedIn.location!;
  }
  assert.equal(next.pathname, '/consent', `expected the consent page, got ${next.pathname}`);
  const page = await browser.get(next);
  assert.equal(page.status, 200, `consent page: ${page.status} ${page.text.slice(0, 300)}`);
  return { request: hiddenField(page.text, 'request'), html: page.text, csrf: hiddenField(page.text, 'csrf') };
}

/** Approves the consent page and returns the redirect back to the client. */
export async function approve(browser: CookieBrowser, consent: ConsentPage): Promise<URL> {
  const reply = await browser.post('/consent', { request: consent.request, csrf: consent.csrf, decision: 'approve' });
  assert.equal(reply.status, 303, `consent: ${reply.status} ${reply.text.slice(0, 300)}`);
  return reply.location!;
}

/** The code from a redirect back to the client, after checking `state` and `iss` (RFC 9207). */
export function codeFrom(back: URL, expected: { redirectUri: string; state?: string; issuer: string }): string {
  assert.equal(`${back.origin}${back.pathname}`, expected.redirectUri, 'back at the registered redirect URI');
  assert.equal(back.searchParams.get('error'), null, `the client got an error: ${back.search}`);
  assert.equal(back.searchParams.get('state'), expected.state ?? null);
  assert.equal(back.searchParams.get('iss'), expected.issuer);
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in ${back.search}`);
  return code;
}

/** A client's metadata document (and anything else) served on 127.0.0.1, counting the fetches. */
export interface DocumentServer {
  origin: string;
  /** Requests seen per path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** Serves each path's body with its content type; other paths get 404. */
export async function serveDocuments(documents: (origin: string) => Record<string, { type: string; body: string }>): Promise<DocumentServer> {
  const hits = new Map<string, number>();
  let served: Record<string, { type: string; body: string }> = {};
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const doc = served[path];
    if (doc === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': doc.type, 'content-length': Buffer.byteLength(doc.body) }).end(doc.body);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  served = documents(origin);
  return {
    origin,
    hits,
    close: () => new Promise<void>((done) => {
      server.close(() => done());
      server.closeAllConnections();
    }),
  };
}

/**
 * A real ID token of the provider for `login`, issued to Mandate's client there (`CLIENT_ID`): the
 * provider's authorization code flow with PKCE, walked by TestIdp, and its token endpoint.
 */
export async function providerIdToken(idp: TestIdp, clientId: string, redirectUri: string, login: string): Promise<string> {
  const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as { authorization_endpoint: string };
  const { verifier, challenge } = pkcePair();
  const url = new URL(discovery.authorization_endpoint);
  for (const [k, v] of Object.entries({
    client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid profile',
    code_challenge: challenge, code_challenge_method: 'S256', state: randomBytes(8).toString('hex'), nonce: randomBytes(8).toString('hex'),
  })) url.searchParams.set(k, v);
  const callback = await idp.signIn(url.href, { login });
  assert.ok(callback.searchParams.has('code'), `the provider answered ${callback.search}`);
  return (await idp.exchangeCode(callback, verifier)).id_token;
}
