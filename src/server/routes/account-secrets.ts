/**
 * The principal's own vault secrets on their account pages (`/account/secrets`): for each secret
 * name the configured tool servers take from the principal, its state (set or not, fingerprint,
 * when), a form to set or replace it and one to delete it. The value travels in a form POST once and
 * is never shown again.
 *
 * The pages share the account pages' browser session and hardening (consent.ts hands its helpers
 * over): a signed-in session, our own Origin on every POST, and the session's CSRF token in the form.
 * A principal can only name the configured secret names, and only their own.
 */
import type { ServerResponse } from 'node:http';
import { secretsPage } from '../../delegation/consent/pages.ts';
import { parseForm, type OAuthParams } from '../../delegation/oauth/form.ts';
import { MandateError } from '../../errors.ts';
import type { Vault, VaultOwner } from '../../gateway/vault.ts';
import type { PrincipalRef } from '../../store/store.ts';
import type { RequestContext } from '../http/context.ts';
import type { Handler, Router } from '../http/router.ts';

export interface AccountSecrets {
  vault: Vault;
  /** The secret names principals keep, with the servers using each: `principalSecretNames(config.gateway.toolServers)`. */
  names: ReadonlyArray<{ name: string; servers: string[] }>;
}

/** What the account pages already have (consent.ts): sessions, origin check, page wrapper, replies. */
export interface AccountPageKit {
  loadSession(ctx: RequestContext): Promise<{ principal: PrincipalRef; csrf: string } | null>;
  checkOrigin(ctx: RequestContext): void;
  page(run: (ctx: RequestContext) => Promise<void>): Handler;
  sendHtml(res: ServerResponse, status: number, html: string): void;
  redirect(res: ServerResponse, location: string): void;
  sameToken(a: string | undefined, b: string | undefined): boolean;
}

const PAGE = '/account/secrets';

export function accountSecretsRoutes(router: Router, secrets: AccountSecrets, kit: AccountPageKit): void {
  const { vault, names } = secrets;
  const ownerOf = (principal: PrincipalRef): VaultOwner => ({ kind: 'principal', issuer: principal.issuer, subject: principal.subject });

  /** A state-changing request: our origin, a session, its CSRF token, and a secret name on offer here. */
  const post = async (ctx: RequestContext): Promise<{ principal: PrincipalRef; form: OAuthParams; name: string }> => {
    kit.checkOrigin(ctx);
    const form = parseForm(ctx.req, await ctx.body());
    const session = await kit.loadSession(ctx);
    if (!session) throw new MandateError('ERR_UNAUTHENTICATED', 'you are not signed in (or your session expired)');
    if (!kit.sameToken(form.get('csrf'), session.csrf)) throw new MandateError('ERR_FORBIDDEN', 'CSRF check failed; reload the page and try again');
    const name = ctx.params.name as string;
    if (!names.some((n) => n.name === name)) throw new MandateError('ERR_NOT_FOUND', `no tool server here takes a secret named ${name}`);
    return { principal: session.principal, form, name };
  };

  router.on('GET', PAGE, kit.page(async (ctx) => {
    const session = await kit.loadSession(ctx);
    if (!session) throw new MandateError('ERR_UNAUTHENTICATED', 'sign in through an application first to manage your secrets');
    const stored = await vault.list(ownerOf(session.principal));
    kit.sendHtml(ctx.res, 200, secretsPage({
      principalName: session.principal.name,
      csrf: session.csrf,
      secrets: names.map(({ name, servers }) => {
        const found = stored.find((s) => s.name === name);
        return { name, servers, ...(found && { set: { fingerprint: found.fingerprint, updatedAt: found.updatedAt } }) };
      }),
    }));
  }));

  router.on('POST', `${PAGE}/:name`, kit.page(async (ctx) => {
    const { principal, form, name } = await post(ctx);
    await vault.set(ownerOf(principal), name, form.get('value') ?? '', `principal:${principal.subject}`);
    kit.redirect(ctx.res, PAGE);
  }));

  router.on('POST', `${PAGE}/:name/delete`, kit.page(async (ctx) => {
    const { principal, name } = await post(ctx);
    await vault.delete(ownerOf(principal), name, `principal:${principal.subject}`);
    kit.redirect(ctx.res, PAGE);
  }));
}
