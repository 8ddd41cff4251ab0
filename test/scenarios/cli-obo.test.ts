/**
 * `mandate obo`: an agent's token exchange from its SVID files, admin introspection, the token
 * refused once the mandate is revoked, and the consent URL / code redemption helpers — the README's
 * walk-through, run as child processes against a real server.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ISSUES, delegationYaml } from '../support/delegation.ts';
import { cliFor } from '../support/cli.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/cli-bot';
const REDIRECT = 'http://127.0.0.1:8400/callback';
/** The shared delegation config plus a public authorization-code client. */
const YAML = `${delegationYaml().trimEnd()}\n    - client_id: web-app\n      redirect_uris: ["${REDIRECT}"]\n`;

describe('mandate obo: exchange, introspect, revoke', () => {
  let m: TestMandate;
  const svidDir = join(mkdtempSync(join(tmpdir(), 'mandate-obo-')), 'svid');
  const { run, ok } = cliFor(() => m);
  let mandateId: string;

  before(async () => {
    m = await startTestMandate({ yaml: YAML });
    const entry = await m.admin('POST', '/admin/v1/entries', { spiffe_id: AGENT });
    const join = await m.admin('POST', '/admin/v1/join-tokens', { entry_id: entry.body.id });
    await ok(['svid', 'fetch', '--join-token', join.body.token, '--out', svidDir]);
    const user = await m.admin('POST', '/admin/v1/users', { username: 'carol', password: 'a long enough password' });
    const mandate = await m.admin('POST', '/admin/v1/mandates', { username: 'carol', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES], ttl: '1h' });
    assert.equal(mandate.status, 201, JSON.stringify(mandate.body));
    assert.equal(mandate.body.principal.subject, user.body.id);
    mandateId = mandate.body.id;
  });
  after(() => m.close());

  it('exchanges the mandate with the agent\'s SVID files and prints a DPoP-bound OBO token', async () => {
    const res = await run(['obo', 'exchange', '--svid-dir', svidDir, '--mandate', mandateId, '--resource', ISSUES]);
    assert.equal(res.status, 0, res.stderr);
    const token = res.stdout.trim();
    assert.match(token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.match(res.stderr, new RegExp(`DPoP token for ${ISSUES}, scope "issues:read"`));
    const info = JSON.parse(await ok(['obo', 'introspect', token, '--json']));
    assert.equal(info.active, true);
    assert.equal(info.act.sub, AGENT);
    assert.equal(info.mandate, mandateId);
    assert.equal(info.aud, ISSUES);
    assert.equal(typeof info.cnf.jkt, 'string');

    await ok(['mandates', 'revoke', mandateId]);
    assert.deepEqual(JSON.parse(await ok(['obo', 'introspect', token, '--json'])), { active: false });
    const refused = await run(['obo', 'exchange', '--svid-dir', svidDir, '--mandate', mandateId, '--resource', ISSUES]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /token exchange refused: invalid_request: mandate mdt_\S+ is revoked/);
    assert.equal(refused.stdout, '');
  });

  it('refuses bad invocations with a clear message', async () => {
    const both = await run(['obo', 'exchange', '--svid-dir', svidDir, '--mandate', 'x', '--subject-token', 'y', '--resource', ISSUES]);
    assert.equal(both.status, 1);
    assert.match(both.stderr, /give one of --mandate ID or --subject-token TOKEN/);
    const noFiles = await run(['obo', 'exchange', '--svid-dir', join(svidDir, 'missing'), '--mandate', mandateId, '--resource', ISSUES]);
    assert.notEqual(noFiles.status, 0);
    assert.match(noFiles.stderr, /svid\.pem|ENOENT|no such file/i);
    const badCode = await run(['obo', 'redeem', '--client', 'web-app', '--redirect-uri', REDIRECT, '--code', 'nope', '--code-verifier', 'v'.repeat(43)]);
    assert.equal(badCode.status, 1);
    assert.match(badCode.stderr, /code redemption refused: invalid_grant/);
  });

  it('prints a consent URL with a PKCE S256 challenge of the printed verifier', async () => {
    const out = JSON.parse(await ok(['obo', 'authorize-url', '--json', '--client', 'web-app', '--redirect-uri', REDIRECT, '--agent', AGENT, '--resource', ISSUES, '--scope', 'issues:read']));
    const url = new URL(out.url);
    assert.equal(url.origin + url.pathname, `${m.url}/oauth/authorize`);
    assert.equal(url.searchParams.get('code_challenge'), createHash('sha256').update(out.code_verifier).digest('base64url'));
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('agent'), AGENT);
    assert.deepEqual(url.searchParams.getAll('resource'), [ISSUES]);
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 303, 'the authorization endpoint accepts it and sends the person to sign in');
    assert.match(res.headers.get('location') ?? '', /^\/signin\?request=/);
  });
});
