import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseHtu } from './htu.ts';

const NORMAL_FORMS: Array<[string, string]> = [
  ['https://server.example.com/token', 'https://server.example.com/token'],
  ['HTTPS://Server.Example.COM/token', 'https://server.example.com/token'],
  ['https://server.example.com:443/token', 'https://server.example.com/token'],
  ['http://server.example.com:80/token', 'http://server.example.com/token'],
  ['https://server.example.com:8443/token', 'https://server.example.com:8443/token'],
  ['https://server.example.com:80/token', 'https://server.example.com:80/token'],
  ['https://server.example.com/token?grant=x', 'https://server.example.com/token'],
  ['https://server.example.com/token#frag', 'https://server.example.com/token'],
  ['https://server.example.com/token?a=1#frag', 'https://server.example.com/token'],
  ['https://server.example.com', 'https://server.example.com/'],
  ['https://server.example.com?x', 'https://server.example.com/'],
  ['https://server.example.com/a/./b/../c', 'https://server.example.com/a/c'],
  ['https://server.example.com/a/%2e%2E/c', 'https://server.example.com/c'],
  ['https://server.example.com/%7Euser/%41%62', 'https://server.example.com/~user/Ab'],
  ['https://server.example.com/a%2fb/%c3%a9', 'https://server.example.com/a%2Fb/%C3%A9'],
  ['https://server.example.com/Token', 'https://server.example.com/Token'],
  ['https://[2001:DB8::1]:443/x', 'https://[2001:db8::1]/x'],
  ['https://127.0.0.1:8080/x', 'https://127.0.0.1:8080/x'],
];

for (const [input, expected] of NORMAL_FORMS) {
  test(`normal form of ${input}`, () => assert.equal(normaliseHtu(input), expected));
}

const REFUSED: Array<[string, RegExp]> = [
  ['/token', /not an absolute URI with a host/],
  ['server.example.com/token', /not an absolute URI with a host/],
  ['https:/server.example.com/token', /not an absolute URI with a host/],
  ['https:///server.example.com/token', /not an absolute URI with a host/],
  ['ftp://server.example.com/token', /scheme ftp is not http or https/],
  ['urn://server.example.com/token', /scheme urn is not http or https/],
  ['https://user:pw@server.example.com/token', /carries user information/],
  ['https://server.example.com/to ken', /characters RFC 3986 does not allow/],
  ['https://server.example.com/to\nken', /characters RFC 3986 does not allow/],
  ['https://server.example.com\\token', /characters RFC 3986 does not allow/],
  ['https://server.example.com/é', /characters RFC 3986 does not allow/],
  ['https://server.example.com/%zz', /"%" is not followed by two hex digits/],
  ['https://server.example.com:99999/', /host is not valid/],
  ['', /characters RFC 3986 does not allow/],
];

for (const [input, pattern] of REFUSED) {
  test(`refused: ${JSON.stringify(input)}`, () => assert.throws(() => normaliseHtu(input), (err: unknown) => err instanceof TypeError && pattern.test(err.message)));
}
