/**
 * The admin API's audit part (/admin/v1/audit): query the events, follow the log, sign and read
 * checkpoints, inclusion and consistency proofs as self-contained bundles that `mandate audit verify`
 * checks offline, the verifier key, and the export as JSON Lines (streamed, never held in memory).
 *
 * Reads of the log are not themselves recorded in it (see AdminRouteOptions.audited); signing a
 * checkpoint on demand is.
 */
import { MandateError } from '../../errors.ts';
import { exportAuditLog } from '../../audit/export.ts';
import type { AuditTrail } from '../../audit/trail.ts';
import type { ConsistencyProofBundle, InclusionProofBundle } from '../../audit/verify.ts';
import type { AuditCheckpointRecord, AuditQuery } from '../../store/store.ts';
import type { RequestContext } from '../http/context.ts';
import type { AdminRoute } from './admin.ts';

/** Most events one query returns. */
export const MAX_QUERY_LIMIT = 1000;
const DEFAULT_QUERY_LIMIT = 100;

function integerParam(ctx: RequestContext, name: string, min: number): number | undefined {
  const text = ctx.query.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  if (!/^-?[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new MandateError('ERR_BAD_REQUEST', `${name} must be an integer >= ${min}`);
  }
  return value;
}

function timeParam(ctx: RequestContext, name: string): Date | undefined {
  const text = ctx.query.get(name);
  if (text === null) return undefined;
  const time = new Date(text);
  if (text.length > 64 || Number.isNaN(time.getTime())) throw new MandateError('ERR_BAD_REQUEST', `${name} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z`);
  return time;
}

function textParam(ctx: RequestContext, name: string): string | undefined {
  const text = ctx.query.get(name);
  if (text === null) return undefined;
  if (text.length === 0 || text.length > 2048) throw new MandateError('ERR_BAD_REQUEST', `${name} must be 1 to 2048 characters`);
  return text;
}

function queryOf(ctx: RequestContext): AuditQuery {
  const limit = integerParam(ctx, 'limit', 1) ?? DEFAULT_QUERY_LIMIT;
  if (limit > MAX_QUERY_LIMIT) throw new MandateError('ERR_BAD_REQUEST', `limit must be at most ${MAX_QUERY_LIMIT}`);
  return {
    agent: textParam(ctx, 'agent'),
    principalIssuer: textParam(ctx, 'principal_issuer'),
    principalSubject: textParam(ctx, 'principal_subject'),
    mandateId: textParam(ctx, 'mandate'),
    tool: textParam(ctx, 'tool'),
    decision: textParam(ctx, 'decision'),
    type: textParam(ctx, 'type'),
    traceId: textParam(ctx, 'trace_id'),
    from: timeParam(ctx, 'since'),
    to: timeParam(ctx, 'until'),
    afterIndex: integerParam(ctx, 'after', -1) ?? -1,
    limit,
  };
}

function checkpointJson(c: AuditCheckpointRecord) {
  return { size: c.size, root_hash: Buffer.from(c.rootHash).toString('hex'), note: c.note, created_at: c.createdAt.toISOString() };
}

const hex = (hashes: Buffer[]) => hashes.map((h) => h.toString('hex'));

export function adminAuditRoutes(on: AdminRoute, audit: AuditTrail): void {
  const { store, log } = audit;
  const reading = { audited: false };

  on('GET', '/admin/v1/audit/key', 'audit.key', async () => ({ origin: audit.origin, verifier_key: audit.verifierKey, size: log.size }), reading);

  on('GET', '/admin/v1/audit/events', 'audit.events', async (ctx) => {
    const query = queryOf(ctx);
    const records = await store.queryAuditRecords(query);
    const events = records.map((r) => ({ index: r.index, event: JSON.parse(r.event) as unknown }));
    const last = records.at(-1);
    return { events, next_after: last && records.length === query.limit ? last.index : null, size: log.size };
  }, reading);

  on('GET', '/admin/v1/audit/checkpoint', 'audit.checkpoint.show', async (ctx) => {
    const size = integerParam(ctx, 'size', 0);
    const found = size === undefined ? await store.latestAuditCheckpoint() : await store.getAuditCheckpoint(size);
    if (!found) throw new MandateError('ERR_NOT_FOUND', size === undefined ? 'no checkpoint yet: make one with POST /admin/v1/audit/checkpoint' : `no checkpoint of size ${size}`);
    return checkpointJson(found);
  }, reading);

  on('POST', '/admin/v1/audit/checkpoint', 'audit.checkpoint.create', async () => {
    await audit.checkpoint();
    const made = await store.latestAuditCheckpoint();
    if (!made) throw new MandateError('ERR_STORE', 'the checkpoint just made cannot be read back');
    return checkpointJson(made);
  }, { status: 201 });

  on('GET', '/admin/v1/audit/proof/inclusion', 'audit.proof.inclusion', async (ctx): Promise<InclusionProofBundle> => {
    const index = integerParam(ctx, 'index', 0);
    if (index === undefined) throw new MandateError('ERR_BAD_REQUEST', 'index is required');
    if (index >= log.size) throw new MandateError('ERR_NOT_FOUND', `the log has ${log.size} events; there is no event ${index}`);
    const size = integerParam(ctx, 'size', 1);
    let checkpoint = size === undefined ? await store.latestAuditCheckpoint() : await store.getAuditCheckpoint(size);
    if (size !== undefined && !checkpoint) throw new MandateError('ERR_NOT_FOUND', `no checkpoint of size ${size}: omit size to use the latest`);
    if (size !== undefined && index >= size) throw new MandateError('ERR_BAD_REQUEST', `event ${index} is not in the log of size ${size}`);
    // Without a size, prove against the latest checkpoint, signing a new one if it predates the event.
    if (!checkpoint || checkpoint.size <= index) {
      await audit.checkpoint();
      checkpoint = await store.latestAuditCheckpoint();
    }
    if (!checkpoint) throw new MandateError('ERR_STORE', 'no checkpoint could be made');
    const [record] = await store.getAuditRecords(index, index + 1);
    if (!record) throw new MandateError('ERR_STORE', `event ${index} is missing from the store`);
    return {
      format: 'mandate-audit-proof', version: 1, index, size: checkpoint.size, event: record.event,
      proof: hex(await log.inclusionProof(index, checkpoint.size)), checkpoint: checkpoint.note,
    };
  }, reading);

  on('GET', '/admin/v1/audit/proof/consistency', 'audit.proof.consistency', async (ctx): Promise<ConsistencyProofBundle> => {
    const from = integerParam(ctx, 'from', 1);
    if (from === undefined) throw new MandateError('ERR_BAD_REQUEST', 'from is required (the size of a checkpoint you hold)');
    const to = integerParam(ctx, 'to', 1);
    const older = await store.getAuditCheckpoint(from);
    if (!older) throw new MandateError('ERR_NOT_FOUND', `no checkpoint of size ${from}`);
    const newer = to === undefined ? await store.latestAuditCheckpoint() : await store.getAuditCheckpoint(to);
    if (!newer) throw new MandateError('ERR_NOT_FOUND', `no checkpoint of size ${to}`);
    if (newer.size < from) throw new MandateError('ERR_BAD_REQUEST', `to (${newer.size}) must not be smaller than from (${from})`);
    return {
      format: 'mandate-audit-consistency', version: 1, from, to: newer.size,
      proof: hex(await log.consistencyProof(from, newer.size)), from_checkpoint: older.note, to_checkpoint: newer.note,
    };
  }, reading);

  on('GET', '/admin/v1/audit/export', 'audit.export', async (ctx) => {
    const from = integerParam(ctx, 'from', 0);
    const to = integerParam(ctx, 'to', 0);
    await log.flush();
    const size = await store.auditSize();
    if ((from ?? 0) > (to ?? size) || (to ?? 0) > size) throw new MandateError('ERR_BAD_REQUEST', `cannot export events [${from ?? 0}, ${to ?? size}) of a log of ${size}`);
    ctx.res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'content-disposition': 'attachment; filename="audit.jsonl"' });
    try {
      await exportAuditLog(store, ctx.res, { from, to });
    } catch (err) {
      // Headers are gone: cut the stream so the client sees an incomplete export, never a complete-looking one.
      ctx.res.destroy(err as Error);
      return;
    }
    ctx.res.end();
  }, reading);
}
