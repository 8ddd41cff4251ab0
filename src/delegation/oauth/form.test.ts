import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isOAuthError, type OAuthErrorCode } from './errors.ts';
import { OAuthParams, parseForm } from './form.ts';

const LIMIT = 16 * 1024;

function params(query: string): OAuthParams {
  return new OAuthParams(new URLSearchParams(query));
}

function refused(code: OAuthErrorCode, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isOAuthError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.status, 400);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('OAuthParams', () => {
  it('refuses a repeated parameter, naming it', () => {
    for (const name of ['grant_type', 'scope', 'subject_token', 'client_id', 'code_verifier', 'mandate_id']) {
      assert.throws(() => params(`${name}=a&${name}=b`), refused('invalid_request', new RegExp(`parameter ${name} is repeated`)), name);
      assert.throws(() => params(`${name}=a&${name}=a`), refused('invalid_request', /is repeated/), `${name} with the same value twice`);
    }
  });

  it('allows resource and audience to repeat (RFC 8707, RFC 8693)', () => {
    const p = params('resource=https://a.example/mcp&resource=https://b.example/mcp&audience=x&audience=y&grant_type=g');
    assert.deepEqual(p.all('resource'), ['https://a.example/mcp', 'https://b.example/mcp']);
    assert.deepEqual(p.all('audience'), ['x', 'y']);
    assert.equal(p.get('grant_type'), 'g');
  });

  it('treats an empty value as absent', () => {
    const p = params('scope=&client_id=&resource=&audience=');
    assert.equal(p.get('scope'), undefined);
    assert.equal(p.scopes(), undefined);
    assert.equal(p.get('client_id'), undefined);
    assert.deepEqual(p.all('resource'), []);
    assert.deepEqual(p.all('audience'), []);
    assert.throws(() => p.require('client_id'), refused('invalid_request', /^parameter client_id is required$/));
    assert.throws(() => p.require('code', 'for grant_type=authorization_code'), refused('invalid_request', /^parameter code is required for grant_type=authorization_code$/));
    assert.equal(params('client_id').get('client_id'), undefined, 'a name without = is empty too');
  });

  it('does not count empty values as repeats, and drops them from lists', () => {
    assert.deepEqual(params('resource=&resource=https://a.example/mcp&resource=').all('resource'), ['https://a.example/mcp']);
    assert.equal(params('grant_type=g&grant_type=').get('grant_type'), 'g');
  });

  it('an empty value before the real one is absent, not a replacement of it (RFC 6749 §3.1)', () => {
    // `scope=&scope=issues:read` passes the repeat check because the empty value counts as absent,
    // so the request is `scope=issues:read`.
    const p = params('scope=&scope=issues:read');
    assert.equal(p.get('scope'), 'issues:read');
    assert.equal(p.require('scope'), 'issues:read');
    assert.deepEqual(p.scopes(), ['issues:read']);
  });

  it('returns absent for parameters never sent', () => {
    const p = params('grant_type=g');
    assert.equal(p.get('scope'), undefined);
    assert.deepEqual(p.all('resource'), []);
    assert.equal(p.require('grant_type'), 'g');
  });

  it(`accepts values of ${LIMIT} characters and refuses longer ones, naming the parameter`, () => {
    const ok = 'a'.repeat(LIMIT);
    assert.equal(params(`subject_token=${ok}`).get('subject_token'), ok);
    const long = 'a'.repeat(LIMIT + 1);
    for (const query of [`subject_token=${long}`, `resource=https://a.example/mcp&resource=${long}`, `audience=${long}`]) {
      const name = query.split('=')[0] === 'resource' ? 'resource' : (query.split('=')[0] as string);
      assert.throws(() => params(query), refused('invalid_request', new RegExp(`parameter ${name} is longer than ${LIMIT} characters`)), name);
    }
    // the limit is on the decoded value, not on its percent-encoding
    assert.equal(params(`x=${'%41'.repeat(LIMIT)}`).get('x'), 'A'.repeat(LIMIT));
    assert.throws(() => params(`x=${'%41'.repeat(LIMIT + 1)}`), refused('invalid_request', /parameter x is longer/));
  });

  it('refuses an over-long value even when it is empty-repeated elsewhere', () => {
    assert.throws(() => params(`scope=&scope=${'s'.repeat(LIMIT + 1)}`), refused('invalid_request', /parameter scope is longer/));
  });

  describe('scopes()', () => {
    const good: Array<[string, string[]]> = [
      ['issues:read', ['issues:read']],
      ['issues:read issues:write', ['issues:read', 'issues:write']],
      ['issues:read  issues:write ', ['issues:read', 'issues:write']],
      ['issues:read issues:read', ['issues:read']],
      ['!#[]~', ['!#[]~']],
      ['https://tools.example/scope/x?y=1', ['https://tools.example/scope/x?y=1']],
    ];
    for (const [scope, expected] of good) {
      it(`${JSON.stringify(scope)} -> ${JSON.stringify(expected)}`, () => {
        assert.deepEqual(params(new URLSearchParams({ scope }).toString()).scopes(), expected);
      });
    }

    const bad: Array<[string, string]> = [
      ['double quote', 'issues:"read'],
      ['backslash', 'issues:\\read'],
      ['tab', 'issues:read\tissues:write'],
      ['newline', 'issues:read\nissues:write'],
      ['NUL', 'issues:read\u0000'],
      ['DEL', 'issues:read\u007f'],
      ['non-ASCII letter', 'issues:lire-é'],
      ['non-breaking space', 'issues:read\u00a0issues:write'],
    ];
    for (const [name, scope] of bad) {
      it(`refuses a scope with a ${name} as invalid_scope`, () => {
        const p = params(new URLSearchParams({ scope }).toString());
        assert.throws(() => p.scopes(), refused('invalid_scope', /scope contains characters RFC 6749 §3.3 does not allow/));
      });
    }
  });
});

describe('parseForm over real HTTP', () => {
  let server: Server;
  let port: number;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const p = parseForm(req, Buffer.concat(chunks));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ grant_type: p.get('grant_type') ?? null, x: p.get('x') ?? null, resource: p.all('resource') }));
        } catch (err) {
          if (!isOAuthError(err)) throw err;
          res.writeHead(err.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(err.toJSON()));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function post(body: Buffer | string, contentType: string | undefined): Promise<{ status: number; json: Record<string, unknown> }> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const headers: Record<string, string | number> = { 'content-length': bytes.length };
    if (contentType !== undefined) headers['content-type'] = contentType;
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/oauth/token', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(bytes);
    });
  }

  const FORM = 'application/x-www-form-urlencoded';

  it('parses a form-encoded body, with or without a charset, in any letter case', async () => {
    for (const type of [FORM, `${FORM}; charset=UTF-8`, 'Application/X-WWW-Form-URLEncoded', ` ${FORM} ;charset=utf-8`]) {
      const { status, json } = await post('grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=https%3A%2F%2Fa.example%2Fmcp&x=caf%C3%A9', type);
      assert.equal(status, 200, type);
      assert.deepEqual(json, { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', x: 'café', resource: ['https://a.example/mcp'] }, type);
    }
  });

  const wrongTypes: Array<[string | undefined, RegExp]> = [
    [undefined, /must be application\/x-www-form-urlencoded \(got none\)/],
    ['', /\(got none\)/],
    ['application/json', /\(got application\/json\)/],
    ['text/plain', /\(got text\/plain\)/],
    ['multipart/form-data; boundary=x', /\(got multipart\/form-data\)/],
    [`${FORM}-evil`, /\(got application\/x-www-form-urlencoded-evil\)/],
    [`x${FORM}`, /must be application\/x-www-form-urlencoded/],
  ];
  for (const [type, pattern] of wrongTypes) {
    it(`refuses content type ${JSON.stringify(type) ?? 'absent'}`, async () => {
      const { status, json } = await post('grant_type=g', type);
      assert.equal(status, 400);
      assert.equal(json.error, 'invalid_request');
      assert.match(String(json.error_description), pattern);
    });
  }

  const invalidUtf8: Array<[string, Buffer]> = [
    ['a lone 0xff byte', Buffer.concat([Buffer.from('grant_type=g&x='), Buffer.from([0xff])])],
    ['a truncated two-byte sequence', Buffer.concat([Buffer.from('x='), Buffer.from([0xc3])])],
    ['an overlong encoding of /', Buffer.concat([Buffer.from('x='), Buffer.from([0xc0, 0xaf])])],
    ['a UTF-16 surrogate encoded in UTF-8', Buffer.concat([Buffer.from('x='), Buffer.from([0xed, 0xa0, 0x80])])],
  ];
  for (const [name, body] of invalidUtf8) {
    it(`refuses a body with ${name} (invalid UTF-8)`, async () => {
      const { status, json } = await post(body, FORM);
      assert.equal(status, 400);
      assert.deepEqual(json, { error: 'invalid_request', error_description: 'the request body is not valid UTF-8' });
    });
  }

  it('refuses percent-encoded bytes that are not UTF-8, instead of turning them into U+FFFD', async () => {
    // `%FF` and `%FE` would otherwise both decode to the same value "\uFFFD".
    for (const body of ['x=%FF', 'x=%C3', 'x=a%C0%AFb']) {
      const { status, json } = await post(body, FORM);
      assert.equal(status, 400, body);
      assert.equal(json.error, 'invalid_request', body);
      assert.match(String(json.error_description), /UTF-8/, body);
    }
  });

  it('applies the parameter rules to the parsed body', async () => {
    const repeated = await post('grant_type=a&grant_type=b', FORM);
    assert.equal(repeated.status, 400);
    assert.deepEqual(repeated.json, { error: 'invalid_request', error_description: 'parameter grant_type is repeated (RFC 6749 §3.1)' });
    const long = await post(`x=${'a'.repeat(LIMIT + 1)}`, FORM);
    assert.equal(long.status, 400);
    assert.match(String(long.json.error_description), /parameter x is longer than 16384 characters/);
    const empty = await post('grant_type=&x=1', FORM);
    assert.deepEqual(empty.json, { grant_type: null, x: '1', resource: [] });
  });
});

describe('parseForm keeps literal non-ASCII text', () => {
  it('accepts UTF-8 characters next to percent-encoded UTF-8', () => {
    const req = { headers: { 'content-type': 'application/x-www-form-urlencoded' } } as never;
    const params = parseForm(req, Buffer.from('name=caf%C3%A9+é&city=Zürich', 'utf8'));
    assert.equal(params.get('name'), 'café é');
    assert.equal(params.get('city'), 'Zürich');
  });
});
