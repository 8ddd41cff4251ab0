/**
 * The consent pages in a real browser (Chromium through playwright-core): authorization request,
 * directory sign-in, consent (approve and deny), the redirect back to a real loopback client with
 * `code`, `state` and `iss`, the code exchanged at the token endpoint, CSRF and cross-origin refusal,
 * unregistered redirect URIs, the principal's own mandate list with revocation, and the pages'
 * security headers and `__Host-` cookies. Skipped (visibly) when Chromium is not installed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const CHROMIUM = '/usr/bin/chromium';
const RESOURCE = 'http://127.0.0.1:9/mcp/issues';
const AGENT = 'spiffe://example.org/agent/issue-helper';
const CLIENT_ID = 'demo-app';
const USER = { username: 'alice', display_name: 'Alice Example', password: 'correct horse battery staple 42' };

/** The loopback client: records every callback query and serves a page from another origin. */
interface Client {
  server: Server;
  origin: string;
  callbacks: URLSearchParams[];
  /** HTML served at /evil (a forged form aimed at Mandate). */
  evil: string;
}

async function startClient(): Promise<Client> {
  const client: Client = { server: createServer(), origin: '', callbacks: [], evil: '' };
  client.server.on('request', (req, res) => {
    const url = new URL(req.url ?? '/', client.origin);
    if (url.pathname === '/callback') {
      client.callbacks.push(url.searchParams);
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>callback</title><p id="done">back at the app</p>');
    } else if (url.pathname === '/evil') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(client.evil);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => client.server.listen(0, '127.0.0.1', resolve));
  client.origin = `http://127.0.0.1:${(client.server.address() as AddressInfo).port}`;
  return client;
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

const skip = existsSync(CHROMIUM) ? false : `chromium not installed: ${CHROMIUM} is missing (these tests never download a browser)`;

describe('consent pages in Chromium', { skip }, () => {
  let client: Client;
  let m: TestMandate;
  let browser: Browser;
  let redirectUri: string;

  before(async () => {
    client = await startClient();
    redirectUri = `${client.origin}/callback`;
    const yaml = [
      'trust_domain: example.org',
      'delegation:',
      '  scopes:',
      '    "issues:read": Read issues and their comments',
      '    "issues:comment": Comment on issues',
      '  resources:',
      `    - { uri: "${RESOURCE}", name: Issue tracker, scopes: ["issues:read", "issues:comment"] }`,
      '  clients:',
      `    - client_id: ${CLIENT_ID}`,
      '      name: Demo app',
      `      redirect_uris: ["${redirectUri}"]`,
      '      auth_method: none',
      '      grant_types: [authorization_code]',
      '',
    ].join('\n');
    m = await startTestMandate({ yaml });
    const created = await m.admin('POST', '/admin/v1/users', USER);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });

  /** A fresh browser profile (no cookies), failing fast rather than after playwright's 30 s default. */
  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext();
    context.setDefaultTimeout(10_000);
    return context;
  }

  after(async () => {
    await browser?.close();
    await m?.close();
    await new Promise<void>((resolve) => (client ? client.server.close(() => resolve()) : resolve()));
  });

  function authorizeUrl(opts: { state: string; challenge: string; redirect?: string; method?: string }): string {
    const q = new URLSearchParams({
      response_type: 'code', client_id: CLIENT_ID, redirect_uri: opts.redirect ?? redirectUri, state: opts.state,
      code_challenge: opts.challenge, code_challenge_method: opts.method ?? 'S256', resource: RESOURCE,
      scope: 'issues:read issues:comment', agent: AGENT,
    });
    return `${m.url}/oauth/authorize?${q}`;
  }

  async function mandatesOfAlice(): Promise<any[]> {
    const r = await m.admin('GET', `/admin/v1/mandates?agent=${encodeURIComponent(AGENT)}`);
    assert.equal(r.status, 200);
    return (r.body.mandates as any[]).filter((x) => x.principal.name === USER.display_name || x.principal.name === USER.username);
  }

  /** Opens the authorization request in a fresh context and signs in; returns the consent page. */
  async function toConsent(state: string, challenge: string): Promise<{ context: BrowserContext; page: Page; responses: Response[] }> {
    const context = await newContext();
    const page = await context.newPage();
    const responses: Response[] = [];
    page.on('response', (r) => { responses.push(r); });
    await page.goto(authorizeUrl({ state, challenge }));
    assert.match(new URL(page.url()).pathname, /^\/signin$/);
    await page.fill('input[name=username]', USER.username);
    await page.fill('input[name=password]', USER.password);
    await Promise.all([page.waitForURL(/\/consent\?request=/), page.click('button[type=submit]')]);
    return { context, page, responses };
  }

  async function callbackAfter(before: number): Promise<URLSearchParams> {
    for (let i = 0; i < 100 && client.callbacks.length <= before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(client.callbacks.length, before + 1, 'the client got exactly one callback');
    return client.callbacks[before] as URLSearchParams;
  }

  it('sign-in and approve: the page says what is granted; the code comes back with state and iss and is redeemed once', async () => {
    const { verifier, challenge } = pkce();
    const state = randomBytes(8).toString('hex');
    const { context, page } = await toConsent(state, challenge);
    try {
      assert.equal(await page.textContent('#agent'), AGENT);
      const scopes = await page.textContent('#scopes');
      assert.match(scopes ?? '', /Read issues and their comments/);
      assert.match(scopes ?? '', /Comment on issues/);
      assert.match(await page.textContent('#resources') ?? '', /Issue tracker/);
      assert.equal(await page.textContent('#duration'), '8 hours');
      assert.match(await page.textContent('body') ?? '', /Alice Example/);
      assert.match(await page.textContent('body') ?? '', /Demo app/);

      const seen = client.callbacks.length;
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.click('button[value=approve]')]);
      const cb = await callbackAfter(seen);
      assert.equal(cb.get('state'), state);
      assert.equal(cb.get('iss'), m.issuer);
      assert.equal(cb.get('error'), null);
      const code = cb.get('code');
      assert.ok(code && code.length >= 32);

      const list = await mandatesOfAlice();
      assert.equal(list.length, 1);
      const mandate = list[0];
      assert.equal(mandate.origin, 'consent');
      assert.equal(mandate.client_id, CLIENT_ID);
      assert.equal(mandate.status, 'active');
      assert.deepEqual([...mandate.scopes].sort(), ['issues:comment', 'issues:read']);
      assert.deepEqual(mandate.resources, [RESOURCE]);

      const redeem = () => fetch(`${m.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: CLIENT_ID }),
      });
      const first = await redeem();
      const token = await first.json() as any;
      assert.equal(first.status, 200, JSON.stringify(token.error ? token : {}));
      const claims = decodeJwt(token.access_token);
      assert.equal(claims.mandate, mandate.id);
      assert.equal(claims.iss, m.issuer);
      assert.equal(claims.aud, RESOURCE);
      assert.equal(claims.client_id, CLIENT_ID);

      const again = await redeem();
      assert.equal(again.status, 400);
      assert.equal((await again.json() as any).error, 'invalid_grant');
    } finally {
      await context.close();
    }
  });

  it('deny: the client gets access_denied with state and iss, and no mandate is made', async () => {
    const before = (await mandatesOfAlice()).length;
    const state = randomBytes(8).toString('hex');
    const { context, page } = await toConsent(state, pkce().challenge);
    try {
      const seen = client.callbacks.length;
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.click('button[value=deny]')]);
      const cb = await callbackAfter(seen);
      assert.equal(cb.get('error'), 'access_denied');
      assert.equal(cb.get('state'), state);
      assert.equal(cb.get('iss'), m.issuer);
      assert.equal(cb.get('code'), null);
      assert.equal((await mandatesOfAlice()).length, before);
    } finally {
      await context.close();
    }
  });

  it('CSRF: a tampered token and a forged cross-origin form are refused with 403 and make no mandate', async () => {
    const before = (await mandatesOfAlice()).length;
    const { context, page } = await toConsent('csrf', pkce().challenge);
    try {
      const csrf = await page.inputValue('input[name=csrf]');
      const request = await page.inputValue('input[name=request]');
      const seen = client.callbacks.length;

      // 1. The hidden field changed in the page itself.
      await page.evaluate(() => { (document.querySelector('input[name=csrf]') as HTMLInputElement).value = 'forged-token'; });
      const [tampered] = await Promise.all([page.waitForResponse((r) => r.url() === `${m.url}/consent` && r.request().method() === 'POST'), page.click('button[value=approve]')]);
      assert.equal(tampered.status(), 403);
      assert.match(await page.textContent('[role=alert]') ?? '', /CSRF/);

      // 2. Another origin (the client's port: same site for 127.0.0.1, so SameSite=Lax still sends the
      //    session cookie) posts a form with the right token: the Origin check alone must refuse it.
      client.evil = `<!doctype html><form id="f" method="post" action="${m.url}/consent">
<input type="hidden" name="request" value="${request}"><input type="hidden" name="csrf" value="${csrf}">
<input type="hidden" name="decision" value="approve"></form>`;
      await page.goto(`${client.origin}/evil`);
      const [forged] = await Promise.all([page.waitForResponse((r) => r.url() === `${m.url}/consent` && r.request().method() === 'POST'), page.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit())]);
      assert.equal(forged.status(), 403);
      assert.equal(await forged.request().headerValue('origin'), client.origin);
      assert.match(await page.textContent('[role=alert]') ?? '', /cross-site request/);

      assert.equal(client.callbacks.length, seen, 'no redirect reached the client');
      assert.equal((await mandatesOfAlice()).length, before);
    } finally {
      await context.close();
    }
  });

  it('an unregistered redirect URI gets an error page and no redirect; plain PKCE is sent back as invalid_request', async () => {
    const context = await newContext();
    const page = await context.newPage();
    try {
      const seen = client.callbacks.length;
      const evilRedirect = `${client.origin}/evil`;
      const response = await page.goto(authorizeUrl({ state: 's1', challenge: pkce().challenge, redirect: evilRedirect }));
      assert.equal(response?.status(), 400);
      assert.equal(new URL(page.url()).origin, m.url, 'the browser stayed on Mandate');
      assert.match(await page.textContent('h1') ?? '', /cannot be completed/);
      assert.match(await page.textContent('[role=alert]') ?? '', /redirect/i);
      assert.equal(client.callbacks.length, seen);

      const verifier = 'x'.repeat(43);
      await page.goto(authorizeUrl({ state: 's2', challenge: verifier, method: 'plain' }));
      assert.ok(page.url().startsWith(`${redirectUri}?`), page.url());
      const cb = await callbackAfter(seen);
      assert.equal(cb.get('error'), 'invalid_request');
      assert.match(cb.get('error_description') ?? '', /S256/);
      assert.equal(cb.get('state'), 's2');
      assert.equal(cb.get('iss'), m.issuer);
    } finally {
      await context.close();
    }
  });

  it('a wrong password shows an error; the principal lists their mandate and revokes it', async () => {
    const context = await newContext();
    const page = await context.newPage();
    try {
      await page.goto(authorizeUrl({ state: 'r', challenge: pkce().challenge }));
      await page.fill('input[name=username]', USER.username);
      await page.fill('input[name=password]', 'not the password');
      const [refused] = await Promise.all([page.waitForResponse((r) => r.url() === `${m.url}/signin` && r.request().method() === 'POST'), page.click('button[type=submit]')]);
      assert.equal(refused.status(), 401);
      assert.ok((await page.textContent('[role=alert]'))?.length, 'an error is shown');
      assert.match(new URL(page.url()).pathname, /^\/signin$/);

      await page.fill('input[name=username]', USER.username);
      await page.fill('input[name=password]', USER.password);
      await Promise.all([page.waitForURL(/\/consent\?request=/), page.click('button[type=submit]')]);
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.click('button[value=approve]')]);
      const granted = (await mandatesOfAlice()).filter((x) => x.status === 'active');
      assert.ok(granted.length >= 1);

      await page.goto(`${m.url}/account/mandates`);
      for (const g of granted) assert.equal(await page.locator(`li[data-mandate="${g.id}"]`).count(), 1, `mandate ${g.id} is listed`);
      const target = granted[granted.length - 1];
      await Promise.all([
        page.waitForURL(`${m.url}/account/mandates`),
        page.locator(`li[data-mandate="${target.id}"] button`, { hasText: 'Revoke' }).click(),
      ]);
      assert.match(await page.locator(`li[data-mandate="${target.id}"]`).textContent() ?? '', /\(revoked\)/);
      assert.equal(await page.locator(`li[data-mandate="${target.id}"] button`).count(), 0);
      const after = await m.admin('GET', `/admin/v1/mandates/${target.id}`);
      assert.equal(after.body.status, 'revoked');
    } finally {
      await context.close();
    }
  });

  it('pages forbid framing and set __Host- cookies that are Secure, HttpOnly and SameSite', async () => {
    const { context, page, responses } = await toConsent('hdr', pkce().challenge);
    try {
      const consent = responses.find((r) => r.url().startsWith(`${m.url}/consent?`) && r.status() === 200);
      assert.ok(consent, 'the consent page was served');
      const h = await consent.allHeaders();
      assert.match(h['content-security-policy'] ?? '', /frame-ancestors 'none'/);
      assert.equal(h['x-frame-options'], 'DENY');

      const cookieHeaders: string[] = [];
      for (const r of responses) {
        if (!r.url().startsWith(m.url)) continue;
        for (const { name, value } of await r.headersArray()) if (name.toLowerCase() === 'set-cookie') cookieHeaders.push(...value.split('\n'));
      }
      const names = cookieHeaders.map((c) => c.split('=')[0]);
      assert.ok(names.includes('__Host-mandate-csrf'), names.join());
      assert.ok(names.includes('__Host-mandate-session'), names.join());
      for (const c of cookieHeaders) {
        assert.match(c, /^__Host-/);
        assert.match(c, /;\s*Secure(;|$)/i);
        assert.match(c, /;\s*HttpOnly(;|$)/i);
        assert.match(c, /;\s*SameSite=(Lax|Strict)(;|$)/i);
        assert.match(c, /;\s*Path=\/(;|$)/);
        assert.doesNotMatch(c, /Domain=/i);
      }
      // And the browser accepted them on http://127.0.0.1 (a potentially trustworthy origin).
      const stored = await context.cookies(m.url);
      const session = stored.find((c) => c.name === '__Host-mandate-session');
      assert.ok(session, `Chromium stored the session cookie (has: ${stored.map((c) => c.name).join(', ')})`);
      assert.equal(session.secure, true);
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Lax');

      // Framing is refused by the browser, not just declared.
      client.evil = `<!doctype html><iframe id="f" src="${page.url()}"></iframe>`;
      const framer = await context.newPage();
      const blocked = new Promise<boolean>((resolve) => {
        framer.on('console', (msg) => { if (/frame-ancestors|X-Frame-Options|refused to display/i.test(msg.text())) resolve(true); });
        setTimeout(() => resolve(false), 3000);
      });
      await framer.goto(`${client.origin}/evil`);
      const frame = framer.frames().find((f) => f !== framer.mainFrame());
      const framedText = frame ? await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '') : '';
      assert.doesNotMatch(framedText, /Grant a mandate/);
      assert.equal(await blocked, true, 'Chromium reports the refused frame');
    } finally {
      await context.close();
    }
  });
});
