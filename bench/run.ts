/** `npm run bench`: every benchmark, each writing bench/results/<name>.json. */
import { runIdentityBench } from './identity.bench.ts';

await runIdentityBench();
