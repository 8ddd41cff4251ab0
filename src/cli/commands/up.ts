/**
 * `mandate up`: the whole platform in one process. With --demo (what `npm start` runs) it also seeds
 * the demo agent and user, serves the demo issue tracker behind the gateway, and writes
 * `<data dir>/demo.json` for `mandate demo` (src/cli/demo.ts says what it holds).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadConfigFile } from '../../config/load.ts';
import type { MandateConfig } from '../../config/types.ts';
import { MandateError } from '../../errors.ts';
import { createLogger, type Logger } from '../../observability/logger.ts';
import { startMandate, type RunningMandate } from '../../server/app.ts';
import { DEMO_USER, demoToolServer, ENV_DEMO_BASE_PORT, loadDemoConfig, seedDemo, startDemoTracker, writeDemoFile, type DemoSeed } from '../demo.ts';
import { resolveConfigPath, resolveDataDir } from '../paths.ts';

interface DemoStart extends DemoSeed {
  /** The demo tool server as agents reach it through the gateway; undefined without one. */
  gatewayUrl: string | undefined;
  demoFile: string | undefined;
}

export function upCommand(program: Command): void {
  program
    .command('up')
    .description('run the whole platform in one process on 127.0.0.1 with an embedded SQLite store')
    .option('-c, --config <file>', 'configuration file (default: $MANDATE_CONFIG or ./mandate.yaml)')
    .option('-d, --data-dir <dir>', 'data directory (default: $MANDATE_HOME, the config data_dir, or ./.mandate)')
    .option('--demo', 'the demo: seed the demo agent and user, serve the demo issue tracker behind the gateway, write <data dir>/demo.json (secrets: demo use only) for `mandate demo`')
    .addHelpText('after', `
With --demo, ${ENV_DEMO_BASE_PORT}=<n> moves the demo's ports 8420 and 8421 (Mandate and the demo
tool server) to n and n+1 everywhere in the configuration.

Examples:
  $ mandate up --config config/demo.yaml --demo
  $ ${ENV_DEMO_BASE_PORT}=9420 MANDATE_HOME=/tmp/demo mandate up --config config/demo.yaml --demo
  $ MANDATE_HOME=/var/lib/mandate MANDATE_KEK=$(cat kek.b64) mandate up -c /etc/mandate/mandate.yaml`)
    .action(async (opts: { config?: string; dataDir?: string; demo?: boolean }) => {
      const path = resolveConfigPath(opts.config);
      const config = opts.demo ? loadDemoConfig(path) : loadConfigFile(path);
      const dataDir = resolveDataDir(opts.dataDir, config);
      const logger = createLogger({ level: config.log.level });
      const mandate = await startOrExplain(config, dataDir, logger);
      let stopTracker: (() => Promise<void>) | undefined;
      let demo: DemoStart | undefined;
      try {
        if (opts.demo) {
          const tracker = await startDemoTracker(mandate, config, logger);
          stopTracker = tracker && (() => tracker.close());
          const seed = await seedDemo(mandate);
          const demoFile = tracker ? writeDemoFile(dataDir, mandate, config, seed) : undefined;
          const server = tracker && demoToolServer(config);
          demo = { ...seed, gatewayUrl: server && `${mandate.url}${server.path}`, demoFile };
        }
      } catch (err) {
        await stopTracker?.();
        await mandate.close();
        throw err;
      }
      printBanner(mandate, dataDir, demo);
      handleSignals(async () => {
        // Mandate first: requests in flight through the gateway still reach the tracker.
        await mandate.close();
        await stopTracker?.();
      }, logger);
    });
}

/** startMandate, with a busy port explained (the usual reason a second `npm start` fails). */
async function startOrExplain(config: MandateConfig, dataDir: string, logger: Logger): Promise<RunningMandate> {
  try {
    return await startMandate({ config, dataDir, logger });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const { host, port } = config.server.listen;
    throw new MandateError('ERR_CONFIG_INVALID', `cannot listen on ${host}:${port}: the port is in use (Mandate already running?); stop that, or change server.listen (with --demo: set ${ENV_DEMO_BASE_PORT})`);
  }
}

function printBanner(m: RunningMandate, dataDir: string, demo?: DemoStart): void {
  const lines = [
    '',
    `Mandate is up at ${m.url}  (trust domain ${m.authority.trustDomain}, data in ${resolve(dataDir)})`,
  ];
  if (m.adminToken) {
    lines.push('', 'Admin token (shown once; only its hash is stored):', `  export MANDATE_ADMIN_TOKEN=${m.adminToken}`);
  } else {
    lines.push('', 'Admin token: set MANDATE_ADMIN_TOKEN to the token printed on first start', '  (lost it? stop Mandate and run: npx mandate admin reset-token)');
  }
  if (demo?.gatewayUrl) {
    lines.push(
      '',
      `Demo tool server (an issue tracker) behind the gateway: ${demo.gatewayUrl}`,
      'Watch the audit log, then run the demo agent, in two more terminals:',
      `  export MANDATE_SERVER=${m.url} MANDATE_ADMIN_TOKEN=...   # the admin token above`,
      '  npx mandate audit tail -f',
      '  npm run demo',
      `  curl -s ${m.url}/.well-known/oauth-protected-resource${new URL(demo.gatewayUrl).pathname}   # the gateway's RFC 9728 metadata`,
    );
    if (demo.demoFile) lines.push(`(${demo.demoFile} holds the admin token and ${DEMO_USER}'s password for \`npm run demo\`: demo mode only, keep it private)`);
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

function handleSignals(close: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    close().then(
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
