import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadConfigFile } from '../../config/load.ts';
import { createLogger } from '../../observability/logger.ts';
import { startMandate, type RunningMandate } from '../../server/app.ts';
import { DEMO_USER, seedDemo, type DemoSeed } from '../demo.ts';
import { resolveConfigPath, resolveDataDir } from '../paths.ts';

export function upCommand(program: Command): void {
  program
    .command('up')
    .description('run the whole platform in one process on 127.0.0.1 with an embedded SQLite store')
    .option('-c, --config <file>', 'configuration file (default: $MANDATE_CONFIG or ./mandate.yaml)')
    .option('-d, --data-dir <dir>', 'data directory (default: $MANDATE_HOME, the config data_dir, or ./.mandate)')
    .option('--demo', 'seed the demo registration entry and print a join token for it')
    .addHelpText('after', `
Examples:
  $ mandate up --config config/demo.yaml --demo
  $ MANDATE_HOME=/var/lib/mandate MANDATE_KEK=$(cat kek.b64) mandate up -c /etc/mandate/mandate.yaml`)
    .action(async (opts: { config?: string; dataDir?: string; demo?: boolean }) => {
      const config = loadConfigFile(resolveConfigPath(opts.config));
      const dataDir = resolveDataDir(opts.dataDir, config);
      const logger = createLogger({ level: config.log.level });
      const mandate = await startMandate({ config, dataDir, logger });
      const demo = opts.demo ? await seedDemo(mandate) : undefined;
      printBanner(mandate, dataDir, demo);
      handleSignals(mandate, logger);
    });
}

function printBanner(m: RunningMandate, dataDir: string, demo?: DemoSeed): void {
  const lines = [
    '',
    `Mandate is up at ${m.url}  (trust domain ${m.authority.trustDomain}, data in ${resolve(dataDir)})`,
  ];
  if (m.adminToken) {
    lines.push('', 'Admin token (shown once; only its hash is stored):', `  export MANDATE_ADMIN_TOKEN=${m.adminToken}`);
  } else {
    lines.push('', 'Admin token: set MANDATE_ADMIN_TOKEN to the token printed on first start', '  (lost it? stop Mandate and run: npx mandate admin reset-token)');
  }
  lines.push('', 'Try next, in another terminal:', `  export MANDATE_SERVER=${m.url}`, '  npx mandate entry list', '  npx mandate bundle show');
  if (demo) {
    lines.push(
      `  npx mandate svid fetch --join-token ${demo.joinToken} --out ./svid     # ${demo.spiffeId}`,
      '  openssl verify -CAfile ./svid/bundle.pem ./svid/svid.pem',
      '  npx mandate token create --spiffe-id ' + demo.spiffeId + '               # a token for the agent',
      '  npx mandate agent --join-token <token> --socket /tmp/mandate-agent.sock --out-dir ./agent-svid',
      `  npx mandate mandates grant --user ${DEMO_USER} --agent ${demo.spiffeId} --scope issues:read --resource ${m.url}/mcp/issues`,
      `  open ${m.issuer}/.well-known/oauth-authorization-server`,
    );
    if (demo.userPassword) lines.push('', `Demo user (consent pages): ${DEMO_USER} / ${demo.userPassword}   (shown once)`);
  }
  lines.push('', 'Stop with Ctrl-C.', '');
  process.stderr.write(lines.join('\n') + '\n');
}

function handleSignals(m: RunningMandate, logger: ReturnType<typeof createLogger>): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    m.close().then(
      () => {
        logger.info('stopped');
        logger.flush();
        setTimeout(() => process.exit(0), 50);
      },
      (err) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
