/**
 * The audit event: one record per decision and action, versioned, in canonical JSON (keys sorted at
 * every level, no whitespace) so the same event always hashes to the same leaf. Arguments are kept
 * with configured paths redacted, beside a digest of the full arguments, so a record proves what was
 * asked without keeping secrets.
 */
import { createHash } from 'node:crypto';

export const AUDIT_EVENT_VERSION = 1;

export interface AuditEvent {
  v: typeof AUDIT_EVENT_VERSION;
  /** ISO 8601 time of the event. */
  time: string;
  /** Dotted type: `token.exchanged`, `gateway.decision`, `mandate.revoked`, `admin.entry.create`... */
  type: string;
  outcome: 'success' | 'failure';
  /** The acting agent's SPIFFE ID. */
  agent?: string;
  principal?: { issuer: string; subject: string };
  mandateId?: string;
  /** The whole delegation chain, outermost first. */
  chain?: string[];
  clientId?: string;
  /** The resource (tool server) concerned. */
  resource?: string;
  /** The MCP method or HTTP route, and the tool. */
  action?: string;
  tool?: string;
  /** SHA-256 (hex) of the canonical JSON of the full arguments. */
  argumentsDigest?: string;
  /** The arguments with configured paths redacted. */
  arguments?: unknown;
  decision?: { decision: string; policies: string[]; policySetVersion?: string; reasons?: string[] };
  result?: { status?: number; error?: string; durationMs?: number };
  traceId?: string;
  spanId?: string;
  sourceAddress?: string;
  /** Which Mandate process wrote it. */
  replica: string;
  /** Anything else the producer records (never secrets). */
  detail?: Record<string, unknown>;
}

/** JSON with object keys sorted at every level and no whitespace; `undefined` members dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('audit events hold only finite numbers');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export const REDACTED = '[redacted]';

/**
 * Arguments with the configured paths replaced by `[redacted]`. A path is dot-separated keys, `*`
 * matching any key or list element: `password`, `card.number`, `items.*.secret`.
 */
export function redact(value: unknown, paths: readonly string[]): unknown {
  const rules = paths.map((p) => p.split('.'));
  const walk = (v: unknown, depth: number, active: string[][]): unknown => {
    if (active.length === 0 || v === null || typeof v !== 'object') return v;
    const child = (key: string, inner: unknown): unknown => {
      const matching = active.filter((r) => r[depth] === '*' || r[depth] === key);
      if (matching.some((r) => r.length === depth + 1)) return REDACTED;
      return walk(inner, depth + 1, matching);
    };
    if (Array.isArray(v)) return v.map((item, i) => child(String(i), item));
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, inner]) => [k, child(k, inner)]));
  };
  return walk(value, 0, rules);
}

/** SHA-256 (hex) of the canonical JSON of the arguments: proves what was sent without keeping it. */
export function argumentsDigest(args: unknown): string {
  return createHash('sha256').update(canonicalJson(args ?? null)).digest('hex');
}
