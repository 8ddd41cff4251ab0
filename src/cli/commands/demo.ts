/**
 * `mandate demo` (`npm run demo`): the demo agent against the instance `npm start` runs
 * (src/cli/demo-agent.ts says what it does, step by step).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { runDemoAgent } from '../demo-agent.ts';
import type { GlobalOptions } from './admin-api.ts';

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the demo agent against `npm start` (mandate up --demo): SVID, mandate, OBO token, calls through the gateway, revocation, the verified audit trail')
    .option('-d, --data-dir <dir>', 'the data directory of the running demo, holding demo.json (default: $MANDATE_HOME or ./.mandate)')
    .addHelpText('after', `
Reads <data dir>/demo.json, which \`mandate up --demo\` writes (the server URL, the admin token and the
demo user's password of the first start). Run it again as often as you like: each run gets a new
mandate.

Examples:
  $ npm start            # in one terminal
  $ npm run demo         # in another
  $ MANDATE_HOME=/tmp/demo npx mandate demo`)
    .action(async (o: { dataDir?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await runDemoAgent({ dataDir: resolve(o.dataDir ?? process.env.MANDATE_HOME ?? '.mandate'), adminToken: g.adminToken });
    });
}
