import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { x509 } from '../../identity/x509/crypto.ts';
import { isOAuthError } from '../oauth/errors.ts';
import type { Resolver } from './egress.ts';
import { checkClientIdUrl, isUrlClientId, MetadataDocumentClients, type MetadataDocumentConfig, type MetadataDocumentOptions } from './metadata-document.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** A self-signed certificate for 127.0.0.1 and cimd.test, which is also its own trust anchor. */
async function serverCertificate(): Promise<{ key: string; cert: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=cimd.test', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg, keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'cimd.test' }]),
      new x509.BasicConstraintsExtension(true, undefined, true),
    ],
  });
  return { key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), cert: cert.toString('pem') };
}

const routes = new Map<string, Handler>();
const hits = new Map<string, number>();
function dispatch(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/';
  hits.set(path, (hits.get(path) ?? 0) + 1);
  const handler = routes.get(path);
  if (handler === undefined) {
    res.writeHead(404).end();
    return;
  }
  handler(req, res);
}
const hitsOf = (path: string): number => hits.get(path) ?? 0;

let ca: string;
let httpsServer: Server;
let httpServer: Server;
let httpsPort: number;
let httpPort: number;
let httpsBase: string;
let httpBase: string;

before(async () => {
  const tls = await serverCertificate();
  ca = tls.cert;
  httpsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, dispatch);
  httpServer = createHttpServer(dispatch);
  await new Promise<void>((ok) => httpsServer.listen(0, '127.0.0.1', ok));
  await new Promise<void>((ok) => httpServer.listen(0, '127.0.0.1', ok));
  httpsPort = (httpsServer.address() as AddressInfo).port;
  httpPort = (httpServer.address() as AddressInfo).port;
  httpsBase = `https://127.0.0.1:${httpsPort}`;
  httpBase = `http://127.0.0.1:${httpPort}`;
});

after(async () => {
  for (const s of [httpsServer, httpServer]) {
    s.closeAllConnections();
    await new Promise((ok) => s.close(ok));
  }
});

const config: MetadataDocumentConfig = { allowPrivateAddresses: true, maxBytes: 4096, timeout: 400, cacheTtl: 60 };

const live: MetadataDocumentClients[] = [];
function documents(over: Partial<MetadataDocumentConfig> = {}, opts: MetadataDocumentOptions = {}): MetadataDocumentClients {
  const d = new MetadataDocumentClients({ ...config, ...over }, { ca, ...opts });
  live.push(d);
  return d;
}
after(async () => {
  for (const d of live) await d.close();
});

let counter = 0;
/** A fresh path (so cache and hit counts start clean) and its client_id on the HTTPS server. */
function place(base = httpsBase): { path: string; id: string } {
  counter += 1;
  const path = `/clients/c${counter}.json`;
  return { path, id: `${base}${path}` };
}

function doc(id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: id,
    client_name: 'Example MCP Client',
    client_uri: 'https://app.example.com',
    redirect_uris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...over,
  };
}

function json(body: unknown, headers: Record<string, string> = {}): Handler {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };
}

function serveDoc(over: Record<string, unknown> = {}, headers: Record<string, string> = {}, base = httpsBase): { path: string; id: string } {
  const p = place(base);
  routes.set(p.path, json(doc(p.id, over), headers));
  return p;
}

function invalidClient(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isOAuthError(err, 'invalid_client'), `expected invalid_client, got ${String(err)}`);
    assert.equal(err.status, 401);
    assert.match(err.message, pattern);
    return true;
  };
}

test('isUrlClientId: http(s) URLs only', () => {
  assert.equal(isUrlClientId('https://app.example.com/c.json'), true);
  assert.equal(isUrlClientId('HTTP://127.0.0.1/c.json'), true);
  assert.equal(isUrlClientId('my-client'), false);
  assert.equal(isUrlClientId('urn:example:client'), false);
  assert.equal(isUrlClientId('com.example.app:/x'), false);
});

const idTable: Array<[string, boolean, RegExp | undefined]> = [
  ['https://app.example.com/oauth/client.json', false, undefined],
  ['https://app.example.com:8443/c', false, undefined],
  ['https://app.example.com/', false, /must contain a path/],
  ['https://app.example.com', false, /must contain a path/],
  ['https://app.example.com/c.json?v=1', false, /must not contain a query/],
  ['https://app.example.com/c.json?', false, /must not contain a query/],
  ['https://app.example.com/c.json#x', false, /must not contain a fragment/],
  ['https://user@app.example.com/c.json', false, /user name or password/],
  ['https://APP.example.com/c.json', false, /normalised form \(https:\/\/app\.example\.com\/c\.json\)/],
  ['https://app.example.com:443/c.json', false, /normalised form/],
  ['https://app.example.com/a/../c.json', false, /normalised form/],
  ['https://app.example.com/a/%2e%2e/c.json', false, /normalised form/],
  ['https://app.example.com/./c.json', false, /normalised form/],
  ['http://app.example.com/c.json', true, /must be an https URL/],
  ['http://127.0.0.1/c.json', false, /must be an https URL/],
  ['http://127.0.0.1/c.json', true, undefined],
  ['http://localhost/c.json', true, undefined],
  ['ftp://app.example.com/c.json', true, /must be an https URL/],
  ['https://127.0.0.1/c.json', false, /loopback address/],
  ['https://10.0.0.1/c.json', false, /private address/],
  ['https://169.254.169.254/latest', false, /link-local address/],
  ['https://169.254.169.254/latest', true, undefined],
  ['https://[fd00::1]/c.json', false, /private address/],
  ['https://[::ffff:7f00:1]/c.json', false, /loopback address/],
  ['https://0.0.0.0/c.json', true, /reserved/],
  ['https:app.example.com/c.json', false, /normalised form/],
  ['not a url', false, /absolute https URL/],
  [`https://app.example.com/${'a'.repeat(2000)}`, false, /longer than 2000/],
];

for (const [id, allow, expected] of idTable) {
  test(`checkClientIdUrl(${JSON.stringify(id.slice(0, 60))}, allowPrivate=${allow}) ${expected === undefined ? 'accepts' : `refuses: ${expected.source}`}`, () => {
    const why = checkClientIdUrl(id, allow);
    if (expected === undefined) assert.equal(why, undefined);
    else assert.match(why ?? '(accepted)', expected);
  });
}

test('ok: a document served over HTTPS becomes a client', async () => {
  const { id } = serveDoc();
  const client = await documents().resolve(id);
  assert.deepEqual(client, {
    clientId: id,
    name: 'Example MCP Client',
    redirectUris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
    authMethod: 'none',
    grantTypes: ['authorization_code'],
    origin: 'metadata-document',
  });
});

test('ok: private_key_jwt with jwks_uri; charset in the content type; unknown members ignored', async () => {
  const { id } = serveDoc(
    { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks.json', logo_uri: 'https://x/l.png', grant_types: ['authorization_code', 'refresh_token'] },
    { 'content-type': 'application/json; charset=utf-8' },
  );
  const client = await documents().resolve(id);
  assert.equal(client.authMethod, 'private_key_jwt');
  assert.equal(client.jwksUri, 'https://app.example.com/jwks.json');
  assert.deepEqual(client.grantTypes, ['authorization_code', 'refresh_token']);
});

test('ok: a host name is resolved, checked, and connected to with TLS verified for that name', async () => {
  const { path } = place();
  const id = `https://cimd.test:${httpsPort}${path}`;
  routes.set(path, json(doc(id)));
  const resolve: Resolver = async (host) => (host === 'cimd.test' ? [{ address: '127.0.0.1', family: 4 }] : []);
  assert.equal((await documents({}, { resolve }).resolve(id)).clientId, id);
});

test('TLS: a server certificate the trust anchors do not cover is refused', async () => {
  const { id } = serveDoc();
  const other = (await serverCertificate()).cert;
  await assert.rejects(documents({}, { ca: other }).resolve(id), invalidClient(/cannot be fetched \(DEPTH_ZERO_SELF_SIGNED_CERT\)/));
});

test('http on loopback is accepted only with allowPrivateAddresses', async () => {
  const { id, path } = serveDoc({}, {}, httpBase);
  assert.equal((await documents().resolve(id)).clientId, id);
  await assert.rejects(documents({ allowPrivateAddresses: false }).resolve(id), invalidClient(/the client_id must be an https URL/));
  assert.equal(hitsOf(path), 1);
});

test('private address refused when not allowed: IP literal, a name resolving to loopback, and localhost', async () => {
  const { path, id } = serveDoc();
  const strict = { allowPrivateAddresses: false };
  await assert.rejects(documents(strict).resolve(id), invalidClient(/must not point at a loopback address/));

  const named = `https://cimd.test:${httpsPort}${path}`;
  const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
  await assert.rejects(documents(strict, { resolve }).resolve(named), invalidClient(/refused: cimd\.test resolves to a loopback address/));
  const mixed: Resolver = async () => [{ address: '93.184.215.14', family: 4 }, { address: '10.9.8.7', family: 4 }];
  await assert.rejects(documents(strict, { resolve: mixed }).resolve(named), (err) => invalidClient(/resolves to a private address/)(err) && !/10\.9\.8\.7/.test((err as Error).message));

  await assert.rejects(documents(strict).resolve(`https://localhost:${httpsPort}${path}`), invalidClient(/localhost resolves to a loopback address/));
  assert.equal(hitsOf(path), 0, 'nothing was fetched');
});

test('too big: refused by Content-Length before reading', async () => {
  const { path, id } = place();
  routes.set(path, json(doc(id, { padding: 'x'.repeat(5000) })));
  await assert.rejects(documents().resolve(id), invalidClient(/larger than 4096 bytes/));
});

test('too big: a body without Content-Length is abandoned once past maxBytes', async () => {
  const { path, id } = place();
  let written = 0;
  routes.set(path, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = 'x'.repeat(1024);
    const pump = (): void => {
      while (written < 10 * 1024 * 1024) {
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => res.removeAllListeners('drain'));
    pump();
  });
  await assert.rejects(documents({ timeout: 5000 }).resolve(id), invalidClient(/larger than 4096 bytes/));
  assert.ok(written < 10 * 1024 * 1024, `the server was stopped early (wrote ${written} bytes)`);
});

test('slow: no headers within the timeout', async () => {
  const { path, id } = place();
  routes.set(path, (_req, res) => void setTimeout(() => json(doc(id))(_req, res), 1500).unref());
  const started = Date.now();
  await assert.rejects(documents().resolve(id), invalidClient(/did not arrive within 400 ms/));
  assert.ok(Date.now() - started < 1400);
});

test('slow: a body that trickles past the timeout', async () => {
  const { path, id } = place();
  routes.set(path, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"client_id":');
    const timer = setTimeout(() => res.end(`${JSON.stringify(id)}}`), 1500);
    timer.unref();
  });
  await assert.rejects(documents().resolve(id), invalidClient(/did not arrive within 400 ms/));
});

test('redirect refused: the target is not fetched', async () => {
  const target = serveDoc();
  const { path, id } = place();
  routes.set(path, (_req, res) => res.writeHead(302, { location: target.id }).end());
  await assert.rejects(documents().resolve(id), invalidClient(/redirect \(HTTP 302\); redirects are not followed/));
  assert.equal(hitsOf(target.path), 0);
  for (const status of [301, 303, 307, 308]) {
    routes.set(path, (_req, res) => res.writeHead(status, { location: target.id }).end());
    await assert.rejects(documents().resolve(id), invalidClient(new RegExp(`HTTP ${status}`)));
  }
});

test('wrong status and wrong content type are refused', async () => {
  const { path, id } = place();
  routes.set(path, (_req, res) => res.writeHead(500).end());
  await assert.rejects(documents().resolve(id), invalidClient(/answered HTTP 500/));
  for (const type of ['text/html', 'text/plain', 'application/jsonp', 'application/json-patch+json']) {
    routes.set(path, json(doc(id), { 'content-type': type }));
    await assert.rejects(documents().resolve(id), invalidClient(/not application\/json/), type);
  }
  routes.set(path, (_req, res) => res.writeHead(200).end(JSON.stringify(doc(id))));
  await assert.rejects(documents().resolve(id), invalidClient(/content type "\(none\)"/));
});

const documentTable: Array<[string, (id: string) => unknown, RegExp]> = [
  ['client_id mismatch (other document)', () => doc('https://other.example/c.json'), /client_id member does not equal the URL/],
  ['client_id mismatch (trailing slash)', (id) => doc(`${id}/`), /client_id member does not equal/],
  ['client_id mismatch (case)', (id) => doc(id.toUpperCase()), /client_id member does not equal/],
  ['client_id missing', (id) => ({ ...doc(id), client_id: undefined }), /client_id member does not equal/],
  ['client_secret member', (id) => doc(id, { client_secret: 's3cret' }), /must not contain client_secret/],
  ['client_secret_expires_at member', (id) => doc(id, { client_secret_expires_at: 0 }), /must not contain client_secret_expires_at/],
  ['shared-secret auth method', (id) => doc(id, { token_endpoint_auth_method: 'client_secret_basic' }), /token_endpoint_auth_method must be one of none, private_key_jwt/],
  ['client_secret_jwt', (id) => doc(id, { token_endpoint_auth_method: 'client_secret_jwt' }), /token_endpoint_auth_method/],
  ['tls_client_auth', (id) => doc(id, { token_endpoint_auth_method: 'tls_client_auth' }), /token_endpoint_auth_method/],
  ['private_key_jwt without jwks_uri', (id) => doc(id, { token_endpoint_auth_method: 'private_key_jwt' }), /private_key_jwt needs jwks_uri/],
  ['private_key_jwt with inline jwks', (id) => doc(id, { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } }), /jwks \(keys inline\) is not supported/],
  ['jwks_uri over http to a public host', (id) => doc(id, { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://app.example.com/jwks' }), /jwks_uri must be an https URL/],
  ['redirect_uris missing', (id) => ({ ...doc(id), redirect_uris: undefined }), /redirect_uris must name at least one URI/],
  ['redirect_uris empty', (id) => doc(id, { redirect_uris: [] }), /redirect_uris must name at least one URI/],
  ['redirect_uris not an array', (id) => doc(id, { redirect_uris: 'https://app.example.com/cb' }), /redirect_uris must be an array of strings/],
  ['redirect_uri with fragment', (id) => doc(id, { redirect_uris: ['https://app.example.com/cb#x'] }), /must not contain a fragment/],
  ['redirect_uri http on a public host', (id) => doc(id, { redirect_uris: ['http://app.example.com/cb'] }), /http is allowed only on a loopback host/],
  ['redirect_uri javascript:', (id) => doc(id, { redirect_uris: ['javascript:alert(1)'] }), /scheme "javascript" is not allowed/],
  ['client_name missing', (id) => ({ ...doc(id), client_name: undefined }), /client_name is required/],
  ['client_name with bidi override', (id) => doc(id, { client_name: 'Good\u202eevil' }), /bidirectional/],
  ['unsupported grant', (id) => doc(id, { grant_types: ['password'] }), /grant type "password" is not supported/],
  ['unsupported response type', (id) => doc(id, { response_types: ['token'] }), /response type "token" is not supported/],
  ['a JSON array', (id) => [doc(id)], /is not a JSON object/],
  ['JSON null', () => null, /is not a JSON object/],
  ['not JSON', () => '{"client_id": ', /is not valid JSON/],
  ['not UTF-8', () => Buffer.from([0x7b, 0xff, 0x7d]), /is not UTF-8 text/],
];

for (const [name, body, expected] of documentTable) {
  test(`document refused: ${name}`, async () => {
    const { path, id } = place();
    const content = body(id);
    routes.set(path, (_req, res) => {
      const bytes = Buffer.isBuffer(content) ? content : Buffer.from(typeof content === 'string' ? content : JSON.stringify(content));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
    });
    await assert.rejects(documents().resolve(id), invalidClient(expected));
  });
}

test('cache reuse: a document is fetched once within cacheTtl, again after it', async () => {
  let now = 1_000_000;
  const d = documents({ cacheTtl: 60 }, { now: () => now });
  const { path, id } = serveDoc();
  const first = await d.resolve(id);
  assert.equal(await d.resolve(id), first);
  now += 59_000;
  await d.resolve(id);
  assert.equal(hitsOf(path), 1);
  now += 2_000;
  await d.resolve(id);
  assert.equal(hitsOf(path), 2);
});

test('cache: Cache-Control max-age shortens the lifetime; no-store and no-cache prevent reuse', async () => {
  let now = 1_000_000;
  const d = documents({ cacheTtl: 60 }, { now: () => now });
  const short = serveDoc({}, { 'cache-control': 'public, max-age=5' });
  await d.resolve(short.id);
  now += 4_000;
  await d.resolve(short.id);
  assert.equal(hitsOf(short.path), 1);
  now += 2_000;
  await d.resolve(short.id);
  assert.equal(hitsOf(short.path), 2);

  const long = serveDoc({}, { 'cache-control': 'max-age=86400' });
  await d.resolve(long.id);
  now += 61_000;
  await d.resolve(long.id);
  assert.equal(hitsOf(long.path), 2, 'max-age cannot extend past cacheTtl');

  for (const directive of ['no-store', 'No-Cache']) {
    const never = serveDoc({}, { 'cache-control': directive });
    await d.resolve(never.id);
    await d.resolve(never.id);
    assert.equal(hitsOf(never.path), 2, directive);
  }
});

test('cache: concurrent lookups share one fetch; failures are not cached', async () => {
  const d = documents();
  const { path, id } = serveDoc();
  const results = await Promise.all([d.resolve(id), d.resolve(id), d.resolve(id)]);
  assert.equal(hitsOf(path), 1);
  assert.ok(results.every((r) => r === results[0]));

  const broken = place();
  routes.set(broken.path, (_req, res) => res.writeHead(503).end());
  await assert.rejects(d.resolve(broken.id), invalidClient(/HTTP 503/));
  routes.set(broken.path, json(doc(broken.id)));
  assert.equal((await d.resolve(broken.id)).clientId, broken.id);
  assert.equal(hitsOf(broken.path), 2);
});

test('cache: bounded, the least recently used document is dropped first', async () => {
  const d = documents({}, { maxEntries: 2 });
  const [a, b, c] = [serveDoc(), serveDoc(), serveDoc()];
  await d.resolve(a.id);
  await d.resolve(b.id);
  await d.resolve(a.id); // a is now the most recently used
  await d.resolve(c.id); // evicts b
  await d.resolve(a.id);
  assert.equal(hitsOf(a.path), 1);
  await d.resolve(b.id);
  assert.equal(hitsOf(b.path), 2);
});
