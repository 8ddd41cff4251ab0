import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Paths redacted from every log line. Tokens, keys and secrets must never reach a log, even when a
 * caller passes a whole request body by mistake.
 */
const REDACT = [
  'token', '*.token', 'secret', '*.secret', 'password', '*.password', 'csr', '*.csr',
  'privateKey', '*.privateKey', 'private_key', '*.private_key', 'kek', '*.kek',
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'attestation.token', '*.attestation.token', 'adminToken', '*.adminToken',
];

/**
 * The JSON logger (pino). One per process; pass children (`logger.child({ component })`) down.
 *
 * @example const log = createLogger({ level: 'info' }); log.info({ event: 'started' }, 'mandate is up');
 */
export function createLogger(opts: { level?: LevelWithSilent; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'mandate' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
