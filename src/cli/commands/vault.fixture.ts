/**
 * `mandate vault` as a program of its own, with the global options of `mandate` (main.ts) and its
 * handling of errors, run as a child process by vault.test.ts so that stdin, stdout and the exit
 * status are real.
 */
import { Command, CommanderError } from 'commander';
import { MandateError } from '../../errors.ts';
import { vaultCommands } from './vault.ts';

const program = new Command('mandate')
  .option('--server <url>', 'Mandate API base URL', process.env.MANDATE_SERVER)
  .option('--admin-token <token>', 'admin token', process.env.MANDATE_ADMIN_TOKEN)
  .option('--json', 'print JSON instead of tables')
  .exitOverride();
vaultCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof MandateError) {
    process.stderr.write(`mandate: ${err.message} (${err.code})\n`);
    process.exit(1);
  }
  throw err;
}
