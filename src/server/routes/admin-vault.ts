/**
 * The admin API's vault routes (/admin/v1/vault): set, list and delete the secrets the gateway sends
 * upstream, per tool server or per principal. Values go in and never come out: replies and listings
 * carry names, owners, times and fingerprints. Same authentication and event recording as the rest
 * of the admin API (admin.ts); the recorded parameters are the server and the secret's name.
 *
 *   PUT    /admin/v1/vault/servers/:server/secrets/:name   {"value": "..."}
 *   GET    /admin/v1/vault/servers/:server/secrets
 *   DELETE /admin/v1/vault/servers/:server/secrets/:name
 *   PUT    /admin/v1/vault/principals/secrets/:name        {"username": "alice", "value": "..."}
 *                                                           or {"issuer"?: "...", "subject": "...", "value": "..."}
 *   GET    /admin/v1/vault/principals/secrets?username=alice   (or ?issuer=...&subject=...)
 *   DELETE /admin/v1/vault/principals/secrets/:name?username=alice
 *   GET    /admin/v1/vault/secrets[?kind=server|principal]
 */
import type { DelegationAuthority } from '../../delegation/authority.ts';
import { isMandateError, MandateError } from '../../errors.ts';
import type { Vault, VaultOwner, VaultSecretInfo } from '../../gateway/vault.ts';
import type { RequestContext } from '../http/context.ts';
import type { AdminRoute } from './admin.ts';

export function vaultSecretToJson(s: VaultSecretInfo): Record<string, unknown> {
  return {
    owner_kind: s.owner.kind,
    ...(s.owner.kind === 'server' ? { server: s.owner.server } : { principal: { issuer: s.owner.issuer, subject: s.owner.subject } }),
    name: s.name,
    fingerprint: s.fingerprint,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
  };
}

/**
 * The body as a JSON object. A parse error is reported without the parser's message, which quotes
 * the body: here the body holds a secret, and the message would reach the reply and the audit log.
 */
async function bodyObject(ctx: RequestContext): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await ctx.json();
  } catch (err) {
    if (isMandateError(err, 'ERR_BAD_REQUEST')) throw new MandateError('ERR_BAD_REQUEST', 'the request body must be a JSON object (it is empty or not valid JSON)');
    throw err;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MandateError('ERR_BAD_REQUEST', 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function valueOf(body: Record<string, unknown>): string {
  if (typeof body.value !== 'string') throw new MandateError('ERR_BAD_REQUEST', 'value is required and must be a string');
  return body.value;
}

function text(source: Record<string, unknown> | URLSearchParams, name: string): string | undefined {
  const value = source instanceof URLSearchParams ? source.get(name) ?? undefined : source[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new MandateError('ERR_BAD_REQUEST', `${name} must be a non-empty string`);
  return value;
}

export function adminVaultRoutes(on: AdminRoute, vault: Vault, delegation: Pick<DelegationAuthority, 'issuer' | 'directory'>): void {
  /** The principal named by `username` (a directory user) or by `subject` with `issuer` (default: ours). */
  const principalOf = async (source: Record<string, unknown> | URLSearchParams): Promise<VaultOwner> => {
    const username = text(source, 'username');
    const subject = text(source, 'subject');
    const issuer = text(source, 'issuer');
    if (username !== undefined) {
      if (subject !== undefined || issuer !== undefined) throw new MandateError('ERR_BAD_REQUEST', 'name the principal by username or by subject (and issuer), not both');
      const user = (await delegation.directory.list()).find((u) => u.username === username.toLowerCase());
      if (!user) throw new MandateError('ERR_NOT_FOUND', `no user ${username} in the directory`);
      const p = delegation.directory.principalOf(user);
      return { kind: 'principal', issuer: p.issuer, subject: p.subject };
    }
    if (subject === undefined) throw new MandateError('ERR_BAD_REQUEST', 'name the principal: username (directory), or subject with issuer (default: this deployment)');
    return { kind: 'principal', issuer: issuer ?? delegation.issuer, subject };
  };
  const serverOf = (ctx: RequestContext): VaultOwner => ({ kind: 'server', server: ctx.params.server as string });
  const list = async (owner?: VaultOwner | VaultOwner['kind']) => ({ secrets: (await vault.list(owner)).map(vaultSecretToJson) });

  on('GET', '/admin/v1/vault/secrets', 'vault.secret.list', async (ctx) => {
    const kind = ctx.query.get('kind') ?? undefined;
    if (kind !== undefined && kind !== 'server' && kind !== 'principal') throw new MandateError('ERR_BAD_REQUEST', 'kind must be server or principal');
    return list(kind);
  });

  on('GET', '/admin/v1/vault/servers/:server/secrets', 'vault.secret.list', async (ctx) => list(serverOf(ctx)));
  on('PUT', '/admin/v1/vault/servers/:server/secrets/:name', 'vault.secret.set', async (ctx, actor) =>
    vaultSecretToJson(await vault.set(serverOf(ctx), ctx.params.name as string, valueOf(await bodyObject(ctx)), actor)));
  on('DELETE', '/admin/v1/vault/servers/:server/secrets/:name', 'vault.secret.delete', async (ctx, actor) => {
    await vault.delete(serverOf(ctx), ctx.params.name as string, actor);
    return { deleted: ctx.params.name };
  });

  on('GET', '/admin/v1/vault/principals/secrets', 'vault.secret.list', async (ctx) => list(await principalOf(ctx.query)));
  on('PUT', '/admin/v1/vault/principals/secrets/:name', 'vault.secret.set', async (ctx, actor) => {
    const body = await bodyObject(ctx);
    return vaultSecretToJson(await vault.set(await principalOf(body), ctx.params.name as string, valueOf(body), actor));
  });
  on('DELETE', '/admin/v1/vault/principals/secrets/:name', 'vault.secret.delete', async (ctx, actor) => {
    await vault.delete(await principalOf(ctx.query), ctx.params.name as string, actor);
    return { deleted: ctx.params.name };
  });
}
