/** Workload-side CLI: fetch an X.509-SVID once (files), verify SVIDs, reset the admin token. */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/load.ts';
import { MandateError } from '../../errors.ts';
import { certificatesToPem } from '../../identity/x509/pem.ts';
import { generateKeyAndCsr } from '../../sdk/identity/csr.ts';
import { IdentityClient } from '../../sdk/identity/client.ts';
import { resetAdminToken } from '../../server/admin-auth.ts';
import { openStore } from '../../store/open.ts';
import { print } from '../output.ts';
import { resolveConfigPath, resolveDataDir } from '../paths.ts';
import { clientFrom, type GlobalOptions } from './admin-api.ts';

export function attestationFromFlags(o: { joinToken?: string; k8sTokenFile?: string; cluster?: string }) {
  if (o.joinToken && o.k8sTokenFile) throw new MandateError('ERR_BAD_REQUEST', 'give one of --join-token or --k8s-token-file');
  if (o.joinToken) return { type: 'join_token' as const, token: o.joinToken };
  if (o.k8sTokenFile) return { type: 'k8s_psat' as const, token: readFileSync(o.k8sTokenFile, 'utf8').trim(), ...(o.cluster ? { cluster: o.cluster } : {}) };
  throw new MandateError('ERR_BAD_REQUEST', 'attestation needed: --join-token TOKEN or --k8s-token-file /var/run/secrets/tokens/mandate');
}

export function svidCommands(program: Command): void {
  const svid = program.command('svid').description('X.509-SVIDs and JWT-SVIDs');
  svid
    .command('fetch')
    .description('attest once and write an X.509-SVID, its key and the bundle to a directory (the key is generated here and never sent)')
    .option('--join-token <token>', 'one-time join token')
    .option('--k8s-token-file <file>', 'projected service-account token file')
    .option('--cluster <name>', 'Kubernetes cluster name, when several share an issuer')
    .option('--spiffe-id <id>', 'which SPIFFE ID, when the attestation matches several')
    .requiredOption('--out <dir>', 'directory for svid.pem, svid.key (0600) and bundle.pem')
    .addHelpText('after', `
Example:
  $ mandate svid fetch --join-token mjt_... --out ./svid && openssl verify -CAfile ./svid/bundle.pem ./svid/svid.pem`)
    .action(async (o: { joinToken?: string; k8sTokenFile?: string; cluster?: string; spiffeId?: string; out: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { privateKey, csrPem } = await generateKeyAndCsr('ec-p256');
      const client = new IdentityClient({ serverUrl: g.server });
      const res = await client.attest(attestationFromFlags(o), csrPem, o.spiffeId);
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      writeFileSync(join(o.out, 'svid.pem'), certificatesToPem(res.chain));
      writeFileSync(join(o.out, 'svid.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      chmodSync(join(o.out, 'svid.key'), 0o600);
      writeFileSync(join(o.out, 'bundle.pem'), certificatesToPem(res.bundle.x509Authorities));
      process.stderr.write(`wrote ${join(o.out, 'svid.pem')} for ${res.spiffeId}, expires ${res.expiresAt.toISOString()}\n`);
    });
  svid
    .command('verify')
    .description('verify an X.509-SVID (PEM file) or a JWT-SVID against the trust bundles of the server')
    .option('--x509 <file>', 'X.509-SVID chain PEM')
    .option('--jwt <token>', 'JWT-SVID')
    .option('--audience <aud>', 'audience the JWT-SVID must carry')
    .action(async (o: { x509?: string; jwt?: string; audience?: string }, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      if (!o.x509 === !o.jwt) throw new MandateError('ERR_BAD_REQUEST', 'give one of --x509 FILE or --jwt TOKEN');
      const body = o.x509 ? { x509_svid: readFileSync(o.x509, 'utf8') } : { jwt_svid: o.jwt, audience: o.audience };
      print(await client.request('POST', '/admin/v1/svids/verify', body), json);
    });

  program
    .command('admin')
    .description('local administration (runs against the data directory, not the API)')
    .command('reset-token')
    .description('replace the admin token with a new one and print it (when the printed token was lost)')
    .option('-c, --config <file>', 'configuration file')
    .option('-d, --data-dir <dir>', 'data directory')
    .action(async (o: { config?: string; dataDir?: string }) => {
      const config = loadConfigFile(resolveConfigPath(o.config));
      const dataDir = resolveDataDir(o.dataDir, config);
      const store = config.store.driver === 'postgres'
        ? await openStore({ driver: 'postgres', url: config.store.url.reveal() })
        : await openStore({ driver: 'sqlite', path: isAbsolute(config.store.path) ? config.store.path : join(dataDir, config.store.path) });
      try {
        const token = await resetAdminToken(store);
        process.stdout.write(`export MANDATE_ADMIN_TOKEN=${token}\n`);
      } finally {
        await store.close();
      }
    });
}
