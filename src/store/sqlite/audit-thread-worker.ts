/**
 * The audit writer thread's side (see audit-thread.ts): one connection to the SQLite file, one
 * SqliteAuditWriter, each append answered after its commit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditThreadReply, AuditThreadRequest } from './audit-thread.ts';
import { SqliteAuditWriter } from './audit-writer.ts';
import { openDatabase, toStoreError } from './database.ts';

const port = parentPort;
if (!port) throw new Error('audit-thread-worker runs as a worker thread');
const reply = (message: AuditThreadReply) => port.postMessage(message);

let db: ReturnType<typeof openDatabase>;
try {
  db = openDatabase((workerData as { path: string }).path, { writesAuditLog: true });
} catch (err) {
  const e = toStoreError('open the audit writer connection', err);
  reply({ ready: false, error: { code: e.code, message: e.message } });
  throw e;
}
const writer = new SqliteAuditWriter(db);

port.on('message', (request: AuditThreadRequest) => {
  if (request.op === 'close') {
    writer.close();
    db.close();
    reply({ id: request.id, ok: true });
    port.close();
    return;
  }
  try {
    writer.append(request.records);
    reply({ id: request.id, ok: true });
  } catch (err) {
    const e = toStoreError('appendAuditRecords', err);
    reply({ id: request.id, ok: false, error: { code: e.code, message: e.message } });
  }
});
reply({ ready: true });
