// Worker threads start without the parent's loaders on Node 20: register tsx, then load the TS worker.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
