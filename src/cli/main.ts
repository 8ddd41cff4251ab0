/**
 * `mandate`: the command-line program. Subcommands each have their own --help with examples.
 */
import { Command, CommanderError } from 'commander';
import { MandateError } from '../errors.ts';
import { adminApiCommands } from './commands/admin-api.ts';
import { agentCommand } from './commands/agent.ts';
import { auditCommands } from './commands/audit.ts';
import { delegationCommands } from './commands/delegation.ts';
import { demoCommand } from './commands/demo.ts';
import { oboCommands } from './commands/obo.ts';
import { policyCommands } from './commands/policy.ts';
import { svidCommands } from './commands/svid.ts';
import { upCommand } from './commands/up.ts';
import { vaultCommands } from './commands/vault.ts';

const program = new Command('mandate')
  .description('Mandate: identity, delegation, policy, gateway and audit for AI agents that act for people')
  .option('--server <url>', 'Mandate API base URL', process.env.MANDATE_SERVER ?? 'http://127.0.0.1:8420')
  .option('--admin-token <token>', 'admin token (default: $MANDATE_ADMIN_TOKEN)', process.env.MANDATE_ADMIN_TOKEN)
  .option('--json', 'print JSON instead of tables')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .addHelpText('after', `
Examples:
  $ mandate up --config config/demo.yaml --demo      # run everything on 127.0.0.1
  $ mandate entry create --spiffe-id spiffe://example.org/agent/triage-bot
  $ mandate token create --spiffe-id spiffe://example.org/agent/triage-bot
  $ mandate agent --join-token mjt_... --socket /tmp/mandate-agent.sock
  $ mandate mandates grant --user alice --agent spiffe://example.org/agent/triage-bot \\
      --scope issues:read --resource https://tools.example/mcp/issues --ttl 8h
  $ mandate <command> --help                         # help and examples for one command`);

upCommand(program);
adminApiCommands(program);
delegationCommands(program);
oboCommands(program);
policyCommands(program);
svidCommands(program);
vaultCommands(program);
agentCommand(program);
auditCommands(program);
demoCommand(program);

// `mandate audit tail -f | head`: a closed pipe ends the program quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof MandateError) {
    process.stderr.write(`mandate: ${err.message} (${err.code})\n`);
    process.exit(1);
  }
  if (err && typeof err === 'object' && 'code' in err && (err as { code: unknown }).code === 'ENOENT') {
    process.stderr.write(`mandate: ${String((err as unknown as Error).message)}\n`);
    process.exit(1);
  }
  throw err;
}
