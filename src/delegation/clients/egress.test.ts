import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { isMandateError } from '../../errors.ts';
import { addressRefusal, classifyAddress, guardedAgent, guardedLookup, type AddressClass, type Resolver } from './egress.ts';

const classes: Array<[string, AddressClass]> = [
  ['8.8.8.8', 'public'],
  ['93.184.215.14', 'public'],
  ['2606:4700:4700::1111', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'private'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:a00:1', 'private'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['FD12:3456::1', 'private'],
  ['fec0::1', 'private'],
  ['169.254.169.254', 'link-local'],
  ['::ffff:169.254.169.254', 'link-local'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['0.0.0.0', 'reserved'],
  ['::', 'reserved'],
  ['::127.0.0.1', 'reserved'],
  ['224.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['192.0.2.10', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['ff02::1', 'reserved'],
  ['2002:a00:1::1', 'reserved'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['64:ff9b::a00:1', 'private'],
  ['64:ff9b::7f00:1', 'loopback'],
  ['example.com', 'reserved'],
  ['0x7f.1', 'reserved'],
  ['', 'reserved'],
];

for (const [address, expected] of classes) {
  test(`classifyAddress(${JSON.stringify(address)}) is ${expected}`, () => {
    assert.equal(classifyAddress(address), expected);
  });
}

test('addressRefusal: private kinds only with allowPrivateAddresses, reserved never, public always allowed', () => {
  assert.equal(addressRefusal('8.8.8.8', false), undefined);
  assert.match(addressRefusal('10.0.0.1', false) ?? '', /private address/);
  assert.equal(addressRefusal('10.0.0.1', true), undefined);
  assert.match(addressRefusal('127.0.0.1', false) ?? '', /loopback address/);
  assert.equal(addressRefusal('127.0.0.1', true), undefined);
  assert.match(addressRefusal('0.0.0.0', true) ?? '', /reserved/);
  assert.match(addressRefusal('224.0.0.1', true) ?? '', /reserved/);
});

function lookupOnce(resolve: Resolver, allowPrivateAddresses: boolean, hostname: string, options: { all?: boolean; family?: number } = {}) {
  const lookup = guardedLookup({ allowPrivateAddresses, resolve });
  return new Promise<{ err: unknown; address: unknown; family: unknown }>((ok) => {
    lookup(hostname, options, (err, address, family) => ok({ err, address, family }));
  });
}

const table: Resolver = async (host) => {
  const map: Record<string, Array<{ address: string; family: number }>> = {
    'public.test': [{ address: '93.184.215.14', family: 4 }, { address: '2606:4700:4700::1111', family: 6 }],
    'mixed.test': [{ address: '93.184.215.14', family: 4 }, { address: '10.0.0.8', family: 4 }],
    'loop.test': [{ address: '127.0.0.1', family: 4 }],
    'localhost': [{ address: '93.184.215.14', family: 4 }],
    'none.test': [],
  };
  const found = map[host];
  if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return found;
};

test('guardedLookup: all public addresses are handed over, as an array when asked for all', async () => {
  const all = await lookupOnce(table, false, 'public.test', { all: true });
  assert.equal(all.err, null);
  assert.deepEqual(all.address, [{ address: '93.184.215.14', family: 4 }, { address: '2606:4700:4700::1111', family: 6 }]);
  const one = await lookupOnce(table, false, 'public.test', { family: 6 });
  assert.deepEqual([one.err, one.address, one.family], [null, '2606:4700:4700::1111', 6]);
});

test('guardedLookup: one private address among public ones refuses the name', async () => {
  const { err } = await lookupOnce(table, false, 'mixed.test', { all: true });
  assert.ok(isMandateError(err, 'ERR_FORBIDDEN'));
  assert.match(err.message, /mixed\.test resolves to a private address/);
  assert.doesNotMatch(err.message, /10\.0\.0\.8/, 'the resolved address is not revealed');
});

test('guardedLookup: loopback only with allowPrivateAddresses', async () => {
  assert.ok(isMandateError((await lookupOnce(table, false, 'loop.test')).err, 'ERR_FORBIDDEN'));
  assert.deepEqual((await lookupOnce(table, true, 'loop.test')).address, '127.0.0.1');
});

test('guardedLookup: localhost must resolve to loopback addresses', async () => {
  const { err } = await lookupOnce(table, true, 'localhost');
  assert.ok(isMandateError(err, 'ERR_FORBIDDEN'));
  assert.match(err.message, /non-loopback/);
});

test('guardedLookup: no addresses, no address of the asked family, resolver failure', async () => {
  assert.match(String((await lookupOnce(table, false, 'none.test')).err), /has no address/);
  assert.match(String((await lookupOnce(table, true, 'loop.test', { family: 6 })).err), /has no IPv6 address/);
  assert.equal(((await lookupOnce(table, false, 'unknown.test')).err as { code?: string }).code, 'ENOTFOUND');
});

let server: Server;
let port: number;
let hits = 0;
before(async () => {
  server = createServer((_req, res) => {
    hits += 1;
    res.end('ok');
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
});

async function get(url: string, allowPrivateAddresses: boolean, resolve: Resolver = table): Promise<unknown> {
  const agent = guardedAgent({ allowPrivateAddresses, resolve });
  try {
    const res = await request(url, { dispatcher: agent });
    return await res.body.text();
  } catch (err) {
    return err;
  } finally {
    await agent.close();
  }
}

function refusal(result: unknown): string {
  for (let e: unknown = result; e instanceof Error; e = e.cause) if (isMandateError(e, 'ERR_FORBIDDEN')) return e.message;
  return `not refused: ${String(result)}`;
}

test('guardedAgent: an IP-literal loopback host is refused before connecting unless allowed', async () => {
  const before = hits;
  assert.match(refusal(await get(`http://127.0.0.1:${port}/`, false)), /127\.0\.0\.1 is a loopback address/);
  assert.match(refusal(await get(`http://[::ffff:127.0.0.1]:${port}/`, false)), /loopback address/);
  assert.equal(hits, before, 'nothing reached the server');
  assert.equal(await get(`http://127.0.0.1:${port}/`, true), 'ok');
  assert.equal(hits, before + 1);
});

test('guardedAgent: a name is connected to the address that was checked', async () => {
  const before = hits;
  assert.match(refusal(await get(`http://loop.test:${port}/`, false)), /loop\.test resolves to a loopback address/);
  assert.equal(hits, before);
  assert.equal(await get(`http://loop.test:${port}/`, true), 'ok');
  assert.equal(hits, before + 1);
});

test('guardedAgent: the real resolver is used by default (localhost is loopback)', async () => {
  const agent = guardedAgent({ allowPrivateAddresses: false });
  try {
    await assert.rejects(request(`http://localhost:${port}/`, { dispatcher: agent }), (err) => /localhost resolves to a loopback address/.test(refusal(err)));
  } finally {
    await agent.close();
  }
});

test('guardedAgent: reserved addresses are refused even when private ones are allowed', async () => {
  assert.match(refusal(await get(`http://0.0.0.0:${port}/`, true)), /reserved/);
});
