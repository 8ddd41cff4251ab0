/**
 * The audit trail in a running Mandate: every component writes through it (attestation, SVID
 * issuance, mandates, token exchange and its refusals, admin actions), a token is handed out only
 * once its record is durable, and the admin API's queries, checkpoints, proofs and export verify
 * offline against the published key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DpopSigner } from '../../src/sdk/agent/dpop.ts';
import { parseVerifierKey } from '../../src/audit/note.ts';
import { verifyConsistencyBundle, verifyExport, verifyProofBundle } from '../../src/audit/verify.ts';
import { enrolAgent, ISSUES, mandateExchange, oauthPost, startDelegationMandate, type EnrolledAgent } from '../support/delegation.ts';
import type { TestMandate } from '../support/mandate.ts';

const AGENT = 'spiffe://example.org/agent/triage-bot';

interface Listed { index: number; event: Record<string, any> }

describe('audit trail of a running Mandate', () => {
  let m: TestMandate;
  let agent: EnrolledAgent;
  let mandateId: string;
  let verifiers: ReturnType<typeof parseVerifierKey>[];
  let verifierKey: string;
  let aliceId: string;

  const events = async (query: Record<string, string> = {}): Promise<Listed[]> => {
    const res = await m.admin('GET', `/admin/v1/audit/events?${new URLSearchParams({ limit: '1000', ...query })}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.events;
  };

  before(async () => {
    m = await startDelegationMandate();
    const user = await m.admin('POST', '/admin/v1/users', { username: 'alice', password: 'a long enough password 1' });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    aliceId = user.body.id;
    agent = await enrolAgent(m, AGENT);
    const granted = await m.admin('POST', '/admin/v1/mandates', { username: 'alice', agent: AGENT, scopes: ['issues:read'], resources: [ISSUES] });
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    mandateId = granted.body.id;
    const key = await m.admin('GET', '/admin/v1/audit/key');
    assert.equal(key.status, 200);
    assert.equal(key.body.origin, 'example.org/mandate/audit');
    verifierKey = key.body.verifier_key;
    verifiers = [parseVerifierKey(verifierKey)];
  });
  after(() => m?.close());

  it('records attestation, SVID issuance, the mandate and admin actions with their fields', async () => {
    const all = await events();
    const types = all.map((e) => e.event.type);
    for (const type of ['admin.entry.create', 'attestation.succeeded', 'svid.x509.issued', 'mandate.granted', 'admin.mandate.create']) {
      assert.ok(types.includes(type), `${type} in ${types.join(', ')}`);
    }
    assert.deepEqual(all.map((e) => e.index), all.map((_, i) => i), 'indices are contiguous from 0');
    const granted = all.find((e) => e.event.type === 'mandate.granted')?.event;
    assert.equal(granted?.v, 1);
    assert.equal(granted?.agent, AGENT);
    assert.equal(granted?.mandateId, mandateId);
    assert.equal(granted?.principal.subject, aliceId);
    assert.equal(typeof granted?.replica, 'string');
    assert.ok(!Number.isNaN(Date.parse(granted?.time)));
  });

  it('records a token exchange before answering, with principal, mandate and chain', async () => {
    const signer = await DpopSigner.generate();
    const res = await oauthPost(m.url, mandateExchange(mandateId, await agent.jwtSvid([m.issuer]), { resource: ISSUES }), { dpop: signer });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    // No waiting: the record exists when the token arrives.
    const exchanged = await events({ type: 'token.exchanged', mandate: mandateId });
    assert.equal(exchanged.length, 1);
    const e = exchanged[0]?.event;
    assert.equal(e?.agent, AGENT);
    assert.deepEqual(e?.chain, [AGENT]);
    assert.equal(e?.resource, ISSUES);
    assert.equal(e?.principal.subject, aliceId);
    assert.ok(!JSON.stringify(exchanged).includes(res.body.access_token), 'the token itself is never recorded');

    const refused = await oauthPost(m.url, mandateExchange('mdt_unknown', await agent.jwtSvid([m.issuer])), { dpop: signer });
    assert.equal(refused.status, 400);
    const refusals = await events({ type: 'token.refused' });
    assert.equal(refusals.at(-1)?.event.outcome, 'failure');
    assert.equal(refusals.at(-1)?.event.result.error, 'invalid_request');
  });

  it('filters by agent, principal and time, pages with after, and refuses bad parameters', async () => {
    const byAgent = await events({ agent: AGENT });
    assert.ok(byAgent.length > 0 && byAgent.every((e) => e.event.agent === AGENT));
    const byPrincipal = await events({ principal_subject: aliceId });
    assert.ok(byPrincipal.length > 0 && byPrincipal.every((e) => e.event.principal?.subject === aliceId));
    assert.deepEqual(await events({ since: '2999-01-01T00:00:00Z' }), []);
    const page = await m.admin('GET', '/admin/v1/audit/events?limit=2');
    assert.equal(page.body.events.length, 2);
    assert.equal(page.body.next_after, page.body.events[1].index);
    const next = await m.admin('GET', `/admin/v1/audit/events?limit=2&after=${page.body.next_after}`);
    assert.equal(next.body.events[0].index, page.body.next_after + 1);
    for (const bad of ['limit=0', 'limit=5000', 'after=-7', 'after=1.5', 'since=yesterday', `agent=${'x'.repeat(3000)}`]) {
      const res = await m.admin('GET', `/admin/v1/audit/events?${bad}`);
      assert.equal(res.status, 400, bad);
      assert.equal(res.body.error, 'ERR_BAD_REQUEST');
    }
    assert.equal((await m.call('GET', '/admin/v1/audit/events')).status, 401, 'admin only');
  });

  it('signs checkpoints and serves inclusion and consistency proofs that verify offline', async () => {
    const first = await m.admin('POST', '/admin/v1/audit/checkpoint');
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const latest = await m.admin('GET', '/admin/v1/audit/checkpoint');
    assert.equal(latest.body.size, first.body.size);
    const proof = await m.admin('GET', '/admin/v1/audit/proof/inclusion?index=1');
    assert.equal(proof.status, 200, JSON.stringify(proof.body));
    assert.equal(verifyProofBundle(proof.body, { verifiers }).ok, true);
    const forged = { ...proof.body, event: proof.body.event.replace('"success"', '"failure"') };
    assert.equal(verifyProofBundle(forged, { verifiers }).ok, false);

    await m.admin('POST', '/admin/v1/entries', { spiffe_id: 'spiffe://example.org/agent/another' });
    const second = await m.admin('POST', '/admin/v1/audit/checkpoint');
    assert.ok(second.body.size > first.body.size);
    const consistency = await m.admin('GET', `/admin/v1/audit/proof/consistency?from=${first.body.size}`);
    assert.equal(consistency.status, 200, JSON.stringify(consistency.body));
    assert.equal(verifyConsistencyBundle(consistency.body, { verifiers }).ok, true);

    assert.equal((await m.admin('GET', '/admin/v1/audit/proof/inclusion?index=999999')).status, 404);
    assert.equal((await m.admin('GET', '/admin/v1/audit/proof/inclusion?index=x')).status, 400);
    assert.equal((await m.admin('GET', '/admin/v1/audit/proof/consistency?from=999999')).status, 404);
    assert.equal((await m.admin('GET', '/admin/v1/audit/checkpoint?size=999999')).status, 404);
  });

  it('exports the whole log as JSON Lines that verify offline', async () => {
    await m.admin('POST', '/admin/v1/audit/checkpoint');
    const res = await fetch(`${m.url}/admin/v1/audit/export`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/x-ndjson/);
    const lines = (await res.text()).split('\n').filter((l) => l.length > 0);
    const report = await verifyExport(lines, { verifiers });
    assert.equal(report.ok, true, report.problems.join('; '));
    assert.ok(report.events > 10 && report.checkpoints >= 2);
    assert.equal((await m.admin('GET', '/admin/v1/audit/export?from=5&to=2')).status, 400);
  });

  it('keeps the log across a restart and goes on from where it was', async () => {
    const before = (await m.admin('GET', '/admin/v1/audit/key')).body.size;
    const { dataDir, adminToken } = m;
    await m.close();
    const { startTestMandate } = await import('../support/mandate.ts');
    const { delegationYaml } = await import('../support/delegation.ts');
    m = await startTestMandate({ dataDir, yaml: delegationYaml() });
    m.adminToken = adminToken; // printed on the first start only
    const all = await events({ after: String(before - 2) });
    assert.ok(all.length >= 1);
    assert.equal(all[0]?.index, before - 1);
    // Closing signed a last checkpoint of everything written.
    const cp = await m.admin('GET', '/admin/v1/audit/checkpoint');
    assert.ok(cp.body.size >= before);
    assert.equal((await m.admin('GET', '/admin/v1/audit/key')).body.verifier_key, verifierKey, 'the same signing key, from the store');
  });
});
