/**
 * CLI commands for the delegation half of the admin API: directory users (`user`) and mandates
 * (`mandates`, alias `mandate`): grant, list, show, revoke. Passwords are read from stdin or a
 * terminal prompt, never from argv (argv is visible to other users through ps and shell history).
 */
import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { MandateError } from '../../errors.ts';
import type { AdminClient } from '../admin-client.ts';
import { collect, print, printTable } from '../output.ts';
import { clientFrom } from './admin-api.ts';


async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads one line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: new Writable({ write: (_c, _e, done) => done() }), terminal: true });
  process.stderr.write(question);
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.on('SIGINT', () => reject(new MandateError('ERR_BAD_REQUEST', 'cancelled')));
      rl.question('').then(resolve, reject);
    });
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/**
 * The new password: all of stdin with --password-stdin (one line; a trailing newline is dropped),
 * otherwise a prompt on the terminal, asked twice.
 */
async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    const text = (await readAllStdin()).replace(/\r?\n$/, '');
    if (text === '') throw new MandateError('ERR_BAD_REQUEST', '--password-stdin: stdin was empty');
    if (/[\r\n]/.test(text)) throw new MandateError('ERR_BAD_REQUEST', '--password-stdin: the password must be a single line');
    return text;
  }
  if (!process.stdin.isTTY) throw new MandateError('ERR_BAD_REQUEST', 'no terminal to ask for the password: pipe it in with --password-stdin');
  const password = await promptHidden('Password: ');
  if ((await promptHidden('Repeat password: ')) !== password) throw new MandateError('ERR_BAD_REQUEST', 'the passwords do not match');
  return password;
}

/** A directory user's id, looked up by username (case-insensitive, as the directory stores them). */
async function userIdOf(client: AdminClient, username: string): Promise<string> {
  const { users } = await client.request<{ users: Array<{ id: string; username: string }> }>('GET', '/admin/v1/users');
  const user = users.find((u) => u.username === username.toLowerCase());
  if (!user) throw new MandateError('ERR_NOT_FOUND', `no user ${username} in the directory`);
  return user.id;
}

type MandateJson = Record<string, unknown> & { id: string; principal: { issuer: string; subject: string; name: string }; revoked_at: string | null };

/** A mandate as one table row: the principal by name. */
const mandateRow = (m: MandateJson) => ({ ...m, principal: m.principal.name });

export function delegationCommands(program: Command): void {
  const user = program.command('user').description('directory users: the people who sign in to Mandate and grant mandates');
  user
    .command('add <username>')
    .description('add a user to the directory; the password comes from stdin or a prompt, never from the command line')
    .option('--display-name <name>', 'name shown on consent pages and in mandates')
    .option('--password-stdin', 'read the password from stdin (one line) instead of prompting')
    .addHelpText('after', `
Examples:
  $ mandate user add alice --display-name "Alice Example"          # prompts for the password
  $ printf '%s\\n' "$ALICE_PASSWORD" | mandate user add alice --password-stdin`)
    .action(async (username: string, o: { displayName?: string; passwordStdin?: boolean }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const password = await readPassword(Boolean(o.passwordStdin));
      print(await client.request('POST', '/admin/v1/users', { username, display_name: o.displayName, password }), json);
    });
  user.command('list').description('list directory users').action(async (_o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    const { users } = await client.request<{ users: Array<Record<string, unknown>> }>('GET', '/admin/v1/users');
    if (json) print(users, true);
    else printTable(users, ['id', 'username', 'display_name', 'disabled', 'locked_until', 'created_at']);
  });
  user.command('disable <id>').description('disable a user: no sign-in (their mandates stay until revoked)').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('POST', `/admin/v1/users/${encodeURIComponent(id)}/disable`), json);
  });
  user.command('enable <id>').description('enable a disabled user').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('POST', `/admin/v1/users/${encodeURIComponent(id)}/enable`), json);
  });
  user.command('delete <id>').description('delete a user from the directory').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('DELETE', `/admin/v1/users/${encodeURIComponent(id)}`), json);
  });
  user
    .command('set-password <id>')
    .description('replace a user\'s password (also clears failed sign-ins and any lock)')
    .option('--password-stdin', 'read the password from stdin (one line) instead of prompting')
    .addHelpText('after', `
Example:
  $ mandate user set-password 6f1c...e2 --password-stdin < new-password.txt`)
    .action(async (id: string, o: { passwordStdin?: boolean }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const password = await readPassword(Boolean(o.passwordStdin));
      print(await client.request('POST', `/admin/v1/users/${encodeURIComponent(id)}/password`, { password }), json);
    });

  const mandates = program
    .command('mandates')
    .alias('mandate')
    .description('mandates: what an agent may do for a person (scopes on resources), until they expire or are revoked');
  mandates
    .command('grant')
    .description('grant a mandate as an administrator (enterprise policy; no consent page)')
    .addOption(new Option('--user <username>', 'the principal: a directory user').conflicts(['principalIssuer', 'principalSubject']))
    .option('--principal-issuer <iss>', 'the principal\'s identity provider (with --principal-subject)')
    .option('--principal-subject <sub>', 'the principal\'s subject at that provider')
    .option('--principal-name <name>', 'the principal\'s name for people (default: the subject)')
    .requiredOption('--agent <spiffe-id>', 'the agent: a SPIFFE ID, or a pattern ending in /* for every agent under a path')
    .requiredOption('--scope <scope>', 'a scope the agent may use (repeatable)', collect)
    .requiredOption('--resource <uri>', 'a resource (RFC 8707 URI) the scopes apply to (repeatable)', collect)
    .option('--ttl <duration>', 'lifetime, e.g. 8h or 30d (default from config)')
    .option('--max-depth <n>', 'how many times agents may re-delegate (0: no sub-agents; default from config)')
    .option('--constraints <json>', 'a JSON object of constraints carried in the mandate')
    .addHelpText('after', `
Examples:
  $ mandate mandates grant --user alice --agent spiffe://example.org/agent/triage-bot \\
      --scope issues:read --scope issues:comment --resource https://tools.example/mcp/issues --ttl 8h
  $ mandate mandates grant --principal-issuer https://login.example.com --principal-subject 00u1ab \\
      --agent 'spiffe://example.org/agent/*' --scope wiki:read --resource https://tools.example/mcp/wiki \\
      --max-depth 0 --constraints '{"project":"infra"}'`)
    .action(async (o: {
      user?: string; principalIssuer?: string; principalSubject?: string; principalName?: string;
      agent: string; scope: string[]; resource: string[]; ttl?: string; maxDepth?: string; constraints?: string;
    }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      let principal: { username: string } | { principal: { issuer: string; subject: string; name?: string } };
      if (o.user !== undefined) {
        if (o.principalName !== undefined) throw new MandateError('ERR_BAD_REQUEST', '--principal-name goes with --principal-issuer/--principal-subject; a directory user has a display name');
        principal = { username: o.user };
      } else if (o.principalIssuer !== undefined && o.principalSubject !== undefined) {
        principal = { principal: { issuer: o.principalIssuer, subject: o.principalSubject, name: o.principalName } };
      } else {
        throw new MandateError('ERR_BAD_REQUEST', 'name the principal: --user <username>, or --principal-issuer <iss> with --principal-subject <sub>');
      }
      let maxDepth: number | undefined;
      if (o.maxDepth !== undefined) {
        if (!/^\d+$/.test(o.maxDepth)) throw new MandateError('ERR_BAD_REQUEST', `--max-depth "${o.maxDepth}" is not a whole number`);
        maxDepth = Number(o.maxDepth);
      }
      let constraints: unknown;
      if (o.constraints !== undefined) {
        try {
          constraints = JSON.parse(o.constraints);
        } catch {
          throw new MandateError('ERR_BAD_REQUEST', '--constraints is not valid JSON');
        }
        if (typeof constraints !== 'object' || constraints === null || Array.isArray(constraints)) throw new MandateError('ERR_BAD_REQUEST', '--constraints must be a JSON object');
      }
      print(await client.request('POST', '/admin/v1/mandates', {
        ...principal, agent: o.agent, scopes: o.scope, resources: o.resource, ttl: o.ttl, max_depth: maxDepth, constraints,
      }), json);
    });
  mandates
    .command('list')
    .description('list mandates (the newest 500 that match)')
    .addOption(new Option('--user <username>', 'mandates of a directory user').conflicts(['principalSubject', 'principalIssuer']))
    .option('--principal-issuer <iss>', 'mandates of principals from this identity provider')
    .option('--principal-subject <sub>', 'mandates of this principal subject')
    .option('--agent <spiffe-id>', 'mandates granted to exactly this agent (or pattern)')
    .addOption(new Option('--status <status>', 'only active or only revoked mandates').choices(['active', 'revoked']))
    .addHelpText('after', `
Examples:
  $ mandate mandates list --user alice --status active
  $ mandate mandates list --agent spiffe://example.org/agent/triage-bot --json`)
    .action(async (o: { user?: string; principalIssuer?: string; principalSubject?: string; agent?: string; status?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const query = new URLSearchParams();
      const subject = o.user !== undefined ? await userIdOf(client, o.user) : o.principalSubject;
      if (o.principalIssuer !== undefined) query.set('principal_issuer', o.principalIssuer);
      if (subject !== undefined) query.set('principal_subject', subject);
      if (o.agent !== undefined) query.set('agent', o.agent);
      if (o.status !== undefined) query.set('status', o.status);
      const qs = query.toString();
      const { mandates: list } = await client.request<{ mandates: MandateJson[] }>('GET', `/admin/v1/mandates${qs ? `?${qs}` : ''}`);
      if (json) print(list, true);
      else printTable(list.map(mandateRow), ['id', 'principal', 'agent', 'scopes', 'resources', 'status', 'expires_at']);
    });
  mandates.command('show <id>').description('show one mandate').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('GET', `/admin/v1/mandates/${encodeURIComponent(id)}`), json);
  });
  mandates
    .command('revoke <id>')
    .description('revoke a mandate: no further token exchanges under it, and the revocation list is updated at once')
    .addHelpText('after', `
Example:
  $ mandate mandates revoke mdt_...`)
    .action(async (id: string, _o, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const revoked = await client.request<MandateJson>('POST', `/admin/v1/mandates/${encodeURIComponent(id)}/revoke`);
      if (json) print(revoked, true);
      else process.stdout.write(`revoked ${revoked.id} (${revoked.principal.name} -> ${String(revoked.agent)}) at ${revoked.revoked_at ?? '-'}\n`);
    });
}
