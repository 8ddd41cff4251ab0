import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { OAuthClientRecord, Store } from '../../store/store.ts';
import { isOAuthError, type OAuthErrorCode } from '../oauth/errors.ts';
import { clientFromRecord, hashClientSecret, registerClient, type RegistrationDeps } from './registration.ts';

let dir: string;
let store: Store;
let deps: RegistrationDeps;
const NOW = new Date('2026-03-01T12:00:00.000Z');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mandate-registration-'));
  store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  deps = { store, dynamicRegistration: { enabled: true }, now: () => NOW };
});

after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const WEB = 'https://app.example.com/callback';

/** The real store, with a record of what was written through it. */
function countingStore(): { created: OAuthClientRecord[]; counting: Pick<Store, 'createOAuthClient'> } {
  const created: OAuthClientRecord[] = [];
  return { created, counting: { createOAuthClient: (c) => (created.push(c), store.createOAuthClient(c)) } };
}
const TX = 'urn:ietf:params:oauth:grant-type:token-exchange';

test('register: defaults (RFC 7591 §2) give a confidential client with a secret stored only as its hash', async () => {
  const reply = await registerClient({ redirect_uris: [WEB] }, deps);
  assert.match(reply.client_id, /^[A-Za-z0-9_-]{24}$/);
  assert.match(reply.client_secret ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual({ ...reply, client_id: 'x', client_secret: 'y' }, {
    client_id: 'x',
    client_id_issued_at: Math.floor(NOW.getTime() / 1000),
    client_secret: 'y',
    client_secret_expires_at: 0,
    redirect_uris: [WEB],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const record = await store.getOAuthClient(reply.client_id);
  assert.ok(record !== null);
  assert.equal(record.secretHash, createHash('sha256').update(reply.client_secret!).digest('hex'));
  assert.equal(record.secretHash, hashClientSecret(reply.client_secret!));
  assert.doesNotMatch(JSON.stringify(record), new RegExp(reply.client_secret!), 'the secret itself is not stored');
  assert.deepEqual(record.createdAt, NOW);
});

test('register: a public client (none) gets no secret; every registration gets a new client_id', async () => {
  const body = { redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', client_name: 'CLI' };
  const a = await registerClient(body, deps);
  const b = await registerClient(body, deps);
  assert.notEqual(a.client_id, b.client_id);
  assert.equal(a.client_secret, undefined);
  assert.equal('client_secret_expires_at' in a, false);
  assert.equal((await store.getOAuthClient(a.client_id))?.secretHash, null);
  assert.equal(a.client_name, 'CLI');
});

test('register: unknown members are dropped, from the reply and the store; duplicate redirect URIs collapse', async () => {
  const reply = await registerClient({
    redirect_uris: [WEB, WEB],
    client_name: 'App',
    client_secret: 'chosen-by-client',
    logo_uri: 'https://tracker.example/l.png',
    scope: 'admin',
    software_statement: 'eyJ...',
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_post',
  }, deps);
  assert.notEqual(reply.client_secret, 'chosen-by-client');
  assert.deepEqual(Object.keys(reply).sort(), [
    'client_id', 'client_id_issued_at', 'client_name', 'client_secret', 'client_secret_expires_at',
    'grant_types', 'redirect_uris', 'response_types', 'token_endpoint_auth_method',
  ]);
  assert.deepEqual(reply.redirect_uris, [WEB]);
  const record = await store.getOAuthClient(reply.client_id);
  assert.deepEqual(record?.metadata, {
    client_name: 'App', redirect_uris: [WEB], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post',
  });
});

test('register: private_key_jwt with jwks_uri; token exchange without redirect URIs', async () => {
  const jwt = await registerClient({ redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks.json' }, deps);
  assert.equal(jwt.jwks_uri, 'https://app.example.com/jwks.json');
  assert.equal(jwt.client_secret, undefined);
  const tx = await registerClient({ grant_types: [TX], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://agent.example/jwks' }, deps);
  assert.deepEqual([tx.grant_types, tx.response_types, tx.redirect_uris], [[TX], [], []]);
});

test('register: a stored registration reads back as the same client', async () => {
  const reply = await registerClient({ redirect_uris: [WEB], grant_types: ['authorization_code', 'refresh_token'], client_name: 'App' }, deps);
  const client = clientFromRecord((await store.getOAuthClient(reply.client_id))!);
  assert.deepEqual(client, {
    clientId: reply.client_id,
    name: 'App',
    redirectUris: [WEB],
    authMethod: 'client_secret_basic',
    secretHash: hashClientSecret(reply.client_secret!),
    grantTypes: ['authorization_code', 'refresh_token'],
    origin: 'dynamic',
  });
  const unnamed = await registerClient({ redirect_uris: [WEB], token_endpoint_auth_method: 'none' }, deps);
  assert.equal(clientFromRecord((await store.getOAuthClient(unnamed.client_id))!).name, unnamed.client_id);
});

test('register: refused with access_denied (403) when dynamic registration is disabled; nothing stored', async () => {
  const { created, counting } = countingStore();
  await assert.rejects(
    registerClient({ redirect_uris: [WEB] }, { store: counting, dynamicRegistration: { enabled: false } }),
    (err) => isOAuthError(err, 'access_denied') && err.status === 403 && /not offered/.test(err.message),
  );
  assert.equal(created.length, 0);
});

const refusals: Array<[string, unknown, OAuthErrorCode, RegExp]> = [
  ['body null', null, 'invalid_client_metadata', /must be a JSON object/],
  ['body an array', [{ redirect_uris: [WEB] }], 'invalid_client_metadata', /must be a JSON object/],
  ['body a string', 'redirect_uris', 'invalid_client_metadata', /must be a JSON object/],
  ['redirect_uris missing', {}, 'invalid_redirect_uri', /at least one URI for the authorization_code grant/],
  ['redirect_uris empty', { redirect_uris: [] }, 'invalid_redirect_uri', /at least one URI/],
  ['redirect_uris a string', { redirect_uris: WEB }, 'invalid_redirect_uri', /must be an array of strings/],
  ['redirect_uris with a number', { redirect_uris: [WEB, 7] }, 'invalid_redirect_uri', /must be an array of strings/],
  ['redirect_uri with fragment', { redirect_uris: [`${WEB}#x`] }, 'invalid_redirect_uri', /fragment/],
  ['redirect_uri with userinfo', { redirect_uris: ['https://u:p@app.example.com/cb'] }, 'invalid_redirect_uri', /user name or password/],
  ['redirect_uri http, not loopback', { redirect_uris: ['http://app.example.com/cb'] }, 'invalid_redirect_uri', /loopback/],
  ['redirect_uri relative', { redirect_uris: ['/cb'] }, 'invalid_redirect_uri', /absolute URI/],
  ['redirect_uri javascript:', { redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', /scheme "javascript"/],
  ['too many redirect_uris', { redirect_uris: Array.from({ length: 21 }, (_, i) => `${WEB}${i}`) }, 'invalid_redirect_uri', /more than 20/],
  ['grant password', { redirect_uris: [WEB], grant_types: ['password'] }, 'invalid_client_metadata', /"password" is not supported/],
  ['grant client_credentials', { redirect_uris: [WEB], grant_types: ['client_credentials'] }, 'invalid_client_metadata', /"client_credentials" is not supported/],
  ['grant implicit', { redirect_uris: [WEB], grant_types: ['implicit'] }, 'invalid_client_metadata', /"implicit" is not supported/],
  ['grant_types empty', { redirect_uris: [WEB], grant_types: [] }, 'invalid_client_metadata', /must not be empty/],
  ['grant_types a string', { redirect_uris: [WEB], grant_types: 'authorization_code' }, 'invalid_client_metadata', /grant_types must be an array/],
  ['refresh_token without authorization_code', { grant_types: ['refresh_token', TX] }, 'invalid_client_metadata', /refresh_token is only issued with authorization_code/],
  ['response type token', { redirect_uris: [WEB], response_types: ['code', 'token'] }, 'invalid_client_metadata', /"token" is not supported/],
  ['response type code without the grant', { grant_types: [TX], response_types: ['code'] }, 'invalid_client_metadata', /exactly when grant_types includes authorization_code/],
  ['no response type with the grant', { redirect_uris: [WEB], response_types: [] }, 'invalid_client_metadata', /exactly when/],
  ['auth method tls_client_auth', { redirect_uris: [WEB], token_endpoint_auth_method: 'tls_client_auth' }, 'invalid_client_metadata', /must be one of none, client_secret_basic, client_secret_post, private_key_jwt/],
  ['auth method client_secret_jwt', { redirect_uris: [WEB], token_endpoint_auth_method: 'client_secret_jwt' }, 'invalid_client_metadata', /must be one of/],
  ['auth method in capitals', { redirect_uris: [WEB], token_endpoint_auth_method: 'NONE' }, 'invalid_client_metadata', /must be one of/],
  ['auth method a number', { redirect_uris: [WEB], token_endpoint_auth_method: 1 }, 'invalid_client_metadata', /must be one of/],
  ['private_key_jwt without jwks_uri', { redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', /needs jwks_uri/],
  ['inline jwks', { redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } }, 'invalid_client_metadata', /inline/],
  ['jwks_uri over http on loopback', { redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1/jwks' }, 'invalid_client_metadata', /must be an https URL/],
  ['jwks_uri with a fragment', { redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://a.example/j#k' }, 'invalid_client_metadata', /fragment/],
  ['jwks_uri not a URL', { redirect_uris: [WEB], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'jwks' }, 'invalid_client_metadata', /absolute URL/],
  ['jwks_uri with none', { redirect_uris: [WEB], token_endpoint_auth_method: 'none', jwks_uri: 'https://a.example/j' }, 'invalid_client_metadata', /only used with .*private_key_jwt/],
  ['client_name empty', { redirect_uris: [WEB], client_name: '  ' }, 'invalid_client_metadata', /non-empty string/],
  ['client_name a number', { redirect_uris: [WEB], client_name: 42 }, 'invalid_client_metadata', /non-empty string/],
  ['client_name too long', { redirect_uris: [WEB], client_name: 'n'.repeat(201) }, 'invalid_client_metadata', /longer than 200/],
  ['client_name with a newline', { redirect_uris: [WEB], client_name: 'App\nApproved by your admin' }, 'invalid_client_metadata', /control/],
  ['client_name with an RTL override', { redirect_uris: [WEB], client_name: 'moc.\u202eelgoog' }, 'invalid_client_metadata', /bidirectional/],
];

for (const [name, body, code, pattern] of refusals) {
  test(`register refused: ${name} -> ${code}`, async () => {
    const { created, counting } = countingStore();
    await assert.rejects(registerClient(body, { ...deps, store: counting }), (err) => {
      assert.ok(isOAuthError(err), String(err));
      assert.equal(err.error, code, err.message);
      assert.equal(err.status, 400);
      assert.match(err.message, pattern);
      return true;
    });
    assert.equal(created.length, 0, 'nothing is stored');
  });
}

test('register: client_name of exactly 200 characters (counted as characters, not UTF-16 units) is accepted', async () => {
  const reply = await registerClient({ redirect_uris: [WEB], client_name: '\u{1F600}'.repeat(200), token_endpoint_auth_method: 'none' }, deps);
  assert.equal([...reply.client_name!].length, 200);
});

test('clientFromRecord: a damaged stored registration is refused, not trusted', () => {
  const base = { clientId: 'c1', createdAt: NOW, secretHash: null };
  const ok = { redirect_uris: [WEB], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  assert.equal(clientFromRecord({ ...base, metadata: ok }).authMethod, 'none');
  const cases: Array<[Record<string, unknown>, string | null, RegExp]> = [
    [{ ...ok, token_endpoint_auth_method: 'tls_client_auth' }, null, /is invalid/],
    [{ ...ok, redirect_uris: ['javascript:x'] }, null, /is invalid/],
    [{ ...ok, token_endpoint_auth_method: 'client_secret_basic' }, null, /secret does not fit client_secret_basic/],
    [ok, 'ab'.repeat(32), /secret does not fit none/],
  ];
  for (const [metadata, secretHash, pattern] of cases) {
    assert.throws(() => clientFromRecord({ ...base, metadata, secretHash }), (err) => isOAuthError(err, 'server_error') && pattern.test(err.message));
  }
});
