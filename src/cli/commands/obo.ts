/**
 * On-Behalf-Of tokens from the command line: an agent's token exchange (with its SVID files, as
 * `mandate svid fetch` or `mandate agent` write them) and an admin's introspection. Agents in code use
 * the SDK (src/sdk/agent) instead: the token printed here is bound to a DPoP key this command keeps
 * only in memory, so it serves to inspect and try the flow, not to call tools.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { MandateError } from '../../errors.ts';
import { AgentAuthError } from '../../sdk/agent/errors.ts';
import { MandateAgent, SUBJECT_TOKEN_TYPES } from '../../sdk/agent/index.ts';
import { filesSource } from '../../sdk/agent/svid-source.ts';
import { collect, print } from '../output.ts';
import { clientFrom, type GlobalOptions } from './admin-api.ts';


export function oboCommands(program: Command): void {
  const obo = program.command('obo').description('On-Behalf-Of tokens: exchange (as an agent) and introspect (as an admin)');
  obo
    .command('exchange')
    .description('exchange a mandate (or a principal\'s token) and this agent\'s JWT-SVID for an OBO token; prints the token')
    .requiredOption('--svid-dir <dir>', 'the agent\'s svid.pem, svid.key and bundle.pem (from `mandate svid fetch --out` or `mandate agent --out-dir`)')
    .option('--mandate <id>', 'an admin-issued mandate to act under (subject type mandate)')
    .option('--subject-token <token>', 'a principal\'s access token or ID token instead of a mandate id')
    .option('--subject-token-type <type>', 'type of --subject-token', SUBJECT_TOKEN_TYPES.accessToken)
    .requiredOption('--resource <uri>', 'the tool server (resource indicator) the token is for')
    .option('--scope <scope>', 'a scope to ask for (repeatable; default: all the mandate grants there)', collect)
    .option('--issuer <url>', 'the authorization server\'s issuer (default: --server)')
    .addHelpText('after', `
Examples:
  $ mandate obo exchange --svid-dir ./svid --mandate mdt_... --resource http://127.0.0.1:8420/mcp/issues
  $ mandate obo exchange --svid-dir ./svid --mandate mdt_... --resource http://127.0.0.1:8420/mcp/issues --json`)
    .action(async (o: { svidDir: string; mandate?: string; subjectToken?: string; subjectTokenType: string; resource: string; scope?: string[]; issuer?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (!o.mandate === !o.subjectToken) throw new MandateError('ERR_BAD_REQUEST', 'give one of --mandate ID or --subject-token TOKEN');
      const svids = filesSource(o.svidDir, { serverUrl: g.server });
      const agent = new MandateAgent({ issuer: o.issuer ?? g.server, svids });
      try {
        const token = await agent.exchange({
          subjectToken: (o.mandate ?? o.subjectToken) as string,
          subjectTokenType: o.mandate ? SUBJECT_TOKEN_TYPES.mandate : o.subjectTokenType,
          resource: o.resource,
          ...(o.scope && { scope: o.scope }),
        });
        if (g.json) print({ access_token: token.accessToken, token_type: token.tokenType, expires_at: token.expiresAt.toISOString(), scope: token.scope, resource: token.resource }, true);
        else {
          process.stdout.write(`${token.accessToken}\n`);
          process.stderr.write(`${token.tokenType} token for ${token.resource}, scope "${token.scope.join(' ')}", expires ${token.expiresAt.toISOString()}\n`);
        }
      } catch (err) {
        if (err instanceof AgentAuthError) throw new MandateError('ERR_FORBIDDEN', `token exchange refused: ${err.error}: ${err.error_description ?? err.message}`);
        throw err;
      } finally {
        await svids.close();
      }
    });
  obo
    .command('authorize-url')
    .description('print a consent URL (authorization code + PKCE S256) for a client to send the principal to, and its code verifier')
    .requiredOption('--client <id>', 'the OAuth client (e.g. demo-app)')
    .requiredOption('--redirect-uri <uri>', 'a redirect URI registered for the client')
    .requiredOption('--agent <spiffe-id>', 'the agent the principal is asked to grant a mandate to')
    .requiredOption('--resource <uri>', 'the tool server (repeatable)', collect)
    .option('--scope <scope>', 'a scope to ask for (repeatable; default: the resource\'s scopes)', collect)
    .option('--issuer <url>', 'the authorization server\'s issuer (default: --server)')
    .addHelpText('after', `
Example:
  $ mandate obo authorize-url --client demo-app --redirect-uri http://127.0.0.1:8400/callback \\
      --agent spiffe://example.org/agent/triage-bot --resource http://127.0.0.1:8420/mcp/issues --scope issues:read`)
    .action((o: { client: string; redirectUri: string; agent: string; resource: string[]; scope?: string[]; issuer?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL('/oauth/authorize', o.issuer ?? g.server);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('client_id', o.client);
      url.searchParams.set('redirect_uri', o.redirectUri);
      url.searchParams.set('state', randomBytes(12).toString('base64url'));
      url.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
      url.searchParams.set('code_challenge_method', 'S256');
      url.searchParams.set('agent', o.agent);
      for (const r of o.resource) url.searchParams.append('resource', r);
      if (o.scope) url.searchParams.set('scope', o.scope.join(' '));
      if (g.json) print({ url: url.href, code_verifier: verifier }, true);
      else process.stdout.write(`${url.href}\ncode verifier (keep it for redeem): ${verifier}\n`);
    });
  obo
    .command('redeem')
    .description('redeem an authorization code (from the redirect after consent) for the principal\'s access token; prints it')
    .requiredOption('--client <id>', 'the public client the code was issued to')
    .requiredOption('--redirect-uri <uri>', 'the redirect URI of the authorization request')
    .requiredOption('--code <code>', 'the code from the redirect')
    .requiredOption('--code-verifier <verifier>', 'the verifier printed by authorize-url')
    .option('--resource <uri>', 'which resource, when consent named several')
    .addHelpText('after', `
Example:
  $ PRINCIPAL_TOKEN=$(mandate obo redeem --client demo-app --redirect-uri http://127.0.0.1:8400/callback --code ... --code-verifier ...)
  $ mandate obo exchange --svid-dir ./svid --subject-token "$PRINCIPAL_TOKEN" --resource http://127.0.0.1:8420/mcp/issues`)
    .action(async (o: { client: string; redirectUri: string; code: string; codeVerifier: string; resource?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const form = new URLSearchParams({ grant_type: 'authorization_code', client_id: o.client, redirect_uri: o.redirectUri, code: o.code, code_verifier: o.codeVerifier });
      if (o.resource) form.set('resource', o.resource);
      const res = await fetch(new URL('/oauth/token', g.server), { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
      const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new MandateError('ERR_FORBIDDEN', `code redemption refused: ${body.error ?? res.status}: ${body.error_description ?? ''}`);
      if (g.json) print(body, true);
      else process.stdout.write(`${body.access_token}\n`);
    });
  obo
    .command('introspect')
    .description('show whether a token is active and what it says (RFC 7662, through the admin API)')
    .argument('<token>', 'the access token')
    .addHelpText('after', `
Example:
  $ mandate obo introspect "$TOKEN"     # active: false once its mandate is revoked`)
    .action(async (token: string, _o: unknown, cmd: Command) => {
      const { client, json } = clientFrom(cmd);
      print(await client.request('POST', '/admin/v1/tokens/introspect', { token }), json);
    });
}
