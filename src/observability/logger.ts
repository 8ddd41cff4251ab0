/**
 * The JSON logger (pino): one line per record, secrets redacted by path, and the trace and span ids
 * of the active span on every line written while one is active, so a request's lines can be found
 * from its trace (and the other way round).
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { currentTraceIds } from './tracing.ts';

export type { Logger };

/**
 * Paths redacted from every log line. Tokens, keys and secrets must never reach a log, even when a
 * caller passes a whole request body or its headers by mistake.
 */
const SECRET_KEYS = [
  'token', 'secret', 'password', 'csr', 'privateKey', 'private_key', 'kek', 'authorization', 'adminToken',
  'access_token', 'refresh_token', 'id_token', 'subject_token', 'actor_token', 'client_secret', 'client_assertion',
  'code_verifier', 'assertion', 'dpop', 'cookie', 'key_pem', 'keyPem',
];
const REDACT = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`]),
  'headers.authorization', 'req.headers.authorization', 'headers.cookie', 'req.headers.cookie', 'headers.dpop', 'req.headers.dpop',
  'attestation.token', '*.attestation.token',
];

/** `trace_id` and `span_id` of the active span, added to every line. */
function traceFields(): Record<string, string> {
  const ids = currentTraceIds();
  return ids === undefined ? {} : { trace_id: ids.traceId, span_id: ids.spanId };
}

/**
 * The logger. One per process; pass children (`logger.child({ component })`) down.
 *
 * @example const log = createLogger({ level: 'info' }); log.info({ event: 'started' }, 'mandate is up');
 */
export function createLogger(opts: { level?: LevelWithSilent; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'mandate' },
      mixin: traceFields,
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
