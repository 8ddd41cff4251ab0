// An audit writer thread that dies, instead of committing, on a batch whose first event is of type
// `test.die` (audit-thread.test.ts). Anything else goes to the real writer thread.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
parentPort.on('message', (request) => {
  if (request.op === 'append' && request.records[0]?.type === 'test.die') process.exit(3);
});
await import('../../src/store/sqlite/audit-thread-worker.ts');
