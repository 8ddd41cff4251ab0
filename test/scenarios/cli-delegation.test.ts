/**
 * The `mandate` program against a real server: directory users (password from stdin), mandates
 * granted, listed, shown and revoked, OAuth signing-key rotation, and bad input refused with a clear
 * message and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ISSUES, WIKI, startDelegationMandate } from '../support/delegation.ts';
import { cliFor, type CliRun } from '../support/cli.ts';
import type { TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';
const PASSWORD = 'correct horse battery staple 7';

describe('mandate CLI: users and mandates', () => {
  let m: TestMandate;
  const { run, ok } = cliFor(() => m);
  let userId: string;

  before(async () => {
    m = await startDelegationMandate();
  });
  after(() => m.close());

  it('adds a user with the password read from stdin, never from argv', async () => {
    const user = JSON.parse(await ok(['user', 'add', 'Alice', '--display-name', 'Alice Example', '--password-stdin', '--json'], `${PASSWORD}\n`));
    assert.equal(user.username, 'alice');
    assert.equal(user.display_name, 'Alice Example');
    assert.equal('password' in user || 'password_hash' in user, false);
    userId = user.id;
    const principal = await m.delegation.directory.authenticate('alice', PASSWORD);
    assert.equal(principal.subject, userId, 'the password from stdin, without its newline, signs in');

    const table = await ok(['user', 'list']);
    assert.match(table, /^ID\s+USERNAME\s+DISPLAY_NAME\s+DISABLED/);
    assert.match(table, new RegExp(`${userId}\\s+alice\\s+Alice Example\\s+false`));
  });

  it('refuses to add a user without a password source, or with an empty or weak one', async () => {
    for (const [args, input, message] of [
      [['user', 'add', 'bob'], '', /pipe it in with --password-stdin/],
      [['user', 'add', 'bob', '--password-stdin'], '', /stdin was empty/],
      [['user', 'add', 'bob', '--password-stdin'], 'line one\nline two\n', /single line/],
      [['user', 'add', 'bob', '--password-stdin'], 'bob\n', /ERR_BAD_REQUEST/],
      [['user', 'add', 'alice', '--password-stdin'], `${PASSWORD}\n`, /taken/],
    ] as const) {
      const res = await run([...args], input);
      assert.equal(res.status, 1, `${args.join(' ')}: ${res.stdout}`);
      assert.match(res.stderr, message);
    }
    assert.deepEqual((await m.delegation.directory.list()).map((u) => u.username), ['alice']);
  });

  it('sets a password from stdin, disables, enables and deletes a user', async () => {
    const carol = JSON.parse(await ok(['user', 'add', 'carol', '--password-stdin', '--json'], 'first password for carol 1\n'));
    await ok(['user', 'set-password', carol.id, '--password-stdin'], 'second password for carol 2\n');
    assert.equal((await m.delegation.directory.authenticate('carol', 'second password for carol 2')).subject, carol.id);
    await assert.rejects(m.delegation.directory.authenticate('carol', 'first password for carol 1'));

    assert.match(await ok(['user', 'disable', carol.id]), new RegExp(`disabled: ${carol.id}`));
    await assert.rejects(m.delegation.directory.authenticate('carol', 'second password for carol 2'), /disabled/);
    await ok(['user', 'enable', carol.id]);
    await m.delegation.directory.authenticate('carol', 'second password for carol 2');
    await ok(['user', 'delete', carol.id]);
    const gone = await run(['user', 'delete', carol.id]);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /ERR_NOT_FOUND/);
  });

  it('grants, lists, shows and revokes a mandate', async () => {
    const granted = JSON.parse(await ok([
      'mandates', 'grant', '--user', 'alice', '--agent', AGENT,
      '--scope', 'issues:read', '--scope', 'issues:comment', '--resource', ISSUES,
      '--ttl', '8h', '--max-depth', '1', '--constraints', '{"project":"infra"}', '--json',
    ]));
    assert.match(granted.id, /^mdt_/);
    assert.deepEqual(granted.principal, { issuer: m.issuer, subject: userId, name: 'Alice Example' });
    assert.equal(granted.agent, AGENT);
    assert.deepEqual(granted.scopes, ['issues:read', 'issues:comment']);
    assert.deepEqual(granted.resources, [ISSUES]);
    assert.deepEqual(granted.constraints, { project: 'infra' });
    assert.equal(granted.max_depth, 1);
    assert.equal(granted.origin, 'admin');
    const ttl = Date.parse(granted.expires_at) - Date.parse(granted.created_at);
    assert.ok(Math.abs(ttl - 8 * 3600_000) < 5_000, `8h lifetime, got ${ttl}ms`);

    // An external principal, through the `mandate` alias, with human output.
    const external = await ok([
      'mandate', 'grant', '--principal-issuer', 'https://login.example.com', '--principal-subject', '00u1ab', '--principal-name', 'Dana',
      '--agent', 'spiffe://example.org/agent/*', '--scope', 'wiki:read', '--resource', WIKI,
    ]);
    assert.match(external, /^id: mdt_/m);
    assert.match(external, /subject: 00u1ab/);

    const table = await ok(['mandates', 'list']);
    assert.match(table, /^ID\s+PRINCIPAL\s+AGENT\s+SCOPES\s+RESOURCES\s+STATUS\s+EXPIRES_AT/);
    assert.match(table, new RegExp(`${granted.id}\\s+Alice Example\\s+${AGENT}\\s+issues:read,issues:comment\\s+${ISSUES}\\s+active`));
    assert.match(table, /Dana\s+spiffe:\/\/example\.org\/agent\/\*\s+wiki:read/);

    const mine = JSON.parse(await ok(['mandates', 'list', '--user', 'ALICE', '--json']));
    assert.deepEqual(mine.map((x: { id: string }) => x.id), [granted.id]);
    const byAgent = JSON.parse(await ok(['mandates', 'list', '--agent', 'spiffe://example.org/agent/*', '--json']));
    assert.deepEqual(byAgent.map((x: { principal: { subject: string } }) => x.principal.subject), ['00u1ab']);
    const bySubject = JSON.parse(await ok(['mandates', 'list', '--principal-issuer', 'https://login.example.com', '--principal-subject', '00u1ab', '--json']));
    assert.equal(bySubject.length, 1);
    assert.equal(await ok(['mandates', 'list', '--status', 'revoked']), '(none)\n');

    const shown = await ok(['mandates', 'show', granted.id]);
    assert.match(shown, new RegExp(`^id: ${granted.id}$`, 'm'));
    assert.match(shown, /^status: active$/m);
    assert.match(shown, /project: infra/);

    const revoked = await ok(['mandates', 'revoke', granted.id]);
    assert.match(revoked, new RegExp(`^revoked ${granted.id} \\(Alice Example -> ${AGENT}\\) at \\d{4}-`));
    assert.equal((await m.delegation.mandates.get(granted.id))?.status, 'revoked');
    assert.equal(JSON.parse(await ok(['mandates', 'show', granted.id, '--json'])).status, 'revoked');
    const revokedList = JSON.parse(await ok(['mandates', 'list', '--status', 'revoked', '--json']));
    assert.deepEqual(revokedList.map((x: { id: string }) => x.id), [granted.id]);
    assert.ok(m.events.events.some((e) => e.type === 'mandate.revoked' && (e as { mandateId?: string }).mandateId === granted.id));
  });

  it('refuses bad mandate input with a clear message, a non-zero exit and nothing granted', async () => {
    const before = (await m.delegation.mandates.list({ limit: 500 })).length;
    const base = ['--agent', AGENT, '--scope', 'issues:read', '--resource', ISSUES];
    const cases: Array<[string, string[], RegExp]> = [
      ['unknown scope', ['--user', 'alice', '--agent', AGENT, '--scope', 'issues:delete', '--resource', ISSUES], /unknown scope "issues:delete" \(known: /],
      ['scope of another resource', ['--user', 'alice', '--agent', AGENT, '--scope', 'wiki:read', '--resource', ISSUES], /does not apply/],
      ['unknown resource', ['--user', 'alice', '--agent', AGENT, '--scope', 'issues:read', '--resource', 'https://elsewhere.example/'], /unknown resource/],
      ['wildcard inside the agent', ['--user', 'alice', '--agent', 'spiffe://example.org/*/bot', '--scope', 'issues:read', '--resource', ISSUES], /may only end in \/\*/],
      ['agent not a SPIFFE ID', ['--user', 'alice', '--agent', 'https://example.org/agent', '--scope', 'issues:read', '--resource', ISSUES], /agent "https:\/\/example\.org\/agent"/],
      ['missing principal', base, /name the principal: --user <username>, or --principal-issuer/],
      ['issuer without subject', ['--principal-issuer', 'https://login.example.com', ...base], /name the principal/],
      ['user and subject together', ['--user', 'alice', '--principal-subject', 'x', ...base], /cannot be used with/],
      ['unknown user', ['--user', 'mallory', ...base], /no user mallory in the directory/],
      ['bad ttl', ['--user', 'alice', ...base, '--ttl', 'forever'], /not a duration/],
      ['max depth not a number', ['--user', 'alice', ...base, '--max-depth', 'two'], /--max-depth "two" is not a whole number/],
      ['max depth too deep', ['--user', 'alice', ...base, '--max-depth', '99'], /max depth must be an integer from 0 to/],
      ['constraints not JSON', ['--user', 'alice', ...base, '--constraints', '{project:'], /--constraints is not valid JSON/],
      ['constraints not an object', ['--user', 'alice', ...base, '--constraints', '[1]'], /--constraints must be a JSON object/],
      ['no scope', ['--user', 'alice', '--agent', AGENT, '--resource', ISSUES], /required option '--scope <scope>' not specified/],
    ];
    const results = await Promise.all(cases.map(([, args]) => run(['mandates', 'grant', ...args])));
    cases.forEach(([name, , message], i) => {
      const res = results[i] as CliRun;
      assert.notEqual(res.status, 0, `${name}: exit status`);
      assert.match(res.stderr, message, name);
      assert.equal(res.stdout, '', name);
    });
    assert.equal((await m.delegation.mandates.list({ limit: 500 })).length, before);

    for (const [args, message] of [
      [['mandates', 'show', 'mdt_nope'], /no mandate mdt_nope \(ERR_NOT_FOUND\)/],
      [['mandates', 'revoke', 'mdt_nope'], /no mandate mdt_nope/],
      [['mandates', 'list', '--status', 'expired'], /argument 'expired' is invalid.*active, revoked/],
      [['mandates', 'list', '--user', 'mallory'], /no user mallory/],
    ] as const) {
      const res = await run([...args]);
      assert.notEqual(res.status, 0, args.join(' '));
      assert.match(res.stderr, message);
    }
  });

  it('rotates the OAuth access-token signing key in two steps', async () => {
    const first = JSON.parse(await ok(['key', 'rotate', 'oauth', '--json']));
    assert.equal(first.kind, 'oauth');
    assert.equal(first.phase, 'prepared');
    const second = JSON.parse(await ok(['key', 'rotate', 'oauth', '--json']));
    assert.deepEqual(second, { kind: 'oauth', phase: 'activated', key_id: first.key_id });
  });
});
