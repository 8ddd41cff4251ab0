/**
 * Scenario: a principal keeps their own vault secrets on their account page. Alice signs in through
 * a real authorization request (directory password), then sets, replaces and deletes the secret the
 * tool servers take from her; the page never shows a value, and every POST needs her session, its
 * CSRF token and Mandate's own Origin.
 *
 * The account pages are served by the routes `mandate up` mounts (consentRoutes) with the vault
 * given, on a listener of their own beside the running Mandate and sharing its delegation authority
 * (sessions, directory, issuer); the browser believes it talks to Mandate's public URL.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Vault } from '../../src/gateway/vault.ts';
import { KeyEncryptionKey } from '../../src/identity/keys/kek.ts';
import { MemoryEventSink } from '../../src/observability/events.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Router } from '../../src/server/http/router.ts';
import { consentRoutes } from '../../src/server/routes/consent.ts';
import { CookieBrowser, hiddenField, passwordSignIn, pkcePair, toConsent } from '../support/delegation-flows.ts';
import { ISSUES } from '../support/delegation.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const WEB_APP = 'web-app';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const PASSWORD = 'correct horse battery staple 42';
const VALUE = 'ghp_selfServiceValue0123456789abcdef';

function yaml(): string {
  return [
    'trust_domain: example.org',
    'delegation:',
    '  scopes:',
    '    "issues:read": Read issues and their comments',
    '  resources:',
    `    - { uri: "${ISSUES}", name: Issue tracker, scopes: ["issues:read"] }`,
    '  clients:',
    `    - client_id: ${WEB_APP}`,
    '      name: Web app',
    `      redirect_uris: ["${REDIRECT_URI}"]`,
    '      auth_method: none',
    '      grant_types: [authorization_code]',
    '',
  ].join('\n');
}

describe('account pages: a principal\'s own vault secrets', () => {
  let m: TestMandate;
  let pages: Server;
  let pagesUrl: string;
  let vault: Vault;
  let aliceId: string;
  const events = new MemoryEventSink();
  let browser: CookieBrowser;

  const alice = () => ({ kind: 'principal' as const, issuer: m.issuer, subject: aliceId });
  const page = async () => {
    const reply = await browser.get('/account/secrets');
    assert.equal(reply.status, 200, reply.text.slice(0, 300));
    return reply;
  };

  before(async () => {
    m = await startTestMandate({ yaml: yaml() });
    const user = await m.admin('POST', '/admin/v1/users', { username: 'alice', display_name: 'Alice Example', password: PASSWORD });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    aliceId = user.body.id;
    vault = new Vault({ store: m.store, kek: KeyEncryptionKey.generate(), events });
    const router = new Router({ logger: createLogger({ level: 'silent' }), maxBodyBytes: 64 * 1024 });
    consentRoutes(router, m.delegation, { vault, names: [{ name: 'github_token', servers: ['github', 'gists'] }] });
    pages = createServer(router.handle);
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    pagesUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
    browser = new CookieBrowser(m.issuer, pagesUrl);
    await toConsent(browser, m.issuer, { clientId: WEB_APP, redirectUri: REDIRECT_URI, challenge: pkcePair().challenge, resource: ISSUES, agent: 'spiffe://example.org/agent/helper' }, passwordSignIn('alice', PASSWORD));
  });
  after(async () => {
    await new Promise<void>((resolve) => pages.close(() => resolve()));
    await m.close();
  });

  it('shows the secrets the tool servers take, not set yet, with forms carrying the CSRF token', async () => {
    const { text, headers } = await page();
    assert.match(text, /Signed in as <strong>Alice Example<\/strong>/);
    assert.match(text, /data-secret="github_token"><strong>github_token<\/strong> <span class="muted">for <code>github<\/code>, <code>gists<\/code> \(not set\)/);
    assert.match(text, /action="\/account\/secrets\/github_token"/);
    assert.match(text, /name="value" type="password"/);
    assert.ok(hiddenField(text, 'csrf').length > 20);
    assert.match(headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  });

  it('sets and replaces the secret; the page shows its fingerprint, never the value', async () => {
    const csrf = hiddenField((await page()).text, 'csrf');
    const set = await browser.post('/account/secrets/github_token', { csrf, value: VALUE });
    assert.equal(set.status, 303, set.text);
    assert.equal(set.location?.pathname, '/account/secrets');
    assert.equal(await vault.get(alice(), 'github_token'), VALUE);
    const shown = (await page()).text;
    assert.match(shown, new RegExp(`set, fingerprint <code>${vault.fingerprint(VALUE)}</code>, updated `));
    assert.equal(shown.includes(VALUE), false);
    assert.match(shown, /action="\/account\/secrets\/github_token\/delete"/);

    assert.equal((await browser.post('/account/secrets/github_token', { csrf, value: 'ghp_replaced' })).status, 303);
    assert.equal(await vault.get(alice(), 'github_token'), 'ghp_replaced');
    assert.deepEqual(events.events.filter((e) => e.type === 'vault.secret.set').map((e) => [e.actor, e.principal]), [
      [`principal:${aliceId}`, { issuer: m.issuer, subject: aliceId }],
      [`principal:${aliceId}`, { issuer: m.issuer, subject: aliceId }],
    ]);
    assert.equal(JSON.stringify(events.events).includes(VALUE), false);
  });

  it('refuses a POST without the CSRF token, from another origin, for another name, or with a bad value', async () => {
    const csrf = hiddenField((await page()).text, 'csrf');
    const cases: Array<[string, Record<string, string>, string | undefined, number, RegExp]> = [
      ['/account/secrets/github_token', { value: 'x-no-csrf' }, undefined, 403, /CSRF/],
      ['/account/secrets/github_token', { csrf: 'wrong', value: 'x-wrong-csrf' }, undefined, 403, /CSRF/],
      ['/account/secrets/github_token', { csrf, value: 'x-cross-site' }, 'https://evil.example', 403, /cross-site/],
      ['/account/secrets/aws_key', { csrf, value: 'x-unknown-name' }, undefined, 404, /no tool server here takes a secret named aws_key/],
      ['/account/secrets/github_token', { csrf, value: 'first line\r\nX-Injected: yes' }, undefined, 400, /line break/],
      ['/account/secrets/github_token', { csrf, value: '' }, undefined, 400, /empty/],
      ['/account/secrets/github_token/delete', { value: '' }, undefined, 403, /CSRF/],
    ];
    for (const [path, form, origin, status, message] of cases) {
      const reply = await browser.post(path, form, origin);
      assert.equal(reply.status, status, `${path} ${JSON.stringify(form)}: ${reply.text.slice(0, 300)}`);
      assert.match(reply.text, message);
      if (form.value) assert.equal(reply.text.includes(form.value), false, 'the error page does not quote the value');
    }
    assert.equal(await vault.get(alice(), 'github_token'), 'ghp_replaced', 'nothing was changed');
  });

  it('deletes the secret', async () => {
    const csrf = hiddenField((await page()).text, 'csrf');
    const reply = await browser.post('/account/secrets/github_token/delete', { csrf });
    assert.equal(reply.status, 303, reply.text);
    assert.equal(await vault.get(alice(), 'github_token'), undefined);
    assert.match((await page()).text, /\(not set\)/);
    const again = await browser.post('/account/secrets/github_token/delete', { csrf });
    assert.equal(again.status, 404);
  });

  it('needs a session: a browser that has not signed in is refused', async () => {
    const stranger = new CookieBrowser(m.issuer, pagesUrl);
    const view = await stranger.get('/account/secrets');
    assert.equal(view.status, 401);
    assert.match(view.text, /sign in/);
    const post = await stranger.post('/account/secrets/github_token', { csrf: 'x', value: 'x-stranger' });
    assert.equal(post.status, 401);
    assert.equal(await vault.get(alice(), 'github_token'), undefined);
  });
});
