import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DelegationConfig, OAuthClientConfig } from '../../config/types.ts';
import { isMandateError } from '../../errors.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { isOAuthError } from '../oauth/errors.ts';
import { hashClientSecret, registerClient } from './registration.ts';
import { ClientRegistry } from './registry.ts';

let dir: string;
let store: Store;
let server: Server;
let docUrl: string;
let fetches = 0;

const SECRET = 'correct horse battery staple';
const configured: OAuthClientConfig[] = [
  {
    clientId: 'console', name: 'Console', redirectUris: ['https://console.example/cb'], authMethod: 'client_secret_basic',
    secretHash: hashClientSecret(SECRET), spiffeId: undefined, grantTypes: ['authorization_code'],
  },
  {
    clientId: 'triage-bot', name: 'Triage bot', redirectUris: [], authMethod: 'private_key_jwt', secretHash: undefined,
    spiffeId: 'spiffe://example.org/agent/triage-bot', grantTypes: ['urn:ietf:params:oauth:grant-type:token-exchange'],
  },
];

const documentsOn: DelegationConfig['clientIdMetadataDocuments'] = { enabled: true, allowPrivateAddresses: true, maxBytes: 8192, timeout: 1000, cacheTtl: 60 };
const documentsOff = { ...documentsOn, enabled: false };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mandate-registry-'));
  store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  server = createServer((req, res) => {
    fetches += 1;
    const body = JSON.stringify({ client_id: docUrl, client_name: 'Doc client', redirect_uris: ['http://127.0.0.1/cb'] });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  docUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/client.json`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const live: ClientRegistry[] = [];
function registry(over: { documents?: DelegationConfig['clientIdMetadataDocuments']; dynamic?: boolean; clients?: OAuthClientConfig[] } = {}): ClientRegistry {
  const r = new ClientRegistry({
    clients: over.clients ?? configured,
    store,
    metadataDocuments: over.documents ?? documentsOn,
    dynamicRegistration: { enabled: over.dynamic ?? true },
  });
  live.push(r);
  return r;
}
after(async () => {
  for (const r of live) await r.close();
});

function unknownClient(pattern: RegExp): (err: unknown) => boolean {
  return (err) => isOAuthError(err, 'invalid_client') && err.status === 401 && pattern.test(err.message);
}

test('resolve: configured clients', async () => {
  const bot = await registry().resolve('triage-bot');
  assert.deepEqual(bot, {
    clientId: 'triage-bot', name: 'Triage bot', redirectUris: [], authMethod: 'private_key_jwt',
    spiffeId: 'spiffe://example.org/agent/triage-bot', grantTypes: ['urn:ietf:params:oauth:grant-type:token-exchange'], origin: 'config',
  });
  assert.equal((await registry().resolve('console')).secretHash, hashClientSecret(SECRET));
});

test('resolve: URL-shaped ids through metadata documents when enabled', async () => {
  const before = fetches;
  const r = registry();
  assert.equal(r.metadataDocumentsSupported, true);
  const client = await r.resolve(docUrl);
  assert.deepEqual([client.origin, client.name, client.redirectUris], ['metadata-document', 'Doc client', ['http://127.0.0.1/cb']]);
  await r.resolve(docUrl);
  assert.equal(fetches, before + 1, 'cached');
});

test('resolve: URL-shaped ids are unknown, and not fetched, when metadata documents are disabled', async () => {
  const before = fetches;
  const r = registry({ documents: documentsOff });
  assert.equal(r.metadataDocumentsSupported, false);
  await assert.rejects(r.resolve(docUrl), unknownClient(/client ID metadata documents are not accepted here/));
  assert.equal(fetches, before);
});

test('resolve: a configured client wins over everything else, even with a URL-shaped id', async () => {
  const before = fetches;
  const r = registry({ clients: [{ ...configured[0]!, clientId: docUrl, name: 'Pinned' }] });
  assert.deepEqual([(await r.resolve(docUrl)).name, (await r.resolve(docUrl)).origin], ['Pinned', 'config']);
  assert.equal(fetches, before);
});

test('resolve: dynamically registered clients from the store, only while dynamic registration is enabled', async () => {
  const reply = await registerClient({ redirect_uris: ['https://app.example/cb'], client_name: 'Dyn' }, { store, dynamicRegistration: { enabled: true } });
  const client = await registry().resolve(reply.client_id);
  assert.deepEqual([client.origin, client.name, client.authMethod], ['dynamic', 'Dyn', 'client_secret_basic']);
  assert.equal(registry().checkSecret(client, reply.client_secret!), true);
  await assert.rejects(registry({ dynamic: false }).resolve(reply.client_id), unknownClient(/unknown client/));
});

test('resolve: unknown ids are invalid_client (401)', async () => {
  await assert.rejects(registry().resolve('nobody'), unknownClient(/unknown client "nobody"/));
  await assert.rejects(registry().resolve(''), unknownClient(/unknown client ""/));
  await assert.rejects(registry().resolve('x'.repeat(5000)), (err) => unknownClient(/unknown client/)(err) && (err as Error).message.length < 300);
});

test('resolve: a store failure is not mistaken for an unknown client', async () => {
  const broken = await openSqliteStore({ path: join(dir, 'closed.db') });
  await broken.close();
  const r = new ClientRegistry({ clients: [], store: broken, metadataDocuments: documentsOff, dynamicRegistration: { enabled: true } });
  await assert.rejects(r.resolve('some-client'), (err) => isMandateError(err, 'ERR_STORE'));
});

test('checkSecret: SHA-256 comparison; false without a stored hash or with a malformed one', async () => {
  const r = registry();
  const consoleClient = await r.resolve('console');
  assert.equal(r.checkSecret(consoleClient, SECRET), true);
  assert.equal(r.checkSecret(consoleClient, `${SECRET} `), false);
  assert.equal(r.checkSecret(consoleClient, ''), false);
  assert.equal(r.checkSecret(consoleClient, hashClientSecret(SECRET)), false, 'the hash is not the secret');
  assert.equal(r.checkSecret({ ...consoleClient, secretHash: hashClientSecret(SECRET).toUpperCase() }, SECRET), true);
  assert.equal(r.checkSecret(await r.resolve('triage-bot'), SECRET), false);
  assert.equal(r.checkSecret({ ...consoleClient, secretHash: 'abc' }, SECRET), false);
  assert.equal(r.checkSecret({ ...consoleClient, secretHash: 'zz'.repeat(32) }, SECRET), false);
});
