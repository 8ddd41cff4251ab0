/** `npm run bench`: every benchmark, each writing bench/results/<name>.json. */
import { runAuditBench } from './audit.bench.ts';
import { runDelegationBench } from './delegation.bench.ts';
import { runGatewayBench } from './gateway.bench.ts';
import { runIdentityBench } from './identity.bench.ts';
import { runPolicyBench } from './policy.bench.ts';

await runIdentityBench();
await runDelegationBench();
await runPolicyBench();
await runAuditBench();
await runGatewayBench();
