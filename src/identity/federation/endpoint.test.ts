import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMandateError } from '../../errors.ts';
import { isLoopbackHost } from '../../config/address.ts';
import { bundleEndpointUrl, redirectTarget } from './endpoint.ts';

test('isLoopbackHost: 127.0.0.0/8, ::1 and localhost only', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '[::1]', 'localhost']) assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['128.0.0.1', '10.0.0.1', '127.example', 'localhost.example', '[::2]', '0.0.0.0', '']) assert.equal(isLoopbackHost(host), false, host);
  assert.equal(isLoopbackHost(new URL('http://127.0.0.1:8080/x').hostname), true);
  assert.equal(isLoopbackHost(new URL('http://[::1]:8080/x').hostname), true);
});

test('bundleEndpointUrl: https anywhere, http only on loopback, never userinfo', () => {
  assert.equal(bundleEndpointUrl('https://partner.example/bundle.json', 'w').href, 'https://partner.example/bundle.json');
  assert.equal(bundleEndpointUrl('http://127.0.0.1:9/b', 'w').port, '9');
  assert.equal(bundleEndpointUrl('http://[::1]:9/b', 'w').hostname, '[::1]');
  const bad: Array<[string, RegExp]> = [
    ['http://partner.example/bundle.json', /must be https/],
    ['ftp://partner.example/b', /must be https/],
    ['file:///etc/passwd', /must be https/],
    ['https://user:pw@partner.example/b', /must not include userinfo/],
    ['https://user@partner.example/b', /must not include userinfo/],
    ['not a url', /is not a URL/],
  ];
  for (const [url, pattern] of bad) {
    assert.throws(() => bundleEndpointUrl(url, 'federation x'), (err: unknown) => isMandateError(err, 'ERR_CONFIG_INVALID') && pattern.test(err.message), url);
  }
});

test('redirectTarget: resolves relative locations, re-validates, refuses to leave https', () => {
  const from = new URL('https://a.example/dir/bundle');
  assert.equal(redirectTarget(from, '/other').href, 'https://a.example/other');
  assert.equal(redirectTarget(from, 'https://cdn.example/b').href, 'https://cdn.example/b');
  const loopHttp = new URL('http://127.0.0.1:1/a');
  assert.equal(redirectTarget(loopHttp, '/b').href, 'http://127.0.0.1:1/b');
  const bad: Array<[URL, string, RegExp]> = [
    [from, 'http://a.example/b', /must be https/],
    [from, 'http://127.0.0.1/b', /leaves https/],
    [from, 'https://u:p@a.example/b', /userinfo/],
    [loopHttp, 'http://evil.example/b', /must be https/],
  ];
  for (const [source, location, pattern] of bad) {
    assert.throws(() => redirectTarget(source, location), (err: unknown) => isMandateError(err, 'ERR_BUNDLE_UNAVAILABLE') && pattern.test(err.message), location);
  }
});
