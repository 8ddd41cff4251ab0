/**
 * A real OpenID Connect provider for tests: `oidc-provider` on 127.0.0.1 (http, or https with a given
 * certificate), with its development sign-in and consent pages, driven by `fetch` as a browser
 * would (cookies kept in a small jar). Any login name signs in; the account's claims come from
 * `accounts` or a default.
 *
 * @example
 *   const idp = await TestIdp.start();
 *   const { url, pending } = await providers.beginSignIn('idp', CALLBACK);
 *   const callback = await idp.signIn(url, { login: 'alice' });
 *   const principal = await providers.completeSignIn(pending, callback);
 *   await idp.close();
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { Agent, fetch as undiciFetch } from 'undici';

export const CLIENT_ID = 'mandate';
export const CLIENT_SECRET = 'test-client-secret';
export const PUBLIC_CLIENT_ID = 'mandate-public';
export const CALLBACK = 'http://127.0.0.1:8420/signin/idp/callback';
/** The resource for which the provider issues JWT access tokens (client credentials grant). */
export const API_RESOURCE = 'https://api.example.org';

/** A private signing JWK for the provider's `jwks`. */
export async function signingKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

export interface TestIdpOptions {
  /** 0 (default) for any free port; the port of a closed TestIdp to restart it in the same place. */
  port?: number;
  /** Private signing keys, the first signs; default one new RS256 key. */
  keys?: JWK[];
  /** Serve https with this certificate (for 127.0.0.1). */
  tls?: { key: string; cert: string };
  /** Claims per login name (merged over the defaults). */
  accounts?: Record<string, Record<string, unknown>>;
}

interface SignInOptions {
  login?: string;
  /** Abort at the sign-in page instead of signing in (the provider answers access_denied). */
  decline?: boolean;
}

export class TestIdp {
  readonly issuer: string;
  readonly port: number;
  readonly keys: JWK[];
  readonly #server: Server;
  readonly #fetch: typeof fetch;
  readonly #jar = new Map<string, string>();

  private constructor(server: Server, issuer: string, keys: JWK[], doFetch: typeof fetch) {
    this.#server = server;
    this.issuer = issuer;
    this.port = (server.address() as AddressInfo).port;
    this.keys = keys;
    this.#fetch = doFetch;
  }

  static async start(opts: TestIdpOptions = {}): Promise<TestIdp> {
    const keys = opts.keys ?? [await signingKey('idp-key-1')];
    const server = opts.tls === undefined ? createHttpServer() : createHttpsServer(opts.tls);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const issuer = `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
    const accounts = opts.accounts ?? {};
    const provider = new Provider(issuer, {
      clients: [
        { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [CALLBACK], grant_types: ['authorization_code', 'client_credentials'] },
        { client_id: PUBLIC_CLIENT_ID, token_endpoint_auth_method: 'none', redirect_uris: [CALLBACK] },
      ],
      jwks: { keys },
      claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'], groups: ['groups', 'roles'] },
      findAccount: (_ctx: unknown, sub: string) => ({
        accountId: sub,
        claims: () => ({ sub, name: 'Alice Example', email: `${sub}@example.org`, groups: ['eng', 'ops'], ...accounts[sub] }),
      }),
      features: {
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          getResourceServerInfo: (_ctx: unknown, indicator: string) => ({ scope: 'api:read', audience: indicator, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
        },
      },
      ttl: { AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, Grant: 3600, IdToken: 3600, Interaction: 600, Session: 3600 },
      cookies: { keys: ['test-cookie-key'] },
    });
    server.on('request', provider.callback());
    const dispatcher = opts.tls === undefined ? undefined : new Agent({ connect: { ca: opts.tls.cert } });
    const doFetch = dispatcher === undefined ? fetch : ((url: string, init: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
    return new TestIdp(server, issuer, keys, doFetch);
  }

  /**
   * Follows an authorization URL as a browser: signs in with the development login form, confirms
   * consent, and returns the redirect to the client's callback (with `code` and `state`, or `error`).
   */
  async signIn(authorizationUrl: string, opts: SignInOptions = {}): Promise<URL> {
    this.#jar.clear(); // a fresh browser: no session left from an earlier sign-in
    let response = await this.#get(new URL(authorizationUrl));
    for (let step = 0; step < 10; step++) {
      if (response.status === 302 || response.status === 303) {
        const target = new URL(response.headers.get('location')!, response.url || this.issuer);
        if (target.origin !== new URL(this.issuer).origin) return target;
        response = await this.#get(target);
        continue;
      }
      if (response.status !== 200) throw new Error(`the provider answered HTTP ${response.status}: ${await response.text()}`);
      const page = await response.text();
      const action = new URL(/<form[^>]* action="([^"]+)"/.exec(page)![1]!, this.issuer);
      if (page.includes('name="login"')) {
        if (opts.decline === true) {
          response = await this.#get(new URL(`${action.pathname}/abort`, this.issuer));
          continue;
        }
        response = await this.#post(action, { prompt: 'login', login: opts.login ?? 'alice', password: 'anything' });
      } else {
        response = await this.#post(action, { prompt: 'consent' });
      }
    }
    throw new Error('the sign-in did not reach the callback in 10 steps');
  }

  /** Exchanges the code of a callback directly at the token endpoint (as the confidential client). */
  async exchangeCode(callback: URL, codeVerifier: string): Promise<{ id_token: string; access_token: string }> {
    return this.#token({ grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: CALLBACK, code_verifier: codeVerifier });
  }

  /** A JWT access token (`typ: at+jwt`) for `resource`, from the client credentials grant. */
  async accessToken(resource = API_RESOURCE): Promise<string> {
    return (await this.#token({ grant_type: 'client_credentials', resource, scope: 'api:read' })).access_token;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #token(params: Record<string, string>): Promise<{ id_token: string; access_token: string }> {
    const response = await this.#fetch(`${this.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
    if (response.status !== 200) throw new Error(`token endpoint answered HTTP ${response.status}: ${await response.text()}`);
    return (await response.json()) as { id_token: string; access_token: string };
  }

  #get(url: URL): Promise<Response> {
    return this.#request(url, { method: 'GET' });
  }

  #post(url: URL, form: Record<string, string>): Promise<Response> {
    return this.#request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  }

  async #request(url: URL, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.#jar.size > 0) headers.cookie = [...this.#jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await this.#fetch(url.href, { ...init, headers, redirect: 'manual' });
    for (const cookie of response.headers.getSetCookie()) {
      const pair = cookie.split(';', 1)[0]!;
      const eq = pair.indexOf('=');
      this.#jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return response;
  }
}
