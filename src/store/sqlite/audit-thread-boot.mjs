// Entry of the audit writer thread (audit-thread.ts). A worker thread does not inherit the module
// loader its parent registered, so it registers tsx's before loading the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./audit-thread-worker.ts');
