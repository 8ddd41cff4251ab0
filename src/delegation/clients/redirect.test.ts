import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isOAuthError } from '../oauth/errors.ts';
import type { OAuthClient } from './client.ts';
import { checkRedirectUri, validateRedirectUri } from './redirect.ts';

const client: OAuthClient = {
  clientId: 'app',
  name: 'App',
  redirectUris: [
    'https://app.example.com/callback',
    'https://app.example.com/cb?tenant=1',
    'http://127.0.0.1/native',
    'http://127.0.0.1:8080/fixed',
    'http://[::1]/v6',
    'http://localhost:3000/callback',
    'com.example.app:/oauth2redirect',
  ],
  authMethod: 'none',
  grantTypes: ['authorization_code'],
  origin: 'config',
};

const matchTable: Array<[string, boolean, string]> = [
  ['https://app.example.com/callback', true, 'exact'],
  ['https://app.example.com/cb?tenant=1', true, 'exact with the registered query'],
  ['https://APP.example.com/callback', false, 'host case differs'],
  ['HTTPS://app.example.com/callback', false, 'scheme case differs'],
  ['https://app.example.com/Callback', false, 'path case differs'],
  ['https://app.example.com/callback/', false, 'trailing slash added'],
  ['https://app.example.com/callback?x=1', false, 'extra query'],
  ['https://app.example.com/cb?tenant=1&x=2', false, 'query extended'],
  ['https://app.example.com/cb', false, 'registered query dropped'],
  ['https://app.example.com/callback#frag', false, 'fragment'],
  ['https://app.example.com/callback#', false, 'empty fragment'],
  ['https://user@app.example.com/callback', false, 'userinfo'],
  ['https://app.example.com:443/callback', false, 'default port spelled out'],
  ['https://app.example.com/callback/../callback', false, 'dot segments'],
  ['https://app.example.com.evil.example/callback', false, 'suffix host'],
  ['https://app.example.com/callbackx', false, 'longer path'],
  ['http://app.example.com/callback', false, 'http instead of https'],
  ['http://127.0.0.1:51234/native', true, 'loopback IPv4, any port (RFC 8252 §7.3)'],
  ['http://127.0.0.1/native', true, 'loopback IPv4, no port, as registered'],
  ['http://127.0.0.1:9999/fixed', true, 'loopback IPv4, port differs from the registered one'],
  ['http://127.0.0.1:65535/native', true, 'loopback IPv4, highest port'],
  ['http://127.0.0.1:65536/native', false, 'loopback IPv4, port out of range'],
  ['http://127.0.0.1:0/native', false, 'loopback IPv4, port 0'],
  ['http://127.0.0.1:/native', false, 'loopback IPv4, empty port'],
  ['http://127.0.0.1:51234/native/', false, 'loopback any port but path differs'],
  ['http://127.0.0.1:51234/native?x=1', false, 'loopback any port but extra query'],
  ['http://127.0.0.2:51234/native', false, 'another loopback address'],
  ['https://127.0.0.1:51234/native', false, 'https on loopback is not the RFC 8252 case'],
  ['http://127.0.0.1:5000@evil.example/native', false, 'userinfo trick on loopback'],
  ['http://[::1]:40000/v6', true, 'loopback IPv6, any port'],
  ['http://[::1]:40000/native', false, 'IPv6 loopback where IPv4 was registered'],
  ['http://[0:0:0:0:0:0:0:1]:40000/v6', false, 'IPv6 loopback spelled differently'],
  ['http://localhost:3000/callback', true, 'localhost, exact'],
  ['http://localhost:4000/callback', false, 'localhost is not given any-port matching (RFC 8252 §8.3)'],
  ['http://127.0.0.1:3000/callback', false, 'localhost registered, loopback IP requested'],
  ['com.example.app:/oauth2redirect', true, 'private-use scheme, exact'],
  ['COM.example.app:/oauth2redirect', false, 'private-use scheme case differs'],
  ['', false, 'empty'],
];

for (const [uri, ok, why] of matchTable) {
  test(`checkRedirectUri: ${why}: ${JSON.stringify(uri)} ${ok ? 'matches' : 'is refused'}`, () => {
    if (ok) checkRedirectUri(client, uri);
    else assert.throws(() => checkRedirectUri(client, uri), (err) => isOAuthError(err, 'invalid_request') && err.status === 400);
  });
}

test('checkRedirectUri: a client without redirect URIs accepts none', () => {
  assert.throws(() => checkRedirectUri({ ...client, redirectUris: [] }, 'https://app.example.com/callback'), /not registered for client app/);
});

const validity: Array<[string, RegExp | undefined]> = [
  ['https://app.example.com/callback', undefined],
  ['https://app.example.com', undefined],
  ['https://app.example.com/cb?x=1', undefined],
  ['http://127.0.0.1:3000/callback', undefined],
  ['http://127.0.0.1/callback', undefined],
  ['http://[::1]:3000/callback', undefined],
  ['http://localhost:3000/callback', undefined],
  ['com.example.app:/oauth2redirect', undefined],
  ['com.example.app://callback/path', undefined],
  ['https://app.example.com/cb#frag', /fragment/],
  ['https://app.example.com/cb#', /fragment/],
  ['https://user:pw@app.example.com/cb', /user name or password/],
  ['https://@app.example.com/cb', /user name or password/],
  ['com.example.app://user@host/cb', /user name or password/],
  ['http://app.example.com/cb', /http is allowed only on a loopback host/],
  ['http://localhost.evil.example/cb', /http is allowed only on a loopback host/],
  ['http://10.0.0.1/cb', /http is allowed only on a loopback host/],
  ['/relative/callback', /absolute URI/],
  ['app.example.com/callback', /absolute URI/],
  ['https:app.example.com/callback', /must name a host/],
  ['https:///callback', /must name a host/],
  ['http:\\\\127.0.0.1/cb', /must name a host/],
  ['javascript:alert(1)', /scheme "javascript" is not allowed/],
  ['data:text/html,hi', /scheme "data" is not allowed/],
  ['file:///etc/passwd', /scheme "file" is not allowed/],
  ['myapp:/callback', /scheme "myapp" is not allowed/],
  ['ftp://app.example.com/cb', /scheme "ftp" is not allowed/],
  [' https://app.example.com/cb', /printable ASCII/],
  ['https://app.example.com/c b', /printable ASCII/],
  ['https://app.example.com/\u00e9', /printable ASCII/],
  ['https://app.example.com/cb\n', /printable ASCII/],
  ['', /must not be empty/],
  [`https://app.example.com/${'a'.repeat(2000)}`, /longer than 2000/],
];

for (const [uri, expected] of validity) {
  test(`validateRedirectUri(${JSON.stringify(uri.slice(0, 60))}) ${expected === undefined ? 'accepts' : `refuses: ${expected.source}`}`, () => {
    const why = validateRedirectUri(uri);
    if (expected === undefined) assert.equal(why, undefined);
    else assert.match(why ?? '(accepted)', expected);
  });
}
