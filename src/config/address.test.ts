import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkFetchUrl, isLoopbackHost, parseListen, urlHost } from './address.ts';

describe('parseListen', () => {
  it('reads IPv4, bracketed IPv6 and host names', () => {
    assert.deepEqual(parseListen('127.0.0.1:8420'), { host: '127.0.0.1', port: 8420 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('[::]:443'), { host: '::', port: 443 });
    assert.deepEqual(parseListen('mandate.internal:65535'), { host: 'mandate.internal', port: 65535 });
  });

  it('says what is wrong', () => {
    assert.match(parseListen('8420') as string, /host:port/);
    assert.match(parseListen(':8420') as string, /host is required/);
    assert.match(parseListen('::1:80') as string, /brackets/);
    assert.match(parseListen('[127.0.0.1]:80') as string, /IPv6/);
    assert.match(parseListen('host:65536') as string, /port/);
    assert.match(parseListen('host:80a') as string, /port/);
    assert.match(parseListen('host:') as string, /port/);
    assert.match(parseListen('bad_host!:80') as string, /IP address or a host name/);
  });
});

describe('isLoopbackHost', () => {
  it('knows loopback from the rest', () => {
    for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'localhost.evil.com', '127.0.0.1.nip.io', 'example.org']) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });
});

describe('urlHost and checkFetchUrl', () => {
  it('writes hosts for URLs', () => {
    assert.equal(urlHost('0.0.0.0'), '127.0.0.1');
    assert.equal(urlHost('::'), '[::1]');
    assert.equal(urlHost('fe80::1'), '[fe80::1]');
    assert.equal(urlHost('mandate.internal'), 'mandate.internal');
  });

  it('accepts https anywhere and http only on loopback', () => {
    assert.equal(checkFetchUrl('https://example.org/jwks'), undefined);
    assert.equal(checkFetchUrl('http://127.0.0.1:8080/bundle'), undefined);
    assert.equal(checkFetchUrl('http://[::1]/bundle'), undefined);
    assert.match(checkFetchUrl('http://example.org/b')!, /https/);
    assert.match(checkFetchUrl('ftp://example.org/b')!, /https/);
    assert.match(checkFetchUrl('example.org/b')!, /absolute/);
    assert.match(checkFetchUrl('https://u:p@example.org/b')!, /password/);
    assert.match(checkFetchUrl('https://example.org/b#x')!, /fragment/);
  });
});
