import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { DelegationConfig } from '../../config/types.ts';
import { isMandateError } from '../../errors.ts';
import { MemoryEventSink } from '../../observability/events.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { MandateRecord, Store } from '../../store/store.ts';
import { MANDATE_ID_PREFIX, mandateIsLive, Mandates, type GrantMandateInput } from './mandates.ts';

const ISSUER = 'https://mandate.example.org';
const ALICE = { issuer: ISSUER, subject: 'alice', name: 'Alice Example' };
const BOB = { issuer: ISSUER, subject: 'bob', name: 'Bob' };
/** Same subject as Alice at another identity provider: a different principal. */
const ALICE_ELSEWHERE = { issuer: 'https://idp.other.example', subject: 'alice', name: 'Alice Elsewhere' };
const TRIAGE = 'spiffe://example.org/agent/triage-bot';
const ISSUES = 'https://tools.example/mcp/issues';
const MAIL = 'https://tools.example/mcp/mail';
const T0 = new Date('2030-01-01T00:00:00Z');

const CONFIG: Pick<DelegationConfig, 'mandates' | 'scopes' | 'resources'> = {
  mandates: { defaultTtl: 3600, maxTtl: 86_400, defaultMaxDepth: 1 },
  scopes: { 'issues:read': 'Read issues', 'issues:write': 'Open and edit issues', 'mail:send': 'Send mail' },
  resources: [
    { uri: ISSUES, name: 'Issues', scopes: ['issues:read', 'issues:write'] },
    { uri: MAIL, name: 'Mail', scopes: ['mail:send'] },
  ],
};

interface Fixture {
  store: Store;
  mandates: Mandates;
  events: MemoryEventSink;
  clock: { now: Date };
  /** How many times onRevoked ran. */
  revokedCalls: { count: number };
}

async function fixture(t: TestContext, config: Pick<DelegationConfig, 'mandates' | 'scopes' | 'resources'> = CONFIG): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-mandates-'));
  const store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const events = new MemoryEventSink();
  const clock = { now: T0 };
  const revokedCalls = { count: 0 };
  const mandates = new Mandates({ store, config, events, now: () => clock.now, onRevoked: () => void revokedCalls.count++ });
  return { store, mandates, events, clock, revokedCalls };
}

function grantInput(over: Partial<GrantMandateInput> = {}): GrantMandateInput {
  return { principal: ALICE, agent: TRIAGE, scopes: ['issues:read'], resources: [ISSUES], origin: 'admin', ...over };
}

function badRequest(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isMandateError(err, 'ERR_BAD_REQUEST'), `expected ERR_BAD_REQUEST, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('Mandates.validate refuses bad grants, naming the problem', () => {
  const cases: Array<[name: string, over: Record<string, unknown>, pattern: RegExp]> = [
    ['no scope', { scopes: [] }, /a mandate needs at least one scope/],
    ['scope with a space', { scopes: ['issues read'] }, /scope "issues read" is not a valid scope token \(RFC 6749 §3\.3\)/],
    ['scope with a double quote', { scopes: ['issues:"read'] }, /is not a valid scope token/],
    ['scope with a backslash', { scopes: ['issues:\\read'] }, /is not a valid scope token/],
    ['scope with a non-ASCII letter', { scopes: ['issues:lire-é'] }, /is not a valid scope token/],
    ['empty scope', { scopes: [''] }, /scope "" is not a valid scope token/],
    ['scope of 129 characters', { scopes: ['s'.repeat(129)] }, /is not a valid scope token/],
    ['scope not a string', { scopes: [42] }, /scope 42 is not a valid scope token/],
    ['unknown scope', { scopes: ['issues:delete'] }, /unknown scope "issues:delete" \(known: issues:read, issues:write, mail:send\)/],
    ['no resource', { resources: [] }, /a mandate needs at least one resource/],
    ['relative resource', { resources: ['/mcp/issues'] }, /resource "\/mcp\/issues" is not an absolute URI \(RFC 8707 §2\)/],
    ['resource without a scheme', { resources: ['tools.example/mcp/issues'] }, /is not an absolute URI/],
    ['resource not a string', { resources: [{ uri: ISSUES }] }, /is not an absolute URI/],
    ['resource with a fragment', { resources: [`${ISSUES}#part`] }, /resource https:\/\/tools\.example\/mcp\/issues#part must not contain a fragment \(RFC 8707 §2\)/],
    ['unknown resource', { resources: ['https://tools.example/mcp/calendar'] },
      /unknown resource https:\/\/tools\.example\/mcp\/calendar \(known: https:\/\/tools\.example\/mcp\/issues, https:\/\/tools\.example\/mcp\/mail\)/],
    ['a known resource spelled differently', { resources: ['https://TOOLS.example/mcp/issues'] }, /unknown resource/],
    ['scope that applies to none of the resources', { scopes: ['mail:send'], resources: [ISSUES] }, /scope "mail:send" does not apply to any of the mandate's resources/],
    ['one of two scopes applies to none of the resources', { scopes: ['issues:read', 'mail:send'], resources: [ISSUES] }, /scope "mail:send" does not apply/],
    ['ttl over the maximum', { ttlSeconds: 86_401 }, /the mandate lifetime 86401s exceeds the maximum of 86400s \(delegation\.mandates\.max_ttl\)/],
    ['ttl 0', { ttlSeconds: 0 }, /the mandate lifetime must be a positive number of seconds/],
    ['negative ttl', { ttlSeconds: -60 }, /must be a positive number of seconds/],
    ['ttl NaN', { ttlSeconds: Number.NaN }, /must be a positive number of seconds/],
    ['ttl Infinity', { ttlSeconds: Number.POSITIVE_INFINITY }, /must be a positive number of seconds/],
    ['depth -1', { maxDepth: -1 }, /max depth must be an integer from 0 to 8/],
    ['depth 9', { maxDepth: 9 }, /max depth must be an integer from 0 to 8/],
    ['depth 1.5', { maxDepth: 1.5 }, /max depth must be an integer from 0 to 8/],
    ['depth NaN', { maxDepth: Number.NaN }, /max depth must be an integer from 0 to 8/],
    ['constraints an array', { constraints: [{ repository: 'acme/api' }] }, /constraints must be a JSON object/],
    ['constraints a string', { constraints: 'repository=acme/api' }, /constraints must be a JSON object/],
    ['constraints a number', { constraints: 7 }, /constraints must be a JSON object/],
    ['constraints too big', { constraints: { blob: 'x'.repeat(16 * 1024) } }, /constraints exceed 16384 bytes/],
    ['constraints too big in UTF-8 bytes, not characters', { constraints: { blob: 'é'.repeat(8 * 1024) } }, /constraints exceed 16384 bytes/],
    ['empty agent', { agent: '' }, /agent must be a SPIFFE ID or a pattern ending in \/\*/],
    ['agent with an inner wildcard', { agent: 'spiffe://example.org/a*/b' }, /may only end in \/\*; no other wildcards/],
    ['agent not a SPIFFE ID', { agent: 'https://example.org/agent/triage-bot' }, /agent "https:\/\/example\.org\/agent\/triage-bot": /],
    ['agent with an uppercase trust domain', { agent: 'spiffe://Example.org/agent/x' }, /agent "spiffe:\/\/Example\.org\/agent\/x": /],
    ['agent not a string', { agent: 42 }, /agent must be a SPIFFE ID/],
    ['missing principal', { principal: undefined }, /principal needs an issuer and a subject/],
    ['principal without an issuer', { principal: { issuer: '', subject: 'alice', name: 'Alice' } }, /principal needs an issuer and a subject/],
    ['principal without a subject', { principal: { issuer: ISSUER, subject: '', name: 'Alice' } }, /principal needs an issuer and a subject/],
  ];
  for (const [name, over, pattern] of cases) {
    it(name, async (t) => {
      const { mandates, store, events } = await fixture(t);
      const input = grantInput(over as Partial<GrantMandateInput>);
      assert.throws(() => mandates.validate(input), badRequest(pattern));
      await assert.rejects(mandates.grant(input, 'admin'), badRequest(pattern));
      assert.deepEqual(await store.listMandates({}), [], 'nothing is stored');
      assert.deepEqual(events.events, [], 'no event for a refused grant');
    });
  }

  it('with no configured scopes or resources, still refuses a resource with an empty fragment ("#")', async (t) => {
    const { mandates } = await fixture(t, { ...CONFIG, scopes: {}, resources: [] });
    assert.doesNotThrow(() => mandates.validate(grantInput({ scopes: ['anything'], resources: ['https://tools.example/anything'] })));
    // RFC 8707 §2: the resource "MUST NOT include a fragment component"; `https://x/#` has one, empty.
    assert.throws(() => mandates.validate(grantInput({ scopes: ['anything'], resources: ['https://tools.example/anything#'] })), badRequest(/must not contain a fragment/));
  });
});

describe('Mandates.validate accepts the limits and fills defaults', () => {
  it('fills lifetime, depth, constraints, name and client from defaults, and removes duplicates', async (t) => {
    const { mandates } = await fixture(t);
    const fields = mandates.validate({
      principal: { issuer: ISSUER, subject: 'alice', name: '' },
      agent: TRIAGE,
      scopes: ['issues:read', 'issues:write', 'issues:read'],
      resources: [ISSUES, ISSUES],
      origin: 'consent',
    });
    assert.deepEqual(fields, {
      principal: { issuer: ISSUER, subject: 'alice', name: 'alice' },
      agent: TRIAGE,
      scopes: ['issues:read', 'issues:write'],
      resources: [ISSUES],
      constraints: {},
      maxDepth: 1,
      origin: 'consent',
      clientId: null,
      expiresAt: new Date(T0.getTime() + 3600 * 1000),
    });
  });

  it('keeps what the grant names', async (t) => {
    const { mandates } = await fixture(t);
    const fields = mandates.validate(grantInput({
      agent: 'spiffe://example.org/agent/*', scopes: ['issues:read', 'mail:send'], resources: [ISSUES, MAIL],
      constraints: { repository: 'acme/api' }, ttlSeconds: 120, maxDepth: 3, clientId: 'https://client.example/app', origin: 'consent',
    }));
    assert.equal(fields.agent, 'spiffe://example.org/agent/*');
    assert.deepEqual(fields.principal, ALICE);
    assert.deepEqual(fields.constraints, { repository: 'acme/api' });
    assert.equal(fields.maxDepth, 3);
    assert.equal(fields.clientId, 'https://client.example/app');
    assert.deepEqual(fields.expiresAt, new Date(T0.getTime() + 120_000));
  });

  it('accepts the boundary values: ttl = max_ttl, depth 0 and 8, a 128-character scope, constraints of exactly 16384 bytes', async (t) => {
    const { mandates } = await fixture(t);
    assert.deepEqual(mandates.validate(grantInput({ ttlSeconds: 86_400 })).expiresAt, new Date(T0.getTime() + 86_400_000));
    assert.equal(mandates.validate(grantInput({ maxDepth: 0 })).maxDepth, 0);
    assert.equal(mandates.validate(grantInput({ maxDepth: 8 })).maxDepth, 8);
    const blob = 'x'.repeat(16 * 1024 - JSON.stringify({ blob: '' }).length);
    assert.equal(Buffer.byteLength(JSON.stringify({ blob })), 16 * 1024);
    assert.doesNotThrow(() => mandates.validate(grantInput({ constraints: { blob } })));
    const { mandates: open } = await fixture(t, { ...CONFIG, scopes: {}, resources: [] });
    assert.deepEqual(open.validate(grantInput({ scopes: ['s'.repeat(128)], resources: ['urn:example:anything'] })).scopes, ['s'.repeat(128)]);
  });

  it('treats null constraints as none', async (t) => {
    const { mandates } = await fixture(t);
    assert.deepEqual(mandates.validate(grantInput({ constraints: null as unknown as Record<string, unknown> })).constraints, {});
  });
});

describe('Mandates.grant', () => {
  it('stores an active mandate and emits mandate.granted', async (t) => {
    const { mandates, store, events } = await fixture(t);
    const m = await mandates.grant(grantInput({ scopes: ['issues:read', 'mail:send'], resources: [ISSUES, MAIL], constraints: { repository: 'acme/api' } }), 'admin:tok1');
    assert.match(m.id, new RegExp(`^${MANDATE_ID_PREFIX}[A-Za-z0-9_-]{22}$`));
    assert.equal(m.status, 'active');
    assert.deepEqual(m.createdAt, T0);
    assert.equal(m.revokedAt, null);
    assert.equal(m.revokedBy, null);
    assert.deepEqual(await store.getMandate(m.id), m, 'the store holds exactly what grant returned');
    assert.deepEqual(events.events, [{
      type: 'mandate.granted', outcome: 'success', actor: 'admin:tok1',
      mandateId: m.id, spiffeId: TRIAGE, principal: { issuer: ISSUER, subject: 'alice' },
      scopes: ['issues:read', 'mail:send'], resources: [ISSUES, MAIL], origin: 'admin', clientId: null,
      expiresAt: new Date(T0.getTime() + 3600_000).toISOString(), maxDepth: 1,
    }]);
    assert.equal(JSON.stringify(events.events).includes('Alice Example'), false, 'the display name is not in the event');
  });

  it('gives every mandate its own id', async (t) => {
    const { mandates } = await fixture(t);
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await mandates.grant(grantInput(), 'admin')).id);
    assert.equal(ids.size, 20);
  });

  it('describes known scopes and echoes unknown ones', async (t) => {
    const { mandates } = await fixture(t);
    assert.equal(mandates.describeScope('mail:send'), 'Send mail');
    assert.equal(mandates.describeScope('calendar:read'), 'calendar:read');
  });
});

describe('Mandates.revoke', () => {
  it('lets the owner revoke: status, store, revocation list, event and onRevoked', async (t) => {
    const { mandates, store, events, clock, revokedCalls } = await fixture(t);
    const m = await mandates.grant(grantInput(), 'admin');
    clock.now = new Date(T0.getTime() + 10_000);
    const revoked = await mandates.revoke(m.id, 'alice', { issuer: ISSUER, subject: 'alice' });
    assert.equal(revoked.status, 'revoked');
    assert.deepEqual(revoked.revokedAt, clock.now);
    assert.equal(revoked.revokedBy, 'alice');
    assert.deepEqual(await store.getMandate(m.id), revoked);
    const list = await store.listRevocations(0, 10);
    assert.equal(list.length, 1);
    assert.equal(list[0]?.kind, 'mandate');
    assert.equal(list[0]?.id, m.id);
    assert.deepEqual(list[0]?.expiresAt, m.expiresAt);
    assert.deepEqual(events.events.at(-1), {
      type: 'mandate.revoked', outcome: 'success', actor: 'alice', mandateId: m.id, spiffeId: TRIAGE,
      principal: { issuer: ISSUER, subject: 'alice' },
    });
    assert.equal(revokedCalls.count, 1);
  });

  it('lets an admin revoke without an owner', async (t) => {
    const { mandates, revokedCalls } = await fixture(t);
    const m = await mandates.grant(grantInput(), 'admin');
    assert.equal((await mandates.revoke(m.id, 'admin')).revokedBy, 'admin');
    assert.equal(revokedCalls.count, 1);
  });

  it("reports another principal's mandate as not found and leaves it active", async (t) => {
    const { mandates, store, events, revokedCalls } = await fixture(t);
    const m = await mandates.grant(grantInput(), 'admin');
    const before = events.events.length;
    for (const owner of [{ issuer: ISSUER, subject: 'bob' }, { issuer: ALICE_ELSEWHERE.issuer, subject: 'alice' }]) {
      await assert.rejects(mandates.revoke(m.id, owner.subject, owner), (err: unknown) => {
        assert.ok(isMandateError(err, 'ERR_NOT_FOUND'), String(err));
        assert.equal(err.message, `no mandate ${m.id}`, 'the same answer as for an unknown id');
        return true;
      });
    }
    assert.equal((await store.getMandate(m.id))?.status, 'active');
    assert.deepEqual(await store.listRevocations(0, 10), []);
    assert.equal(events.events.length, before);
    assert.equal(revokedCalls.count, 0);
  });

  it('reports an unknown mandate as not found', async (t) => {
    const { mandates, revokedCalls } = await fixture(t);
    await assert.rejects(mandates.revoke(`${MANDATE_ID_PREFIX}nope`, 'admin'), (err: unknown) => isMandateError(err, 'ERR_NOT_FOUND') && err.message === `no mandate ${MANDATE_ID_PREFIX}nope`);
    assert.equal(revokedCalls.count, 0);
  });

  it('revoking twice emits once, calls onRevoked once and keeps the first revocation', async (t) => {
    const { mandates, store, events, clock, revokedCalls } = await fixture(t);
    const m = await mandates.grant(grantInput(), 'admin');
    const first = await mandates.revoke(m.id, 'alice', { issuer: ISSUER, subject: 'alice' });
    clock.now = new Date(T0.getTime() + 60_000);
    const second = await mandates.revoke(m.id, 'admin');
    assert.deepEqual(second, first, 'the second call returns the mandate as the first revocation left it');
    assert.equal(events.events.filter((e) => e.type === 'mandate.revoked').length, 1);
    assert.equal(revokedCalls.count, 1);
    assert.equal((await store.listRevocations(0, 10)).length, 1);
  });

  it('two concurrent revocations of one mandate emit once and call onRevoked once', async (t) => {
    const { mandates, store, events, revokedCalls } = await fixture(t);
    const m = await mandates.grant(grantInput(), 'admin');
    const results = await Promise.all([mandates.revoke(m.id, 'admin'), mandates.revoke(m.id, 'alice', { issuer: ISSUER, subject: 'alice' })]);
    assert.ok(results.every((r) => r.status === 'revoked'));
    assert.equal((await store.listRevocations(0, 10)).length, 1, 'the store appends one revocation');
    assert.equal(events.events.filter((e) => e.type === 'mandate.revoked').length, 1, 'one mandate.revoked event');
    assert.equal(revokedCalls.count, 1, 'one onRevoked call');
  });
});

describe('Mandates.forAgent', () => {
  /** Grants one mandate per second so "newest first" is well defined. */
  async function grants(f: Fixture): Promise<Record<string, MandateRecord>> {
    const out: Record<string, MandateRecord> = {};
    const specs: Array<[string, Partial<GrantMandateInput>]> = [
      ['exact', {}],
      ['wildcard', { agent: 'spiffe://example.org/agent/*' }],
      ['bob', { principal: BOB }],
      ['elsewhere', { principal: ALICE_ELSEWHERE }],
      ['mailer', { agent: 'spiffe://example.org/agent/mailer' }],
      ['otherDomain', { agent: 'spiffe://other.example/agent/*' }],
      ['short', { ttlSeconds: 60 }],
      ['revoked', {}],
    ];
    for (const [name, over] of specs) {
      out[name] = await f.mandates.grant(grantInput(over), 'admin');
      f.clock.now = new Date(f.clock.now.getTime() + 1000);
    }
    await f.mandates.revoke((out.revoked as MandateRecord).id, 'admin');
    return out;
  }
  const ids = (list: MandateRecord[]): string[] => list.map((m) => m.id);

  it("returns the principal's live mandates naming the agent, newest first", async (t) => {
    const f = await fixture(t);
    const g = await grants(f);
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, TRIAGE)), ids([g.short, g.wildcard, g.exact] as MandateRecord[]));
  });

  it('matches the agent by pattern: only IDs below a wildcard path, never another trust domain', async (t) => {
    const f = await fixture(t);
    const g = await grants(f);
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, 'spiffe://example.org/agent/mailer')), ids([g.mailer, g.wildcard] as MandateRecord[]));
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, 'spiffe://example.org/agent/sub/deeper')), ids([g.wildcard] as MandateRecord[]));
    assert.deepEqual(await f.mandates.forAgent(ALICE, 'spiffe://example.org/agent'), []);
    assert.deepEqual(await f.mandates.forAgent(ALICE, 'spiffe://example.org/agentx/triage-bot'), []);
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, 'spiffe://other.example/agent/triage-bot')), ids([g.otherDomain] as MandateRecord[]));
    assert.deepEqual(await f.mandates.forAgent(ALICE, 'spiffe://evil.example/agent/triage-bot'), []);
  });

  it('keeps principals apart: same subject at another issuer is someone else', async (t) => {
    const f = await fixture(t);
    const g = await grants(f);
    assert.deepEqual(ids(await f.mandates.forAgent(BOB, TRIAGE)), ids([g.bob] as MandateRecord[]));
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE_ELSEWHERE, TRIAGE)), ids([g.elsewhere] as MandateRecord[]));
    assert.deepEqual(await f.mandates.forAgent({ issuer: ISSUER, subject: 'carol' }, TRIAGE), []);
  });

  it('drops mandates once they expire', async (t) => {
    const f = await fixture(t);
    const g = await grants(f);
    const short = g.short as MandateRecord;
    f.clock.now = new Date(short.expiresAt.getTime() - 1);
    assert.ok(ids(await f.mandates.forAgent(ALICE, TRIAGE)).includes(short.id));
    f.clock.now = short.expiresAt;
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, TRIAGE)), ids([g.wildcard, g.exact] as MandateRecord[]));
    f.clock.now = new Date((g.wildcard as MandateRecord).expiresAt.getTime() - 1);
    assert.deepEqual(ids(await f.mandates.forAgent(ALICE, TRIAGE)), ids([g.wildcard] as MandateRecord[]), 'the older exact mandate expired first');
    f.clock.now = (g.wildcard as MandateRecord).expiresAt;
    assert.deepEqual(await f.mandates.forAgent(ALICE, TRIAGE), [], 'every mandate has expired by now');
  });

  it('narrows to the named mandate, and only when it is live, Alice\'s and names the agent', async (t) => {
    const f = await fixture(t);
    const g = await grants(f);
    const one = async (id: string, principal = ALICE, agent = TRIAGE): Promise<string[]> => ids(await f.mandates.forAgent(principal, agent, id));
    assert.deepEqual(await one((g.exact as MandateRecord).id), [(g.exact as MandateRecord).id]);
    assert.deepEqual(await one((g.wildcard as MandateRecord).id), [(g.wildcard as MandateRecord).id]);
    assert.deepEqual(await one((g.bob as MandateRecord).id), [], "Bob's mandate is not Alice's");
    assert.deepEqual(await one((g.elsewhere as MandateRecord).id), [], 'another issuer');
    assert.deepEqual(await one((g.mailer as MandateRecord).id), [], 'names another agent');
    assert.deepEqual(await one((g.revoked as MandateRecord).id), [], 'revoked');
    assert.deepEqual(await one(`${MANDATE_ID_PREFIX}unknown`), [], 'unknown');
    f.clock.now = (g.short as MandateRecord).expiresAt;
    assert.deepEqual(await one((g.short as MandateRecord).id), [], 'expired');
  });

  it('mandateIsLive: active and not yet expired', () => {
    const m = { status: 'active', expiresAt: new Date(T0.getTime() + 1000) } as MandateRecord;
    assert.equal(mandateIsLive(m, T0), true);
    assert.equal(mandateIsLive(m, new Date(T0.getTime() + 1000)), false);
    assert.equal(mandateIsLive({ ...m, status: 'revoked' }, T0), false);
  });
});

describe('Mandates.sweepExpired', () => {
  it('records mandate.expired once per mandate, after its expiry, and never for a revoked one', async (t) => {
    const f = await fixture(t);
    const short = await f.mandates.grant(grantInput({ ttlSeconds: 60 }), 'admin');
    const long = await f.mandates.grant(grantInput({ ttlSeconds: 7200 }), 'admin');
    const revoked = await f.mandates.grant(grantInput({ ttlSeconds: 60 }), 'admin');
    await f.mandates.revoke(revoked.id, 'admin');
    const expiredIds = () => f.events.events.filter((e) => e.type === 'mandate.expired').map((e) => e.mandateId);

    assert.equal(await f.mandates.sweepExpired(), 0, 'first sweep starts now: nothing has expired');
    f.clock.now = new Date(T0.getTime() + 60_000);
    assert.equal(await f.mandates.sweepExpired(), 1);
    assert.deepEqual(expiredIds(), [short.id]);
    f.clock.now = new Date(T0.getTime() + 3_600_000);
    assert.equal(await f.mandates.sweepExpired(), 0, 'already recorded');
    f.clock.now = new Date(T0.getTime() + 7_200_000);
    assert.equal(await f.mandates.sweepExpired(), 1);
    assert.deepEqual(expiredIds(), [short.id, long.id]);
    const event = f.events.events.find((e) => e.type === 'mandate.expired');
    assert.deepEqual(event?.principal, { issuer: ALICE.issuer, subject: ALICE.subject });
    assert.equal(event?.spiffeId, TRIAGE);
  });
});
