import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { leafHash } from '../../audit/merkle.ts';
import { isMandateError } from '../../errors.ts';
import type { AuditRecord } from '../store.ts';
import { AuditWriterThread } from './audit-thread.ts';
import { openSqliteStore } from './sqlite-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'mandate-audit-thread-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `log-${++files}.db`);

function records(first: number, count: number, type = 'test.event'): AuditRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const event = JSON.stringify({ type, n: first + i });
    return {
      index: first + i, event, leafHash: leafHash(Buffer.from(event)), time: new Date(1_700_000_000_000 + i), type,
      agent: 'spiffe://example.org/agent/a', principalIssuer: 'https://idp.example', principalSubject: 'alice',
      mandateId: null, tool: null, decision: null, traceId: null,
    };
  });
}

describe('the SQLite audit writer thread', () => {
  it('commits on its own connection: the store reads what it wrote, and another process would too', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path });
    await store.appendAuditRecords(records(0, 3));
    await store.appendAuditRecords(records(3, 2));
    assert.equal(await store.auditSize(), 5);
    await store.close();
    const again = await openSqliteStore({ path });
    assert.deepEqual((await again.getAuditRecords(0, 5)).map((r) => r.index), [0, 1, 2, 3, 4]);
    assert.equal((await again.queryAuditRecords({ principalSubject: 'alice' })).length, 5);
    await again.close();
  });

  it('answers a batch that does not continue the log with ERR_CONFLICT, writing nothing', async () => {
    const store = await openSqliteStore({ path: freshPath() });
    await store.appendAuditRecords(records(0, 2));
    await assert.rejects(store.appendAuditRecords(records(5, 2)), (err) => isMandateError(err, 'ERR_CONFLICT') && /expected the batch to start at index 2/.test(err.message));
    assert.equal(await store.auditSize(), 2);
    await store.close();
  });

  it('refuses a malformed batch before sending it to the thread', async () => {
    const store = await openSqliteStore({ path: freshPath() });
    const bad = records(0, 1).map((r) => ({ ...r, leafHash: new Uint8Array(5) }));
    await assert.rejects(store.appendAuditRecords(bad), (err) => isMandateError(err, 'ERR_INTERNAL') && /32 bytes/.test(err.message));
    await store.close();
  });

  it('lets the batches in flight finish when the store closes', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path });
    const appends = Array.from({ length: 20 }, (_, b) => store.appendAuditRecords(records(b * 10, 10)));
    const closed = store.close();
    await Promise.all(appends);
    await closed;
    const again = await openSqliteStore({ path });
    assert.equal(await again.auditSize(), 200);
    await again.close();
  });

  it('fails what was in flight when the thread dies, and starts a new thread for the next batch', async () => {
    const path = freshPath();
    await (await openSqliteStore({ path })).close(); // the schema
    const thread = await AuditWriterThread.start(path, { entry: new URL('../../../test/support/audit-thread-dies.mjs', import.meta.url) });
    await thread.append(records(0, 2));
    await assert.rejects(thread.append(records(2, 1, 'test.die')), (err) => isMandateError(err, 'ERR_STORE') && /exited with code 3.*may not be durable/.test(err.message));
    await thread.append(records(2, 3));
    await thread.close();
    await assert.rejects(thread.append(records(5, 1)), (err) => isMandateError(err, 'ERR_STORE') && /closed/.test(err.message));
    const store = await openSqliteStore({ path });
    assert.equal(await store.auditSize(), 5);
    await store.close();
  });

  it('names the file when the thread cannot open it', async () => {
    const path = join(dir, 'missing', 'log.db\0');
    await assert.rejects(AuditWriterThread.start(path), (err) => isMandateError(err, 'ERR_STORE') && err.message.includes('open') && err.message.includes('missing'));
  });
});
