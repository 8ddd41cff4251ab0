/**
 * The admin API's delegation half (/admin/v1): directory users, admin-issued mandates (enterprise
 * policy), mandate listing and revocation, and token-signing key rotation. Same authentication and
 * event recording as the identity half (admin.ts).
 */
import type { DelegationAuthority } from '../../delegation/authority.ts';
import { introspect } from '../../delegation/oauth/endpoints.ts';
import { MandateError } from '../../errors.ts';
import { parseDurationSeconds } from '../../config/duration.ts';
import type { MandateRecord, UserRecord } from '../../store/store.ts';
import type { AdminRoute } from './admin.ts';

export function userToJson(u: UserRecord): Record<string, unknown> {
  return {
    id: u.id, username: u.username, display_name: u.displayName, disabled: u.disabled,
    failed_logins: u.failedLogins, locked_until: u.lockedUntil?.toISOString() ?? null, created_at: u.createdAt.toISOString(),
  };
}

export function mandateToJson(m: MandateRecord): Record<string, unknown> {
  return {
    id: m.id,
    principal: { issuer: m.principal.issuer, subject: m.principal.subject, name: m.principal.name },
    agent: m.agent, scopes: m.scopes, resources: m.resources, constraints: m.constraints,
    max_depth: m.maxDepth, origin: m.origin, client_id: m.clientId, status: m.status,
    created_at: m.createdAt.toISOString(), expires_at: m.expiresAt.toISOString(),
    revoked_at: m.revokedAt?.toISOString() ?? null, revoked_by: m.revokedBy,
  };
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MandateError('ERR_BAD_REQUEST', 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function stringList(body: Record<string, unknown>, name: string): string[] {
  const value = body[name];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new MandateError('ERR_BAD_REQUEST', `${name} must be a list of strings`);
  return value as string[];
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new MandateError('ERR_BAD_REQUEST', `${name} must be a non-empty string`);
  return value;
}

export function adminDelegationRoutes(on: AdminRoute, delegation: DelegationAuthority): void {
  const { directory, mandates } = delegation;

  /** The principal of a mandate request: a directory user by username, or an issuer and subject. */
  const principalOf = async (body: Record<string, unknown>) => {
    const username = optionalString(body, 'username');
    if (username !== undefined) {
      const user = (await directory.list()).find((u) => u.username === username.toLowerCase());
      if (!user) throw new MandateError('ERR_NOT_FOUND', `no user ${username} in the directory`);
      const p = directory.principalOf(user);
      return { issuer: p.issuer, subject: p.subject, name: p.name };
    }
    const principal = object(body.principal ?? null);
    const issuer = optionalString(principal, 'issuer');
    const subject = optionalString(principal, 'subject');
    if (!issuer || !subject) throw new MandateError('ERR_BAD_REQUEST', 'name the principal: username (directory) or principal {issuer, subject}');
    return { issuer, subject, name: optionalString(principal, 'name') ?? subject };
  };

  on('GET', '/admin/v1/users', 'user.list', async () => ({ users: (await directory.list()).map(userToJson) }));
  on('POST', '/admin/v1/users', 'user.create', async (ctx) => {
    const body = object(await ctx.json());
    const user = await directory.createUser({
      username: optionalString(body, 'username') ?? '',
      displayName: optionalString(body, 'display_name'),
      password: typeof body.password === 'string' ? body.password : '',
    });
    return userToJson(user);
  }, { status: 201 });
  on('POST', '/admin/v1/users/:id/password', 'user.password', async (ctx) => {
    const body = object(await ctx.json());
    await directory.setPassword(ctx.params.id as string, typeof body.password === 'string' ? body.password : '');
    return { updated: ctx.params.id };
  });
  on('POST', '/admin/v1/users/:id/disable', 'user.disable', async (ctx) => {
    await directory.setDisabled(ctx.params.id as string, true);
    return { disabled: ctx.params.id };
  });
  on('POST', '/admin/v1/users/:id/enable', 'user.enable', async (ctx) => {
    await directory.setDisabled(ctx.params.id as string, false);
    return { enabled: ctx.params.id };
  });
  on('DELETE', '/admin/v1/users/:id', 'user.delete', async (ctx) => {
    await directory.delete(ctx.params.id as string);
    return { deleted: ctx.params.id };
  });

  on('GET', '/admin/v1/mandates', 'mandate.list', async (ctx) => {
    const status = ctx.query.get('status') ?? undefined;
    if (status !== undefined && status !== 'active' && status !== 'revoked') throw new MandateError('ERR_BAD_REQUEST', 'status must be active or revoked');
    const list = await mandates.list({
      principalIssuer: ctx.query.get('principal_issuer') ?? undefined,
      principalSubject: ctx.query.get('principal_subject') ?? undefined,
      agent: ctx.query.get('agent') ?? undefined,
      status,
      limit: 500,
    });
    return { mandates: list.map(mandateToJson) };
  });
  on('POST', '/admin/v1/mandates', 'mandate.create', async (ctx, actor) => {
    const body = object(await ctx.json());
    const ttl = optionalString(body, 'ttl');
    const ttlSeconds = ttl === undefined ? undefined : parseDurationSeconds(ttl);
    if (ttl !== undefined && ttlSeconds === undefined) throw new MandateError('ERR_BAD_REQUEST', `ttl ${JSON.stringify(ttl)} is not a duration such as 8h or 30d`);
    const maxDepth = body.max_depth;
    if (maxDepth !== undefined && typeof maxDepth !== 'number') throw new MandateError('ERR_BAD_REQUEST', 'max_depth must be a number');
    const constraints = body.constraints;
    if (constraints !== undefined && (typeof constraints !== 'object' || constraints === null || Array.isArray(constraints))) {
      throw new MandateError('ERR_BAD_REQUEST', 'constraints must be a JSON object');
    }
    const mandate = await mandates.grant({
      principal: await principalOf(body),
      agent: optionalString(body, 'agent') ?? '',
      scopes: stringList(body, 'scopes'),
      resources: stringList(body, 'resources'),
      constraints: constraints as Record<string, unknown> | undefined,
      ttlSeconds,
      maxDepth: maxDepth as number | undefined,
      origin: 'admin',
    }, actor);
    return mandateToJson(mandate);
  }, { status: 201 });
  on('GET', '/admin/v1/mandates/:id', 'mandate.show', async (ctx) => {
    const mandate = await mandates.get(ctx.params.id as string);
    if (!mandate) throw new MandateError('ERR_NOT_FOUND', `no mandate ${ctx.params.id}`);
    return mandateToJson(mandate);
  });
  on('POST', '/admin/v1/mandates/:id/revoke', 'mandate.revoke', async (ctx) => mandateToJson(await mandates.revoke(ctx.params.id as string, 'admin')));
  on('POST', '/admin/v1/tokens/introspect', 'token.introspect', async (ctx) => {
    const token = optionalString(object(await ctx.json()), 'token');
    if (!token) throw new MandateError('ERR_BAD_REQUEST', 'token is required');
    return introspect(delegation.oauth, token);
  });
  on('POST', '/admin/v1/oauth/keys/rotate', 'oauth_key.rotate', async () => {
    const result = await delegation.keys.rotate();
    return { kind: 'oauth', phase: result.phase, key_id: result.keyId };
  });
}
