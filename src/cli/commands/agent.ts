import type { Command } from 'commander';
import { startWorkloadAgent } from '../../identity/workload-agent/agent.ts';
import { createLogger } from '../../observability/logger.ts';
import { attestationFromFlags } from './svid.ts';
import type { GlobalOptions } from './admin-api.ts';

export function agentCommand(program: Command): void {
  program
    .command('agent')
    .description('per-workload agent: attests once, keeps its key locally, serves the SPIFFE Workload API and rotates SVIDs at half-life')
    .option('--join-token <token>', 'one-time join token')
    .option('--k8s-token-file <file>', 'projected service-account token file')
    .option('--cluster <name>', 'Kubernetes cluster name, when several share an issuer')
    .option('--spiffe-id <id>', 'which SPIFFE ID, when the attestation matches several')
    .option('--socket <path>', 'serve the Workload API on this Unix socket (mode 0600)')
    .option('--out-dir <dir>', 'also write svid.pem, svid.key and bundle.pem here, rewritten on rotation')
    .option('--server-ca <file>', 'CA for the server\'s TLS certificate, when the server uses HTTPS with a private CA')
    .addHelpText('after', `
Examples:
  $ mandate agent --join-token mjt_... --socket /tmp/mandate-agent.sock
  $ SPIFFE_ENDPOINT_SOCKET=unix:///tmp/mandate-agent.sock your-workload
  $ mandate agent --k8s-token-file /var/run/secrets/tokens/mandate --socket /run/spiffe/agent.sock --out-dir /run/spiffe/svid`)
    .action(async (o: { joinToken?: string; k8sTokenFile?: string; cluster?: string; spiffeId?: string; socket?: string; outDir?: string; serverCa?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const logger = createLogger({ level: 'info' });
      const agent = await startWorkloadAgent({
        serverUrl: g.server,
        caFile: o.serverCa,
        attestation: attestationFromFlags(o),
        spiffeId: o.spiffeId,
        socketPath: o.socket,
        outDir: o.outDir,
        logger,
      });
      process.stderr.write(`mandate agent: serving ${agent.current()?.spiffeId ?? '(no SVID yet)'}${o.socket ? ` on unix://${o.socket}` : ''}${o.outDir ? `, files in ${o.outDir}` : ''}\n`);
      const stop = () => void agent.stop().then(() => process.exit(0), () => process.exit(1));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
