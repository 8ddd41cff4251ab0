/**
 * The admin API (/admin/v1): registration entries, join tokens, keys and CA, federation, and SVID
 * verification; users and mandates come from admin-delegation.ts. Every call is authenticated with the admin token and recorded as an event.
 */
import { MandateError } from '../../errors.ts';
import type { IdentityAuthority } from '../../identity/authority/authority.ts';
import type { KeyManager } from '../../identity/authority/key-manager.ts';
import { entryToJson } from '../../identity/authority/validate.ts';
import { importCa } from '../../identity/ca/import.ts';
import { toK8sTlsSecret } from '../../identity/ca/k8s-secret.ts';
import type { FederationManager } from '../../identity/federation/poller.ts';
import { verifyJwtSvid } from '../../identity/jwt-svid/verify.ts';
import { parseCertificates } from '../../identity/x509/pem.ts';
import { verifyX509Svid } from '../../identity/x509-svid/verify.ts';
import type { AuditTrail } from '../../audit/trail.ts';
import type { Vault } from '../../gateway/vault.ts';
import type { DelegationAuthority } from '../../delegation/authority.ts';
import type { PolicyEngine } from '../../policy/engine.ts';
import { emitRefusal, type EventSink } from '../../observability/events.ts';
import type { Store } from '../../store/store.ts';
import { authenticateAdmin } from '../admin-auth.ts';
import { sendJson, sendText, type RequestContext } from '../http/context.ts';
import type { Handler, Router } from '../http/router.ts';
import { adminDelegationRoutes } from './admin-delegation.ts';
import { adminAuditRoutes } from './admin-audit.ts';
import { adminPolicyRoutes } from './admin-policy.ts';
import { adminVaultRoutes } from './admin-vault.ts';

export interface AdminDeps {
  store: Store;
  delegation: DelegationAuthority;
  policy: PolicyEngine | undefined;
  authority: IdentityAuthority;
  keys: KeyManager;
  federation: FederationManager;
  events: EventSink;
  audit: AuditTrail;
  vault: Vault;
}

export type AdminAction = (ctx: RequestContext, actor: string) => Promise<unknown>;

export interface AdminRouteOptions {
  /** Status of a successful reply (default 200). */
  status?: number;
  /** Record the call in the audit log (default true). */
  audited?: boolean;
}

/** Registers an admin route: authenticated, recorded, answered with the action's result. */
export type AdminRoute = (method: string, path: string, action: string, run: AdminAction, opts?: AdminRouteOptions) => void;

function field(body: unknown, name: string, required = true): string | undefined {
  const value = (body as Record<string, unknown> | null)?.[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new MandateError('ERR_BAD_REQUEST', `${name} is required and must be a non-empty string`);
  return value;
}

export function adminRoutes(router: Router, deps: AdminDeps): void {
  const { store, authority, keys, federation, events, delegation, policy, audit } = deps;

  /**
   * Authenticates, runs, and records the action (success or failure) as `admin.<action>`; a success
   * is answered once its record is durable. Reads of the audit log itself are not recorded in it
   * (`audited: false`): `mandate audit tail -f` would otherwise feed on its own polling.
   */
  const admin = (action: string, run: AdminAction, opts: AdminRouteOptions = {}): Handler => async (ctx) => {
    const tokenId = await authenticateAdmin(store, ctx.req.headers.authorization, events, ctx.sourceAddress);
    const actor = `admin:${tokenId}`;
    const audited = opts.audited ?? true;
    try {
      const result = await run(ctx, actor);
      if (audited) await events.emit({ type: `admin.${action}`, outcome: 'success', actor, sourceAddress: ctx.sourceAddress, ...ctx.params });
      if (ctx.res.headersSent) return; // the action streamed its own reply
      if (typeof result === 'string') sendText(ctx.res, opts.status ?? 200, result, 'application/yaml');
      else sendJson(ctx.res, opts.status ?? 200, result ?? {});
    } catch (err) {
      if (!audited) throw err;
      const code = err instanceof MandateError ? err.code : 'ERR_INTERNAL';
      await emitRefusal(events, { type: `admin.${action}`, outcome: 'failure', actor, error: code, reason: err instanceof Error ? err.message : String(err), sourceAddress: ctx.sourceAddress, ...ctx.params });
      throw err;
    }
  };

  router
    .on('GET', '/admin/v1/entries', admin('entry.list', async () => ({ entries: (await authority.listEntries()).map(entryToJson) })))
    .on('POST', '/admin/v1/entries', admin('entry.create', async (ctx) => entryToJson(await authority.createEntry(await ctx.json())), { status: 201 }))
    .on('GET', '/admin/v1/entries/:id', admin('entry.show', async (ctx) => entryToJson(await authority.getEntry(ctx.params.id as string))))
    .on('DELETE', '/admin/v1/entries/:id', admin('entry.delete', async (ctx) => {
      await authority.deleteEntry(ctx.params.id as string);
      return { deleted: ctx.params.id };
    }))
    .on('POST', '/admin/v1/join-tokens', admin('join_token.create', async (ctx) => authority.createJoinToken(await ctx.json()), { status: 201 }))
    .on('GET', '/admin/v1/keys', admin('key.list', async () => ({
      bundle_sequence: keys.bundle().sequence,
      keys: keys.keys().map((k) => ({ id: k.id, kind: k.kind, state: k.state, not_after: k.notAfter.toISOString(), created_at: k.createdAt.toISOString(), publish_until: k.publishUntil?.toISOString() ?? null })),
    })))
    .on('POST', '/admin/v1/keys/rotate', admin('key.rotate', async (ctx) => {
      const kind = field(await ctx.json(), 'kind');
      if (kind !== 'x509-ca' && kind !== 'jwt') throw new MandateError('ERR_BAD_REQUEST', 'kind must be "x509-ca" or "jwt"');
      const result = await keys.rotate(kind);
      return { kind, phase: result.phase, key_id: result.keyId };
    }))
    .on('POST', '/admin/v1/ca/import', admin('ca.import', async (ctx) => {
      const body = await ctx.json();
      const imported = importCa({ certPem: field(body, 'cert_pem') as string, keyPem: field(body, 'key_pem') as string, bundlePem: field(body, 'bundle_pem', false) });
      const result = await keys.rotate('x509-ca', { imported });
      return { phase: result.phase, key_id: result.keyId, next: 'POST /admin/v1/keys/rotate {"kind":"x509-ca"} activates it once verifiers have the new bundle' };
    }))
    .on('GET', '/admin/v1/ca/k8s-secret', admin('ca.export', async (ctx) => {
      const ca = keys.activeCa();
      return toK8sTlsSecret({
        name: ctx.query.get('name') ?? 'mandate-ca',
        namespace: ctx.query.get('namespace') ?? 'cert-manager',
        certificate: ca.certificate,
        chain: ca.chain,
        trustAnchors: ca.trustAnchors,
        privateKey: ca.privateKey,
      });
    }))
    .on('GET', '/admin/v1/federation', admin('federation.list', async () => ({
      trust_domains: (await store.listFederatedBundles()).map((b) => {
        const bundle = authority.bundles().get(b.trustDomain);
        return { trust_domain: b.trustDomain, source: b.source, refreshed_at: b.refreshedAt.toISOString(), sequence: bundle?.sequence ?? null, x509_authorities: bundle?.x509Authorities.length ?? 0, jwt_authorities: bundle?.jwtAuthorities.size ?? 0 };
      }),
    })))
    .on('POST', '/admin/v1/federation/refresh', admin('federation.refresh', async (ctx) => {
      const td = field(await ctx.json(), 'trust_domain') as string;
      const bundle = await federation.refresh(td);
      return { trust_domain: td, sequence: bundle.sequence ?? null };
    }))
    .on('POST', '/admin/v1/svids/verify', admin('svid.verify', async (ctx) => {
      const body = await ctx.json();
      const x509 = field(body, 'x509_svid', false);
      if (x509 !== undefined) {
        const { spiffeId, verifiedChain } = verifyX509Svid(parseCertificates(x509), authority.bundles());
        return { valid: true, spiffe_id: spiffeId.toString(), chain_length: verifiedChain.length };
      }
      const token = field(body, 'jwt_svid') as string;
      const audience = field(body, 'audience') as string;
      const { spiffeId, claims } = await verifyJwtSvid(token, authority.bundles(), { audience });
      return { valid: true, spiffe_id: spiffeId.toString(), claims };
    }));

  const on: AdminRoute = (method, path, action, run, opts) => router.on(method, path, admin(action, run, opts));
  adminDelegationRoutes(on, delegation);
  adminPolicyRoutes(on, policy);
  adminAuditRoutes(on, audit);
  adminVaultRoutes(on, deps.vault, delegation);
}
