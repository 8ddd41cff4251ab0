/** CLI commands that call the admin API: entries, join tokens, keys and CA, bundles, federation. */
import { writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { parseDurationSeconds } from '../../config/duration.ts';
import { MandateError } from '../../errors.ts';
import { AdminClient } from '../admin-client.ts';
import { collect, print, printTable } from '../output.ts';

export interface GlobalOptions {
  server: string;
  adminToken?: string;
  json?: boolean;
}

export function clientFrom(cmd: Command): { client: AdminClient; json: boolean } {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  return { client: new AdminClient({ server: g.server, adminToken: g.adminToken }), json: Boolean(g.json) };
}

function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const s = parseDurationSeconds(value);
  if (s === undefined) throw new MandateError('ERR_BAD_REQUEST', `${flag} "${value}" is not a duration (e.g. 90s, 5m, 1h, 7d)`);
  return s;
}


export function adminApiCommands(program: Command): void {
  const entry = program.command('entry').description('registration entries: which SPIFFE ID a workload gets when its attestation matches');
  entry
    .command('create')
    .description('create a registration entry')
    .requiredOption('--spiffe-id <id>', 'SPIFFE ID to issue, in this trust domain, with a path')
    .option('--selector <type:value>', 'selector the attestation must prove (repeatable)', collect)
    .option('--x509-ttl <duration>', 'X.509-SVID lifetime (default from config)')
    .option('--jwt-ttl <duration>', 'JWT-SVID lifetime (default from config)')
    .option('--meta <key=value>', 'admin metadata (repeatable)', collect)
    .option('--id <id>', 'entry id (default: random UUID)')
    .addHelpText('after', `
Examples:
  $ mandate entry create --spiffe-id spiffe://example.org/agent/triage-bot
  $ mandate entry create --spiffe-id spiffe://example.org/ns/payments/sa/refunds \\
      --selector k8s:ns:payments --selector k8s:sa:refunds --x509-ttl 1h --meta owner=payments-team`)
    .action(async (o: { spiffeId: string; selector?: string[]; x509Ttl?: string; jwtTtl?: string; meta?: string[]; id?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const metadata = Object.fromEntries((o.meta ?? []).map((kv) => {
        const i = kv.indexOf('=');
        if (i <= 0) throw new MandateError('ERR_BAD_REQUEST', `--meta "${kv}" must be key=value`);
        return [kv.slice(0, i), kv.slice(i + 1)];
      }));
      const created = await client.request('POST', '/admin/v1/entries', {
        spiffe_id: o.spiffeId, selectors: o.selector ?? [], metadata,
        x509_svid_ttl: seconds(o.x509Ttl, '--x509-ttl'), jwt_svid_ttl: seconds(o.jwtTtl, '--jwt-ttl'), id: o.id,
      });
      print(created, json);
    });
  entry.command('list').description('list registration entries').action(async (_o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    const { entries } = await client.request<{ entries: Array<Record<string, unknown>> }>('GET', '/admin/v1/entries');
    if (json) print(entries, true);
    else printTable(entries, ['id', 'spiffe_id', 'selectors', 'x509_svid_ttl', 'jwt_svid_ttl']);
  });
  entry.command('show <id>').description('show one registration entry').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('GET', `/admin/v1/entries/${encodeURIComponent(id)}`), json);
  });
  entry.command('delete <id>').description('delete a registration entry (its workloads can no longer renew)').action(async (id: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('DELETE', `/admin/v1/entries/${encodeURIComponent(id)}`), json);
  });

  program
    .command('token')
    .description('one-time join tokens for workload attestation')
    .command('create')
    .description('create a single-use, expiring join token bound to a registration entry')
    .addOption(new Option('--spiffe-id <id>', 'the entry to bind, by SPIFFE ID').conflicts('entry'))
    .option('--entry <id>', 'the entry to bind, by id')
    .option('--ttl <duration>', 'how long the token stays usable (default from config)')
    .addHelpText('after', `
Example:
  $ mandate token create --spiffe-id spiffe://example.org/agent/triage-bot --ttl 15m`)
    .action(async (o: { spiffeId?: string; entry?: string; ttl?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      const created = await client.request<{ token: string; expires_at: string; spiffe_id: string }>('POST', '/admin/v1/join-tokens', { spiffe_id: o.spiffeId, entry_id: o.entry, ttl: seconds(o.ttl, '--ttl') });
      if (json) print(created, true);
      else process.stdout.write(`${created.token}\n`), process.stderr.write(`join token for ${created.spiffe_id}, single use, expires ${created.expires_at}\n`);
    });

  const key = program.command('key').description('CA and JWT-SVID signing keys');
  key.command('list').description('list signing keys and their rotation state').action(async (_o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    const result = await client.request<{ bundle_sequence: number; keys: Array<Record<string, unknown>> }>('GET', '/admin/v1/keys');
    if (json) print(result, true);
    else {
      printTable(result.keys, ['id', 'kind', 'state', 'not_after', 'publish_until']);
      process.stdout.write(`bundle sequence ${result.bundle_sequence}\n`);
    }
  });
  key
    .command('rotate <kind>')
    .description('rotate "x509-ca", "jwt" or "oauth" (access-token signing): the first call publishes a new key, the second activates it')
    .action(async (kind: string, _o, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      print(kind === 'oauth' ? await client.request('POST', '/admin/v1/oauth/keys/rotate') : await client.request('POST', '/admin/v1/keys/rotate', { kind }), json);
    });

  const ca = program.command('ca').description('the certificate authority of this trust domain');
  ca
    .command('import')
    .description('import an existing CA (e.g. cert-manager CA Issuer secret, Istio cacerts) to issue under')
    .requiredOption('--cert <file>', 'CA certificate PEM (then its intermediates)')
    .requiredOption('--key <file>', 'CA private key PEM')
    .option('--bundle <file>', 'trust anchors PEM, when the CA is an intermediate')
    .addHelpText('after', `
Example (cert-manager secret):
  $ kubectl get secret -n cert-manager ca-key-pair -o jsonpath='{.data.tls\\.crt}' | base64 -d > ca.crt
  $ kubectl get secret -n cert-manager ca-key-pair -o jsonpath='{.data.tls\\.key}' | base64 -d > ca.key
  $ mandate ca import --cert ca.crt --key ca.key && mandate key rotate x509-ca`)
    .action(async (o: { cert: string; key: string; bundle?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      print(await client.request('POST', '/admin/v1/ca/import', {
        cert_pem: readFileSync(o.cert, 'utf8'), key_pem: readFileSync(o.key, 'utf8'), bundle_pem: o.bundle ? readFileSync(o.bundle, 'utf8') : undefined,
      }), json);
    });
  ca
    .command('export-k8s-secret')
    .description('export the active CA as a kubernetes.io/tls Secret for cert-manager\'s CA Issuer (contains the private key)')
    .option('--name <name>', 'Secret name', 'mandate-ca')
    .option('--namespace <ns>', 'Secret namespace', 'cert-manager')
    .option('-o, --output <file>', 'write to a file (mode 0600) instead of stdout')
    .action(async (o: { name: string; namespace: string; output?: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const yaml = await client.request<string>('GET', `/admin/v1/ca/k8s-secret?name=${encodeURIComponent(o.name)}&namespace=${encodeURIComponent(o.namespace)}`, undefined, { accept: 'text' });
      if (o.output) writeFileSync(o.output, yaml, { mode: 0o600 });
      else process.stdout.write(yaml);
    });

  program
    .command('bundle')
    .description('trust bundles')
    .command('show')
    .description('print the SPIFFE bundle of this trust domain (or a federated one)')
    .option('--trust-domain <td>', 'a federated trust domain instead of ours')
    .action(async (o: { trustDomain?: string }, cmd: Command) => {
      const { client } = clientFrom(cmd);
      const all = await client.request<{ trust_domain: string; bundles: Record<string, unknown> }>('GET', '/v1/bundles', undefined, { admin: false });
      const td = o.trustDomain ?? all.trust_domain;
      const bundle = all.bundles[td];
      if (!bundle) throw new MandateError('ERR_NOT_FOUND', `no bundle for trust domain ${td} (known: ${Object.keys(all.bundles).join(', ')})`);
      print(bundle, true);
    });

  const federation = program.command('federation').description('foreign trust domains this deployment trusts');
  federation.command('list').description('list federated trust domains').action(async (_o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    const { trust_domains } = await client.request<{ trust_domains: Array<Record<string, unknown>> }>('GET', '/admin/v1/federation');
    if (json) print(trust_domains, true);
    else printTable(trust_domains, ['trust_domain', 'source', 'refreshed_at', 'sequence', 'x509_authorities', 'jwt_authorities']);
  });
  federation.command('refresh <trust-domain>').description('fetch a federated bundle now').action(async (td: string, _o, cmd: Command) => {
    const { client, json } = clientFrom(cmd);
    print(await client.request('POST', '/admin/v1/federation/refresh', { trust_domain: td }), json);
  });
}
