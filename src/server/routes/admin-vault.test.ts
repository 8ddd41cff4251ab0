import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startVaultApi, VAULT_API_ISSUER as ISSUER, type VaultApi } from './admin-vault.fixture.ts';

const SECRET = 'sk_live_adminSetValue0123456789';

let api: VaultApi;
let aliceId: string;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(api.url + path, {
    method,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

before(async () => {
  api = await startVaultApi();
  aliceId = api.aliceId;
});
after(() => api.close());

describe('admin vault routes', () => {
  it('sets a tool server\'s secret and answers without the value', async () => {
    const res = await call('PUT', '/admin/v1/vault/servers/tracker/secrets/api_key', { value: SECRET });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.body).sort(), ['created_at', 'fingerprint', 'name', 'owner_kind', 'server', 'updated_at']);
    assert.equal(res.body.owner_kind, 'server');
    assert.equal(res.body.server, 'tracker');
    assert.equal(res.body.name, 'api_key');
    assert.match(res.body.fingerprint, /^[0-9a-f]{8}$/);
    assert.equal(res.text.includes(SECRET), false);
    assert.equal(await api.vault.get({ kind: 'server', server: 'tracker' }, 'api_key'), SECRET);
    assert.equal(api.ran.at(-1), 'vault.secret.set');
  });

  it('sets a principal\'s secret by username or by subject, our issuer by default', async () => {
    const byName = await call('PUT', '/admin/v1/vault/principals/secrets/github_token', { username: 'Alice', value: 'alice-token-1' });
    assert.equal(byName.status, 200, byName.text);
    assert.deepEqual(byName.body.principal, { issuer: ISSUER, subject: aliceId });
    assert.equal(await api.vault.get({ kind: 'principal', issuer: ISSUER, subject: aliceId }, 'github_token'), 'alice-token-1');
    const bySubject = await call('PUT', '/admin/v1/vault/principals/secrets/github_token', { subject: aliceId, value: 'alice-token-2' });
    assert.equal(bySubject.status, 200, bySubject.text);
    assert.equal(bySubject.body.created_at, byName.body.created_at, 'the same secret, replaced');
    const external = await call('PUT', '/admin/v1/vault/principals/secrets/github_token', { issuer: 'https://login.example.com', subject: '00u1ab', value: 'sso-token' });
    assert.deepEqual(external.body.principal, { issuer: 'https://login.example.com', subject: '00u1ab' });
    assert.equal(await api.vault.get({ kind: 'principal', issuer: ISSUER, subject: aliceId }, 'github_token'), 'alice-token-2');
  });

  it('lists by server, by principal, by kind and all, never with values', async () => {
    const server = await call('GET', '/admin/v1/vault/servers/tracker/secrets');
    assert.deepEqual(server.body.secrets.map((s: any) => s.name), ['api_key']);
    const alice = await call('GET', '/admin/v1/vault/principals/secrets?username=alice');
    assert.deepEqual(alice.body.secrets.map((s: any) => [s.principal.subject, s.name]), [[aliceId, 'github_token']]);
    const external = await call('GET', `/admin/v1/vault/principals/secrets?issuer=${encodeURIComponent('https://login.example.com')}&subject=00u1ab`);
    assert.equal(external.body.secrets.length, 1);
    assert.equal((await call('GET', '/admin/v1/vault/secrets?kind=principal')).body.secrets.length, 2);
    const all = await call('GET', '/admin/v1/vault/secrets');
    assert.deepEqual(all.body.secrets.map((s: any) => s.owner_kind), ['principal', 'principal', 'server']);
    for (const text of [server.text, alice.text, all.text]) {
      for (const value of [SECRET, 'alice-token-2', 'sso-token']) assert.equal(text.includes(value), false);
    }
    const bad = await call('GET', '/admin/v1/vault/secrets?kind=robot');
    assert.equal(bad.status, 400);
  });

  it('deletes a server\'s and a principal\'s secret; an unknown one is 404', async () => {
    assert.equal((await call('DELETE', '/admin/v1/vault/servers/tracker/secrets/api_key')).status, 200);
    assert.equal(await api.vault.get({ kind: 'server', server: 'tracker' }, 'api_key'), undefined);
    const again = await call('DELETE', '/admin/v1/vault/servers/tracker/secrets/api_key');
    assert.equal(again.status, 404);
    assert.equal(again.body.error, 'ERR_NOT_FOUND');
    assert.equal((await call('DELETE', '/admin/v1/vault/principals/secrets/github_token?username=alice')).status, 200);
    assert.equal(await api.vault.get({ kind: 'principal', issuer: ISSUER, subject: aliceId }, 'github_token'), undefined);
    assert.equal(api.ran.at(-1), 'vault.secret.delete');
  });

  it('refuses malformed requests with a clear error that never quotes the value', async () => {
    const cases: Array<[string, string, unknown, number, RegExp, Record<string, string>?]> = [
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/k', `{"value":"${SECRET}"`, 400, /not valid JSON/],
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/k', `"${SECRET}"`, 400, /JSON object/],
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/k', { secret: SECRET }, 400, /value is required/],
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/k', { value: `${SECRET}\r\nX-Evil: 1` }, 400, /line break/],
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/k', SECRET, 415, /application\/json/, { 'content-type': 'text/plain' }],
      ['PUT', '/admin/v1/vault/servers/9lives/secrets/k', { value: SECRET }, 400, /tool server name/],
      ['PUT', '/admin/v1/vault/servers/tracker/secrets/..x', { value: SECRET }, 400, /secret name/],
      ['PUT', '/admin/v1/vault/principals/secrets/k', { value: SECRET }, 400, /name the principal/],
      ['PUT', '/admin/v1/vault/principals/secrets/k', { username: 'alice', subject: 'x', value: SECRET }, 400, /not both/],
      ['PUT', '/admin/v1/vault/principals/secrets/k', { username: 'nobody', value: SECRET }, 404, /no user nobody/],
      ['GET', '/admin/v1/vault/principals/secrets', undefined, 400, /name the principal/],
    ];
    for (const [method, path, body, status, message, headers] of cases) {
      const res = await call(method, path, body, headers);
      assert.equal(res.status, status, `${method} ${path}: ${res.text}`);
      assert.match(res.body.message, message);
      assert.equal(res.text.includes(SECRET), false, `${method} ${path} quotes the value: ${res.text}`);
    }
    assert.equal(await api.vault.get({ kind: 'server', server: 'tracker' }, 'k'), undefined);
  });
});
