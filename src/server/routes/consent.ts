/**
 * Where a principal meets the delegation authority in a browser: the authorization endpoint
 * (`/oauth/authorize`, authorization code + PKCE S256, RFC 8707 `resource`, the requested `agent`),
 * sign-in (directory password or an external OpenID provider), the consent page that turns approval
 * into a mandate, and the principal's own list of mandates with revocation (and, given the vault,
 * their own secrets for the tool servers: account-secrets.ts).
 *
 * Browser hardening: sessions and CSRF in `__Host-` cookies (Secure, HttpOnly, SameSite=Lax, Path=/);
 * every state-changing POST carries a CSRF token bound to the session (double-submit before sign-in)
 * and must come from our own origin; pages forbid framing (`frame-ancestors 'none'`); redirects go
 * only to a redirect URI registered for the client (exact match), with `iss` (RFC 9207).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { DelegationAuthority } from '../../delegation/authority.ts';
import type { OAuthClient } from '../../delegation/clients/client.ts';
import { checkRedirectUri } from '../../delegation/clients/redirect.ts';
import { consentPage, describeDuration, errorPage, mandatesPage, signInPage } from '../../delegation/consent/pages.ts';
import { parseAgentPattern } from '../../delegation/mandates/agent-pattern.ts';
import { CODE_KIND, hashSecret, newSecret, type CodeGrant } from '../../delegation/oauth/code-grant.ts';
import { GRANT } from '../../delegation/oauth/context.ts';
import { OAUTH_PATHS } from '../../delegation/oauth/endpoints.ts';
import { OAuthError, isOAuthError } from '../../delegation/oauth/errors.ts';
import { OAuthParams, parseForm } from '../../delegation/oauth/form.ts';
import type { PendingSignIn } from '../../delegation/principals/oidc.ts';
import { MandateError, isMandateError } from '../../errors.ts';
import type { PrincipalRef } from '../../store/store.ts';
import type { RequestContext } from '../http/context.ts';
import type { Router } from '../http/router.ts';
import { accountSecretsRoutes, type AccountSecrets } from './account-secrets.ts';

const SESSION_COOKIE = '__Host-mandate-session';
const CSRF_COOKIE = '__Host-mandate-csrf';
const SESSION_KIND = 'browser-session';
const REQUEST_KIND = 'authorization-request';
const SIGNIN_KIND = 'oidc-signin';
const REQUEST_TTL_SECONDS = 600;

/** A validated authorization request waiting for sign-in and consent. */
interface PendingAuthorization {
  clientId: string;
  redirectUri: string;
  state: string | undefined;
  codeChallenge: string;
  scopes: string[];
  resources: string[];
  agent: string;
}

interface Session {
  principal: PrincipalRef;
  csrf: string;
  authTime: number;
}

function cookies(ctx: RequestContext): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (ctx.req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) jar.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return jar;
}

function cookie(name: string, value: string, maxAgeSeconds: number): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}`;
}

function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function sendHtml(res: ServerResponse, status: number, html: string, extra: Record<string, string | string[]> = {}, formTargets: string[] = []): void {
  const formAction = ["'self'", ...formTargets].join(' ');
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    ...extra,
  });
  res.end(html);
}

function redirect(res: ServerResponse, location: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': 0, 'referrer-policy': 'same-origin', ...extra });
  res.end();
}

export function consentRoutes(router: Router, delegation: DelegationAuthority, secrets?: AccountSecrets): void {
  const { oauth: o, directory, providers, mandates, config } = delegation;
  const origin = new URL(delegation.issuer).origin;

  const loadSession = async (ctx: RequestContext): Promise<Session | null> => {
    const id = cookies(ctx).get(SESSION_COOKIE);
    if (!id) return null;
    const record = await o.store.getEphemeral(SESSION_KIND, hashSecret(id), o.now());
    return record ? (record.value as Session) : null;
  };

  const startSession = async (principal: PrincipalRef): Promise<string> => {
    const id = newSecret('');
    const session: Session = { principal, csrf: randomBytes(24).toString('base64url'), authTime: Math.floor(o.now().getTime() / 1000) };
    await o.store.putEphemeral({ kind: SESSION_KIND, key: hashSecret(id), value: session, expiresAt: new Date(o.now().getTime() + config.sessionTtl * 1000) });
    return cookie(SESSION_COOKIE, id, config.sessionTtl);
  };

  /** State-changing browser requests must come from our own pages (Origin, else Referer; RFC 6454). */
  const checkOrigin = (ctx: RequestContext) => {
    const from = ctx.req.headers.origin ?? (ctx.req.headers.referer ? new URL(ctx.req.headers.referer).origin : undefined);
    if (from !== undefined && from !== origin) throw new MandateError('ERR_FORBIDDEN', `cross-site request from ${from} refused`);
  };

  const pending = async (id: string | undefined): Promise<PendingAuthorization> => {
    const record = id ? await o.store.getEphemeral(REQUEST_KIND, id, o.now()) : null;
    if (!record || record.usedAt) throw new MandateError('ERR_NOT_FOUND', 'this sign-in request has expired or was already answered; start again from the application');
    return record.value as PendingAuthorization;
  };

  /** Errors shown to the person, never redirected (the redirect target is not trusted yet). */
  const page = (run: (ctx: RequestContext) => Promise<void>) => async (ctx: RequestContext) => {
    try {
      await run(ctx);
    } catch (err) {
      if (isOAuthError(err)) sendHtml(ctx.res, 400, errorPage('This request cannot be completed', `${err.error}: ${err.message}`));
      else if (isMandateError(err)) sendHtml(ctx.res, err.status, errorPage('This request cannot be completed', err.message));
      else throw err;
    }
  };

  const back = (p: Pick<PendingAuthorization, 'redirectUri' | 'state'>, params: Record<string, string>): string => {
    const url = new URL(p.redirectUri);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    if (p.state !== undefined) url.searchParams.set('state', p.state);
    url.searchParams.set('iss', delegation.issuer);
    return url.href;
  };

  router.on('GET', OAUTH_PATHS.authorize, page(async (ctx) => {
    const params = new OAuthParams(ctx.query);
    const clientId = params.require('client_id');
    const client: OAuthClient = await o.resolveClient(clientId);
    const redirectUri = params.require('redirect_uri');
    checkRedirectUri(client, redirectUri);
    const state = params.get('state');
    // From here on errors go back to the client (RFC 6749 §4.1.2.1).
    try {
      if (params.get('response_type') !== 'code') throw new OAuthError('unsupported_response_type', 'response_type must be code');
      if (!client.grantTypes.includes(GRANT.authorizationCode)) throw new OAuthError('unauthorized_client', `client ${client.clientId} may not use the authorization code grant`);
      const challenge = params.get('code_challenge');
      if (challenge === undefined) throw new OAuthError('invalid_request', 'code_challenge is required (PKCE, RFC 7636)');
      if (params.get('code_challenge_method') !== 'S256') throw new OAuthError('invalid_request', 'code_challenge_method must be S256 (plain is not accepted)');
      if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) throw new OAuthError('invalid_request', 'code_challenge must be the base64url SHA-256 of the code verifier (43 characters)');
      const resources = [...new Set(params.all('resource'))];
      if (resources.length === 0) throw new OAuthError('invalid_target', 'name at least one resource (RFC 8707) the agent will use');
      const agentParam = params.get('agent') ?? client.spiffeId;
      if (agentParam === undefined) throw new OAuthError('invalid_request', 'name the agent (its SPIFFE ID) that will act for the user');
      let agent: string;
      try {
        agent = parseAgentPattern(agentParam);
      } catch (err) {
        throw new OAuthError('invalid_request', isMandateError(err) ? err.message : 'agent is not a SPIFFE ID');
      }
      if (client.spiffeId !== undefined && agent !== client.spiffeId) throw new OAuthError('invalid_request', `client ${client.clientId} acts as ${client.spiffeId} only`);
      // The mandate rules (known resources and scopes, scopes that apply), checked before anyone is asked.
      const asMandate = <T>(check: () => T, error: 'invalid_target' | 'invalid_scope'): T => {
        try {
          return check();
        } catch (err) {
          if (isMandateError(err)) throw new OAuthError(error, err.message);
          throw err;
        }
      };
      asMandate(() => mandates.checkResources(resources), 'invalid_target');
      const scopes = params.scopes() ?? [...new Set(resources.flatMap((r) => config.resources.find((k) => k.uri === r)?.scopes ?? []))];
      asMandate(() => mandates.checkScopes(scopes, resources), 'invalid_scope');
      const id = randomBytes(18).toString('base64url');
      const request: PendingAuthorization = { clientId, redirectUri, state, codeChallenge: challenge, scopes, resources, agent };
      await o.store.putEphemeral({ kind: REQUEST_KIND, key: id, value: request, expiresAt: new Date(o.now().getTime() + REQUEST_TTL_SECONDS * 1000) });
      const session = await loadSession(ctx);
      redirect(ctx.res, `${session ? '/consent' : '/signin'}?request=${id}`);
    } catch (err) {
      if (!isOAuthError(err)) throw err;
      redirect(ctx.res, back({ redirectUri, state }, { error: err.error, error_description: err.message }));
    }
  }));

  router.on('GET', '/signin', page(async (ctx) => {
    const request = ctx.query.get('request') ?? '';
    await pending(request);
    const csrf = randomBytes(24).toString('base64url');
    sendHtml(ctx.res, 200, signInPage({ request, csrf, providers: providers.list(), directory: config.directory.enabled }), { 'set-cookie': cookie(CSRF_COOKIE, csrf, REQUEST_TTL_SECONDS) });
  }));

  router.on('POST', '/signin', page(async (ctx) => {
    checkOrigin(ctx);
    const form = parseForm(ctx.req, await ctx.body());
    const request = form.require('request');
    await pending(request);
    if (!sameToken(form.get('csrf'), cookies(ctx).get(CSRF_COOKIE))) throw new MandateError('ERR_FORBIDDEN', 'the sign-in form has expired or did not come from this site (CSRF check failed); go back and try again');
    if (!config.directory.enabled) throw new MandateError('ERR_FORBIDDEN', 'password sign-in is disabled here');
    try {
      const principal = await directory.authenticate(form.get('username') ?? '', form.get('password') ?? '', { sourceAddress: ctx.sourceAddress });
      const setCookie = await startSession({ issuer: principal.issuer, subject: principal.subject, name: principal.name });
      redirect(ctx.res, `/consent?request=${encodeURIComponent(request)}`, { 'set-cookie': setCookie });
    } catch (err) {
      if (!isMandateError(err, 'ERR_UNAUTHENTICATED')) throw err;
      const csrf = randomBytes(24).toString('base64url');
      sendHtml(ctx.res, 401, signInPage({ request, csrf, error: err.message, providers: providers.list(), directory: true }), { 'set-cookie': cookie(CSRF_COOKIE, csrf, REQUEST_TTL_SECONDS) });
    }
  }));

  router.on('GET', '/signin/:provider', page(async (ctx) => {
    const request = ctx.query.get('request') ?? '';
    await pending(request);
    const provider = ctx.params.provider as string;
    const { url, pending: signIn } = await providers.beginSignIn(provider, `${delegation.issuer}/signin/${encodeURIComponent(provider)}/callback`);
    await o.store.putEphemeral({ kind: SIGNIN_KIND, key: signIn.state, value: { signIn, request }, expiresAt: new Date(o.now().getTime() + REQUEST_TTL_SECONDS * 1000) });
    redirect(ctx.res, url);
  }));

  router.on('GET', '/signin/:provider/callback', page(async (ctx) => {
    const state = ctx.query.get('state') ?? '';
    const found = state ? await o.store.consumeEphemeral(SIGNIN_KIND, state, o.now()) : null;
    if (!found || !found.consumed) throw new MandateError('ERR_FORBIDDEN', 'this sign-in response is unknown, expired or was already used; start again');
    const { signIn, request } = found.record.value as { signIn: PendingSignIn; request: string };
    if (signIn.providerId !== ctx.params.provider) throw new MandateError('ERR_FORBIDDEN', 'the sign-in response came back to another provider\'s address');
    const principal = await providers.completeSignIn(signIn, new URL(ctx.req.url ?? '/', delegation.issuer));
    const setCookie = await startSession({ issuer: principal.issuer, subject: principal.subject, name: principal.name });
    redirect(ctx.res, `/consent?request=${encodeURIComponent(request)}`, { 'set-cookie': setCookie });
  }));

  router.on('GET', '/consent', page(async (ctx) => {
    const request = ctx.query.get('request') ?? '';
    const p = await pending(request);
    const session = await loadSession(ctx);
    if (!session) {
      redirect(ctx.res, `/signin?request=${encodeURIComponent(request)}`);
      return;
    }
    const client = await o.resolveClient(p.clientId);
    sendHtml(ctx.res, 200, consentPage({
      request, csrf: session.csrf,
      principalName: session.principal.name,
      clientName: client.name,
      agent: p.agent,
      scopes: p.scopes.map((scope) => ({ scope, description: mandates.describeScope(scope) })),
      resources: p.resources.map((uri) => ({ uri, name: config.resources.find((r) => r.uri === uri)?.name ?? uri })),
      durationText: describeDuration(config.mandates.defaultTtl),
      maxDepth: config.mandates.defaultMaxDepth,
    }), {}, [new URL(p.redirectUri).origin]);
  }));

  router.on('POST', '/consent', page(async (ctx) => {
    checkOrigin(ctx);
    const form = parseForm(ctx.req, await ctx.body());
    const session = await loadSession(ctx);
    if (!session) throw new MandateError('ERR_UNAUTHENTICATED', 'you are not signed in (or your session expired); start again from the application');
    if (!sameToken(form.get('csrf'), session.csrf)) throw new MandateError('ERR_FORBIDDEN', 'the consent form did not come from this site or has expired (CSRF check failed)');
    const request = form.require('request');
    const taken = await o.store.consumeEphemeral(REQUEST_KIND, request, o.now());
    if (!taken || !taken.consumed) throw new MandateError('ERR_NOT_FOUND', 'this request has expired or was already answered; start again from the application');
    const p = taken.record.value as PendingAuthorization;
    const decision = form.get('decision');
    if (decision !== 'approve') {
      await o.events.emit({ type: 'consent.denied', outcome: 'success', clientId: p.clientId, spiffeId: p.agent, principal: { issuer: session.principal.issuer, subject: session.principal.subject } });
      redirect(ctx.res, back(p, { error: 'access_denied', error_description: 'the user denied the request' }));
      return;
    }
    const mandate = await mandates.grant({
      principal: session.principal, agent: p.agent, scopes: p.scopes, resources: p.resources,
      origin: 'consent', clientId: p.clientId,
    }, `principal:${session.principal.subject}`);
    const code = newSecret('');
    const grant: CodeGrant = {
      clientId: p.clientId, redirectUri: p.redirectUri, codeChallenge: p.codeChallenge,
      principal: session.principal, scopes: p.scopes, resources: p.resources,
      mandateId: mandate.id, authTime: session.authTime, familyId: mandate.id,
    };
    await o.store.putEphemeral({ kind: CODE_KIND, key: hashSecret(code), value: grant, expiresAt: new Date(o.now().getTime() + config.authorizationCodeTtl * 1000) });
    redirect(ctx.res, back(p, { code }));
  }));

  router.on('GET', '/account/mandates', page(async (ctx) => {
    const session = await loadSession(ctx);
    if (!session) throw new MandateError('ERR_UNAUTHENTICATED', 'sign in through an application first to see your mandates');
    const list = await mandates.list({ principalIssuer: session.principal.issuer, principalSubject: session.principal.subject, limit: 200 });
    sendHtml(ctx.res, 200, mandatesPage({ principalName: session.principal.name, csrf: session.csrf, mandates: list, describe: (s) => mandates.describeScope(s), now: o.now() }));
  }));

  router.on('POST', '/account/mandates/:id/revoke', page(async (ctx) => {
    checkOrigin(ctx);
    const form = parseForm(ctx.req, await ctx.body());
    const session = await loadSession(ctx);
    if (!session) throw new MandateError('ERR_UNAUTHENTICATED', 'you are not signed in');
    if (!sameToken(form.get('csrf'), session.csrf)) throw new MandateError('ERR_FORBIDDEN', 'CSRF check failed; reload the page and try again');
    await mandates.revoke(ctx.params.id as string, `principal:${session.principal.subject}`, session.principal);
    redirect(ctx.res, '/account/mandates');
  }));

  router.on('POST', '/signout', page(async (ctx) => {
    checkOrigin(ctx);
    const form = parseForm(ctx.req, await ctx.body());
    const session = await loadSession(ctx);
    const id = cookies(ctx).get(SESSION_COOKIE);
    if (session && id && sameToken(form.get('csrf'), session.csrf)) await o.store.deleteEphemeral(SESSION_KIND, hashSecret(id));
    sendHtml(ctx.res, 200, errorPage('Signed out', 'You are signed out.'), { 'set-cookie': cookie(SESSION_COOKIE, '', 0) });
  }));

  if (secrets) accountSecretsRoutes(router, secrets, { loadSession, checkOrigin, page, sendHtml, redirect, sameToken });
}
