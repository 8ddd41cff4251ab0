/**
 * `mandate vault`: the secrets the gateway sends upstream for tool servers configured with
 * `credential: { type: secret }`, one per tool server (`--tool-server`: `--server` is already the
 * API's URL) or one per principal (`--user` for a directory user, or `--principal-subject` with
 * `--principal-issuer`). A value is read from stdin, never from argv (argv is visible to other users
 * through ps and shell history), and no command ever prints one: the server does not give them back.
 */
import { text } from 'node:stream/consumers';
import { Option, type Command } from 'commander';
import { MandateError } from '../../errors.ts';
import { print, printTable } from '../output.ts';
import { clientFrom } from './admin-api.ts';

interface OwnerOptions {
  toolServer?: string;
  user?: string;
  principalIssuer?: string;
  principalSubject?: string;
}

type SecretJson = Record<string, unknown> & {
  owner_kind: 'server' | 'principal';
  server?: string;
  principal?: { issuer: string; subject: string };
};

export interface VaultCommandIo {
  /** Where values are read from. Default: process.stdin. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** The owner options every vault command takes; one way of naming the owner only. */
function ownerOptions(cmd: Command, what: string): Command {
  return cmd
    .addOption(new Option('--tool-server <name>', `${what} of a tool server (one for every caller)`).conflicts(['user', 'principalIssuer', 'principalSubject']))
    .addOption(new Option('--user <username>', `${what} of a directory user`).conflicts(['principalIssuer', 'principalSubject']))
    .option('--principal-issuer <iss>', `${what} of a principal from this identity provider (default: this deployment)`)
    .option('--principal-subject <sub>', 'the principal\'s subject at that provider');
}

/** The principal as the API takes it (body or query). */
function principalParams(o: OwnerOptions): Record<string, string> {
  if (o.user !== undefined) return { username: o.user };
  if (o.principalSubject !== undefined) return { subject: o.principalSubject, ...(o.principalIssuer === undefined ? {} : { issuer: o.principalIssuer }) };
  if (o.principalIssuer !== undefined) throw new MandateError('ERR_BAD_REQUEST', '--principal-issuer goes with --principal-subject');
  throw new MandateError('ERR_BAD_REQUEST', 'name the owner: --tool-server <name>, --user <username>, or --principal-subject <sub> (with --principal-issuer)');
}

/** The API path of the owner's secrets (and of one secret by name), with the principal in the query when one is named. */
function secretsPath(o: OwnerOptions, name?: string): { path: string; principal?: Record<string, string> } {
  const tail = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  if (o.toolServer !== undefined) return { path: `/admin/v1/vault/servers/${encodeURIComponent(o.toolServer)}/secrets${tail}` };
  return { path: `/admin/v1/vault/principals/secrets${tail}`, principal: principalParams(o) };
}

/**
 * The value: all of stdin, one trailing line break dropped (what `echo` and a final newline in a
 * file add). A terminal is refused rather than echoing what is typed.
 */
async function readValue(stdin: NonNullable<VaultCommandIo['stdin']>): Promise<string> {
  if (stdin.isTTY) throw new MandateError('ERR_BAD_REQUEST', 'the value is read from stdin: pipe it in, e.g. printf \'%s\' "$TOKEN" | mandate vault set ...');
  const value = (await text(stdin)).replace(/\r?\n$/, '');
  if (value === '') throw new MandateError('ERR_BAD_REQUEST', 'stdin was empty: pipe the secret value in');
  if (/[\r\n]/.test(value)) throw new MandateError('ERR_BAD_REQUEST', 'the secret value must be a single line (it goes in an HTTP header)');
  return value;
}

/** "server tracker" or "alice-id at https://login.example.com": the owner as one table cell. */
function ownerCell(s: SecretJson): string {
  return s.owner_kind === 'server' ? `server ${s.server ?? '?'}` : `${s.principal?.subject ?? '?'} at ${s.principal?.issuer ?? '?'}`;
}

export function vaultCommands(program: Command, io: VaultCommandIo = {}): void {
  const stdin = io.stdin ?? process.stdin;
  const vault = program
    .command('vault')
    .description('secrets the gateway sends upstream in place of agents\' credentials, per tool server or per principal; values go in, never come out');

  ownerOptions(vault.command('set <name>'), 'the secret')
    .description('set (or replace) a secret; the value is read from stdin, never from the command line')
    .addHelpText('after', `
Examples:
  $ printf '%s' "$TRACKER_API_KEY" | mandate vault set api_key --tool-server tracker
  $ mandate vault set github_token --user alice < alice-github-token.txt
  $ printf '%s' "$TOKEN" | mandate vault set github_token --principal-issuer https://login.example.com --principal-subject 00u1ab`)
    .action(async (name: string, o: OwnerOptions, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const { path, principal } = secretsPath(o, name);
      const value = await readValue(stdin);
      print(await client.request('PUT', path, { ...principal, value }), json);
    });

  ownerOptions(vault.command('list'), 'the secrets')
    .description('list secrets: owner, name, fingerprint and times (never values); all of them without an owner option')
    .addOption(new Option('--kind <kind>', 'only tool servers\' or only principals\' secrets').choices(['server', 'principal']))
    .addHelpText('after', `
Examples:
  $ mandate vault list
  $ mandate vault list --tool-server tracker
  $ mandate vault list --user alice --json`)
    .action(async (o: OwnerOptions & { kind?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const named = o.toolServer !== undefined || o.user !== undefined || o.principalSubject !== undefined || o.principalIssuer !== undefined;
      if (named && o.kind !== undefined) throw new MandateError('ERR_BAD_REQUEST', '--kind lists every owner of a kind; leave it out when naming an owner');
      let path = `/admin/v1/vault/secrets${o.kind === undefined ? '' : `?kind=${o.kind}`}`;
      if (named) {
        const owner = secretsPath(o);
        path = owner.principal === undefined ? owner.path : `${owner.path}?${new URLSearchParams(owner.principal).toString()}`;
      }
      const { secrets } = await client.request<{ secrets: SecretJson[] }>('GET', path);
      if (json) print(secrets, true);
      else printTable(secrets.map((s) => ({ ...s, owner: ownerCell(s) })), ['owner', 'name', 'fingerprint', 'updated_at']);
    });

  ownerOptions(vault.command('delete <name>'), 'the secret')
    .description('delete a secret: the gateway stops sending it at once')
    .addHelpText('after', `
Examples:
  $ mandate vault delete api_key --tool-server tracker
  $ mandate vault delete github_token --user alice`)
    .action(async (name: string, o: OwnerOptions, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const { path, principal } = secretsPath(o, name);
      const query = principal === undefined ? '' : `?${new URLSearchParams(principal).toString()}`;
      print(await client.request('DELETE', `${path}${query}`), json);
    });
}
