import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import type { Store } from '../store/store.ts';
import { verifyCheckpoint } from './checkpoint.ts';
import type { AuditEvent } from './event.ts';
import { AuditLog } from './log.ts';
import { leafHash, rootOf, verifyConsistency, verifyInclusion } from './merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from './note.ts';

const ORIGIN = 'example.org/mandate/audit';
const keys = generateNoteKey('example.org-audit');
const signer = parseSignerKey(keys.signerKey);
const verifier = parseVerifierKey(keys.verifierKey);

function event(n: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return { v: 1, time: new Date(Date.UTC(2026, 10, 24, 10, 0, 0, n)).toISOString(), type: 'gateway.decision', outcome: 'success', agent: `spiffe://example.org/agent/a${n % 3}`, principal: { issuer: 'https://sso.example', subject: `u${n % 5}` }, tool: 'add_comment', decision: { decision: n % 2 ? 'allow' : 'deny', policies: ['p'] }, replica: 'r1', ...extra };
}

describe('audit log', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mandate-audit-'));
    store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  });
  after(() => store.close());

  it('commits concurrent appends in batches, each index once, and the root covers every stored event', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const indices = await Promise.all(Array.from({ length: 2500 }, (_, n) => log.append(event(n)).then((r) => r.index)));
    assert.deepEqual([...indices].sort((a, b) => a - b), Array.from({ length: 2500 }, (_, i) => i));
    assert.equal(log.size, 2500);
    assert.equal(await store.auditSize(), 2500);
    const stored = await store.getAuditRecords(0, 2500);
    for (const r of stored) assert.deepEqual(Buffer.from(r.leafHash), leafHash(Buffer.from(r.event, 'utf8')));
    assert.deepEqual(log.root(), rootOf(stored.map((r) => Buffer.from(r.leafHash))));
    await log.close();
  });

  it('reopens where it left off, signs checkpoints, and proves inclusion and consistency', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const before = log.size;
    const oldNote = await log.checkpoint();
    const old = verifyCheckpoint(oldNote, [verifier], { expectedOrigin: ORIGIN }).checkpoint;
    assert.equal(old.size, before);
    const { index } = await log.append(event(9999, { type: 'mandate.revoked' }));
    assert.equal(index, before);
    const note = await log.checkpoint();
    const cp = verifyCheckpoint(note, [verifier], { expectedOrigin: ORIGIN }).checkpoint;
    assert.equal(cp.size, before + 1);
    const [record] = await store.getAuditRecords(index, index + 1);
    assert.ok(verifyInclusion(Buffer.from(record?.leafHash as Uint8Array), index, cp.size, await log.inclusionProof(index, cp.size), cp.rootHash));
    assert.ok(verifyInclusion(Buffer.from((await store.getAuditRecords(17, 18))[0]?.leafHash as Uint8Array), 17, cp.size, await log.inclusionProof(17, cp.size), cp.rootHash));
    assert.ok(verifyConsistency(old.size, cp.size, old.rootHash, cp.rootHash, await log.consistencyProof(old.size, cp.size)));
    assert.equal(await log.checkpoint(), note, 'no new checkpoint while nothing was appended');
    await log.close();
  });

  it('rejects a batch the store refuses, changes nothing, and goes on with the next', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const size = log.size;
    const failing = Object.create(store) as Store;
    let fail = true;
    failing.appendAuditRecords = (records) => (fail ? Promise.reject(new Error('disk full')) : store.appendAuditRecords(records));
    const flaky = await AuditLog.open({ store: failing, origin: ORIGIN, signer });
    await assert.rejects(flaky.append(event(1)), /disk full/);
    assert.equal(flaky.size, size);
    fail = false;
    assert.deepEqual(await flaky.append(event(2)), { index: size });
    await flaky.close();
    await log.close();
  });

  it('refuses an event with a bad time, and appends after close', async () => {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    await assert.rejects(log.append({ ...event(1), time: 'yesterday' }), /not an ISO 8601 time/);
    await log.close();
    await assert.rejects(log.append(event(1)), /closed/);
  });
});
