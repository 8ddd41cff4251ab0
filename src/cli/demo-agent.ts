/**
 * The demo agent (`npm run demo`, i.e. `mandate demo`): drives the instance `npm start` runs, reading
 * `<data dir>/demo.json`, as the triage bot and as its person, alice. Every step goes through the
 * public interfaces an agent and a person have — the agent SDK, the official MCP SDK client, the
 * consent and account pages over HTTP (forms with their CSRF tokens), the admin API for what an
 * operator does — and prints one numbered line with what came of it:
 *
 *   1. the agent's SVID: a join token from the admin API, attestation with the identity SDK;
 *   2. a mandate: alice signs in on the consent page and approves; the client redeems the code;
 *   3. an OBO token: the agent's token exchange (DPoP-bound), done by mandateFetch; its claims;
 *   4. tools/list through the gateway (filtered by policy);
 *   5. an allowed call; 6. a forbidden tool and an allowed tool with forbidden arguments;
 *   7. alice revokes the mandate on /account/mandates; the agent is refused;
 *   8. the audit trail of this run, verified offline (export + checkpoint key, and one inclusion proof).
 *
 * Tokens and passwords are never printed; only claims that say what a token is for.
 * An unexpected outcome stops the run with a MandateError (exit 1).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { decodeJwt } from 'jose';
import { parseVerifierKey } from '../audit/note.ts';
import { verifyExport, verifyProofBundle } from '../audit/verify.ts';
import { isMandateError, MandateError, messageOf } from '../errors.ts';
import { AgentAuthError, MandateAgent, mandateFetch, SUBJECT_TOKEN_TYPES, type Grant, type SvidSource } from '../sdk/agent/index.ts';
import { IdentityClient } from '../sdk/identity/client.ts';
import { generateKeyAndCsr } from '../sdk/identity/csr.ts';
import { AdminClient } from './admin-client.ts';
import { readDemoFile, type DemoFile } from './demo.ts';
import { hiddenField, PageBrowser, type BrowserReply } from './page-browser.ts';

export interface DemoAgentOptions {
  /** Where `mandate up --demo` wrote demo.json. */
  dataDir: string;
  /** An admin token given explicitly ($MANDATE_ADMIN_TOKEN, --admin-token): used instead of demo.json's. */
  adminToken?: string;
  /** Where the lines go; default standard output. */
  write?: (line: string) => void;
}

/** What the run needs as it goes, step to step. */
interface Run {
  demo: DemoFile;
  admin: AdminClient;
  /** Where the admin token came from, for the message when it is refused. */
  adminTokenSource: string;
  say: (line: string) => void;
}

const REPOSITORY = 'acme/api';
const FORBIDDEN_REPOSITORY = 'other/secret-project';
const CLIENT_INFO = { name: 'triage-bot', version: '1.0.0' };

/**
 * Runs the whole demo against the running instance.
 *
 * @throws MandateError saying what went wrong and, where it can, what to do.
 */
export async function runDemoAgent(opts: DemoAgentOptions): Promise<void> {
  const demo = readDemoFile(opts.dataDir);
  const say = opts.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const adminToken = opts.adminToken || demo.admin_token;
  if (!adminToken) {
    throw new MandateError('ERR_UNAUTHENTICATED', 'demo.json holds no admin token (this data directory was made before demo.json existed): export MANDATE_ADMIN_TOKEN=<the token the first `npm start` printed>, or stop Mandate, delete the data directory and run `npm start` again');
  }
  const adminTokenSource = opts.adminToken ? 'MANDATE_ADMIN_TOKEN (or --admin-token)' : 'demo.json';
  const run: Run = { demo, admin: new AdminClient({ server: demo.server, adminToken }), adminTokenSource, say };
  try {
    await steps(run);
  } catch (err) {
    if (err instanceof MandateError) throw err;
    throw new MandateError('ERR_INTERNAL', `the demo stopped: ${messageOf(err)}`, { cause: err });
  }
}

async function steps(run: Run): Promise<void> {
  const { demo, say } = run;
  const start = await logSize(run);
  say(`Mandate demo: the triage bot works ${demo.user.username}'s issue tracker through the gateway at ${demo.tool_server.url}`);
  say('');
  const svids = await getSvid(run);
  const agent = new MandateAgent({ issuer: demo.issuer, svids });
  const client = new Client(CLIENT_INFO);
  try {
    const consent = await getMandate(run);
    const grant: Grant = { subjectToken: consent.token, subjectTokenType: SUBJECT_TOKEN_TYPES.accessToken };
    await client.connect(new StreamableHTTPClientTransport(new URL(demo.tool_server.url), { fetch: mandateFetch(agent, demo.tool_server.resource, grant) }));
    const mandateId = await showToken(run, agent, grant);
    await listTools(run, client);
    await allowedCall(run, client);
    await deniedCalls(run, client);
    await revokeAndRefuse(run, consent.browser, mandateId, client);
    await auditTrail(run, start);
  } finally {
    await client.close().catch(() => undefined);
    await agent.close();
    await svids.close();
  }
}

// ---------------------------------------------------------------------------------------------
// the running instance

/** Is Mandate up, and the admin token good? Returns the audit log's size: where this run starts. */
async function logSize(run: Run): Promise<number> {
  try {
    const key = await run.admin.request<{ size: number }>('GET', '/admin/v1/audit/key');
    return key.size;
  } catch (err) {
    if (isMandateError(err, 'ERR_SERVER_UNREACHABLE') || isMandateError(err, 'ERR_TIMEOUT')) {
      throw new MandateError('ERR_SERVER_UNREACHABLE', `Mandate is not running at ${run.demo.server}: start it with \`npm start\` in another terminal, wait for "Mandate is up", then run \`npm run demo\` again`);
    }
    if (isMandateError(err, 'ERR_UNAUTHENTICATED')) {
      const fix = run.adminTokenSource === 'demo.json'
        ? 'was it reset? export the current one as MANDATE_ADMIN_TOKEN'
        : 'unset MANDATE_ADMIN_TOKEN to use the one in demo.json, or export the current one';
      throw new MandateError('ERR_UNAUTHENTICATED', `Mandate at ${run.demo.server} does not accept the admin token from ${run.adminTokenSource}: ${fix}`);
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// 1. the SVID

async function getSvid(run: Run): Promise<SvidSource & { close(): Promise<void> }> {
  const spiffeId = run.demo.agent.spiffe_id;
  const { token } = await run.admin.request<{ token: string }>('POST', '/admin/v1/join-tokens', { spiffe_id: spiffeId, ttl: 300 });
  const identity = new IdentityClient({ serverUrl: run.demo.server });
  const { privateKey, csrPem } = await generateKeyAndCsr();
  const svid = await identity.attest({ type: 'join_token', token }, csrPem);
  const current = { chain: svid.chain, privateKey };
  run.say(`1. SVID       ${svid.spiffeId.toString()}: an X.509-SVID by join-token attestation (a one-time token from the admin API), valid until ${clock(svid.expiresAt)}`);
  // JWT-SVIDs for the token exchange, each proved with the X.509-SVID's key (SVID-PoP).
  return { jwtSvid: async (audience) => (await identity.fetchJwtSvid(current, [audience])).token, close: () => identity.close() };
}

// ---------------------------------------------------------------------------------------------
// 2. the mandate: alice's consent, over HTTP as her browser sends it

/** A redirect from the pages, or a refusal naming the step and what the page said. */
function redirected(reply: BrowserReply, step: string): URL {
  if (reply.status === 303 && reply.location) return reply.location;
  const said = /role="alert">([^<]*)</.exec(reply.text)?.[1] ?? reply.text.slice(0, 200);
  throw new MandateError('ERR_FORBIDDEN', `${step}: HTTP ${reply.status}: ${said}`);
}

/**
 * Alice grants the mandate herself: the consent client's authorization request (PKCE S256), sign-in
 * with her password, approval on the consent page; the client redeems the code for her token, which
 * the agent then exchanges. The browser keeps her session for step 7.
 */
async function getMandate(run: Run): Promise<{ token: string; browser: PageBrowser }> {
  const { demo } = run;
  if (!demo.client) throw new MandateError('ERR_CONFIG_INVALID', 'the configuration has no public client with the authorization-code grant for the consent flow (config/demo.yaml has demo-app)');
  if (demo.user.password === undefined) {
    throw new MandateError('ERR_UNAUTHENTICATED', `demo.json holds no password for ${demo.user.username} (this data directory was made before demo.json existed): stop Mandate, delete the data directory and run \`npm start\` again`);
  }
  const browser = new PageBrowser(demo.server);
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(12).toString('base64url');
  const authorize = new URL('/oauth/authorize', demo.issuer);
  const params = {
    response_type: 'code', client_id: demo.client.client_id, redirect_uri: demo.client.redirect_uri, state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    agent: demo.agent.spiffe_id, resource: demo.tool_server.resource, scope: demo.tool_server.scopes.join(' '),
  };
  for (const [k, v] of Object.entries(params)) authorize.searchParams.set(k, v);
  const signIn = redirected(await browser.get(authorize), 'the authorization request');
  const signInPage = await browser.get(signIn);
  const request = signIn.searchParams.get('request') ?? '';
  const consent = redirected(await browser.post('/signin', { request, csrf: hiddenField(signInPage.text, 'csrf'), username: demo.user.username, password: demo.user.password }), 'sign-in');
  const consentPage = await browser.get(consent);
  const back = redirected(await browser.post('/consent', { request: hiddenField(consentPage.text, 'request'), csrf: hiddenField(consentPage.text, 'csrf'), decision: 'approve' }), 'consent');
  const code = back.searchParams.get('code');
  if (code === null || back.searchParams.get('state') !== state || back.searchParams.get('iss') !== demo.issuer) {
    throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `consent sent the browser back without a code for this request: ${back.searchParams.get('error') ?? 'state or iss do not match'}`);
  }
  const token = await redeem(run, code, verifier);
  run.say(`2. Mandate    ${demo.user.username} signed in on the consent page and approved "${demo.tool_server.scopes.join(' ')}" at ${demo.tool_server.resource} for ${demo.agent.spiffe_id}`);
  return { token, browser };
}

/** The consent client redeems the code (PKCE) for alice's access token. */
async function redeem(run: Run, code: string, verifier: string): Promise<string> {
  const { demo } = run;
  const form = new URLSearchParams({ grant_type: 'authorization_code', client_id: demo.client?.client_id ?? '', redirect_uri: demo.client?.redirect_uri ?? '', code, code_verifier: verifier });
  const res = await fetch(new URL('/oauth/token', demo.issuer), { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json().catch(() => ({}))) as { access_token?: unknown; error?: string; error_description?: string };
  if (!res.ok || typeof body.access_token !== 'string') throw new MandateError('ERR_FORBIDDEN', `the code was not redeemed: ${body.error ?? `HTTP ${res.status}`}: ${body.error_description ?? ''}`);
  return body.access_token;
}

// ---------------------------------------------------------------------------------------------
// 3.-6. the OBO token and the calls through the gateway

/** Prints what the OBO token says (never the token) and returns its mandate id. */
async function showToken(run: Run, agent: MandateAgent, grant: Grant): Promise<string> {
  // The exchange happened in mandateFetch when the client connected; this reads the agent's cached token.
  const token = await agent.tokenFor(run.demo.tool_server.resource, grant);
  const claims = decodeJwt(token.accessToken) as { sub?: string; act?: { sub?: string }; scope?: string; aud?: unknown; exp?: number; mandate?: string; cnf?: { jkt?: string } };
  const exp = claims.exp === undefined ? 'no exp' : clock(new Date(claims.exp * 1000));
  run.say(`3. OBO token  exchanged by mandateFetch (RFC 8693, ${token.tokenType}-bound): sub=${claims.sub} (${run.demo.user.username}) act.sub=${claims.act?.sub} scope="${claims.scope}" aud=${JSON.stringify(claims.aud)} exp=${exp} mandate=${claims.mandate}`);
  if (typeof claims.mandate !== 'string') throw new MandateError('ERR_SERVER_RESPONSE_INVALID', 'the OBO token names no mandate');
  return claims.mandate;
}

async function listTools(run: Run, client: Client): Promise<void> {
  const names = (await client.listTools()).tools.map((t) => t.name).sort();
  if (names.includes('delete_issue')) throw new MandateError('ERR_FORBIDDEN', 'tools/list shows delete_issue, which policy forbids this agent');
  run.say(`4. tools/list ${names.join(', ')}  (delete_issue is hidden: policy forbids it to this agent)`);
}

/** list_issues on acme/api, which the demo policies allow. */
async function allowedCall(run: Run, client: Client): Promise<void> {
  const result = (await client.callTool({ name: 'list_issues', arguments: { repository: REPOSITORY } })) as CallToolResult;
  if (result.isError) throw new MandateError('ERR_UPSTREAM', `list_issues failed: ${JSON.stringify(result.content).slice(0, 200)}`);
  const issues = (result.structuredContent as { issues?: Array<{ number: number; title: string; state: string }> } | undefined)?.issues ?? [];
  run.say(`5. list_issues ${REPOSITORY}: allowed, ${issues.length} issues`);
  for (const i of issues) run.say(`     #${i.number} [${i.state}] ${i.title}`);
}

/** A call policy must deny: its JSON-RPC error, or a failure when it went through. */
async function denied(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  try {
    await client.callTool({ name, arguments: args });
  } catch (err) {
    if (err instanceof McpError) return `denied (JSON-RPC ${err.code}): ${err.message.replace(/^MCP error -?\d+: /, '')}`;
    throw err;
  }
  throw new MandateError('ERR_FORBIDDEN', `${name} ${JSON.stringify(args)} was allowed, but the demo policies forbid it`);
}

async function deniedCalls(run: Run, client: Client): Promise<void> {
  run.say(`6. delete_issue ${REPOSITORY}#1: ${await denied(client, 'delete_issue', { repository: REPOSITORY, issue: 1 })}`);
  run.say(`   add_comment ${FORBIDDEN_REPOSITORY}#1: ${await denied(client, 'add_comment', { repository: FORBIDDEN_REPOSITORY, issue: 1, body: 'Any news?' })}`);
}

// ---------------------------------------------------------------------------------------------
// 7. alice revokes; the agent is refused

async function revokeAndRefuse(run: Run, browser: PageBrowser, mandateId: string, client: Client): Promise<void> {
  const page = await browser.get('/account/mandates');
  if (page.status !== 200 || !page.text.includes(`data-mandate="${mandateId}"`)) throw new MandateError('ERR_NOT_FOUND', `mandate ${mandateId} is not on ${run.demo.user.username}'s /account/mandates page (HTTP ${page.status})`);
  redirected(await browser.post(`/account/mandates/${encodeURIComponent(mandateId)}/revoke`, { csrf: hiddenField(page.text, 'csrf') }), 'revocation');
  run.say(`7. Revoked    ${run.demo.user.username} revoked ${mandateId} on /account/mandates (signed in, the form with its CSRF token)`);
  run.say(`   list_issues ${REPOSITORY}: ${await refused(client)}`);
  run.say(`   list_issues ${REPOSITORY} again (a new token exchange): ${await refused(client)}`);
}

/** Why the gateway or the authorization server refused a call that must now fail. */
async function refused(client: Client): Promise<string> {
  try {
    await client.callTool({ name: 'list_issues', arguments: { repository: REPOSITORY } });
  } catch (err) {
    if (err instanceof AgentAuthError) return `refused by the token endpoint: ${err.error}: ${err.error_description ?? err.message}`;
    if (err instanceof StreamableHTTPError) return `refused by the gateway (HTTP ${err.code}): ${oauthReason(err.message)}`;
    return `refused: ${messageOf(err)}`;
  }
  throw new MandateError('ERR_FORBIDDEN', 'the call went through after the mandate was revoked');
}

/** `error: description` of the OAuth error body the transport's message ends with, else the message. */
function oauthReason(message: string): string {
  try {
    const body = JSON.parse(message.slice(message.indexOf('{'))) as { error?: unknown; error_description?: unknown };
    if (typeof body.error === 'string') return `${body.error}: ${String(body.error_description ?? '')}`;
  } catch {
    // not JSON: the message as it is
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// 8. the audit trail, verified offline

interface AuditEntry {
  index: number;
  event: { time?: string; type?: string; tool?: string; action?: string; decision?: { decision?: string }; outcome?: string };
}

/** The events [from, to), page by page. */
async function eventsBetween(run: Run, from: number, to: number): Promise<AuditEntry[]> {
  const events: AuditEntry[] = [];
  for (let after = from - 1; after < to - 1;) {
    const page = await run.admin.request<{ events: AuditEntry[] }>('GET', `/admin/v1/audit/events?after=${after}&limit=1000`);
    const inRange = page.events.filter((e) => e.index < to);
    events.push(...inRange);
    if (page.events.length === 0 || inRange.length < page.events.length) break;
    after = (page.events.at(-1) as AuditEntry).index;
  }
  return events;
}

/**
 * Signs a checkpoint of the log as it is now, prints this run's events up to it, and verifies them
 * as anyone holding only the export and the public key would: the export against the checkpoint, and
 * the allowed call's event with its inclusion proof.
 */
async function auditTrail(run: Run, start: number): Promise<void> {
  const { admin, say } = run;
  const checkpoint = await admin.request<{ size: number; root_hash: string }>('POST', '/admin/v1/audit/checkpoint');
  const events = await eventsBetween(run, start, checkpoint.size);
  say(`8. Audit      this run's events ${start}..${checkpoint.size - 1}:`);
  for (const { index, event: e } of events) {
    say(`     ${String(index).padStart(5)}  ${(e.time ?? '').slice(11, 23)}  ${(e.type ?? '').padEnd(26)} ${(e.tool ?? e.action ?? '-').padEnd(13)} ${(e.decision?.decision ?? '-').padEnd(6)} ${e.outcome ?? '-'}`);
  }
  const key = await admin.request<{ origin: string; verifier_key: string }>('GET', '/admin/v1/audit/key');
  const opts = { verifiers: [parseVerifierKey(key.verifier_key)], origin: key.origin };
  const exported = await admin.request<string>('GET', `/admin/v1/audit/export?from=${start}&to=${checkpoint.size}`, undefined, { accept: 'text' });
  const report = await verifyExport(exported.split('\n').filter((l) => l !== ''), opts);
  if (!report.ok) throw new MandateError('ERR_FORBIDDEN', `the audit export does not verify: ${report.problems[0]}`);
  say(`   verified ${report.events} events against checkpoint ${checkpoint.size} (root ${checkpoint.root_hash.slice(0, 16)}…) signed by ${key.origin}`);
  const allowed = events.find((e) => e.event.type === 'gateway.decision' && e.event.tool === 'list_issues' && e.event.decision?.decision === 'allow');
  if (!allowed) throw new MandateError('ERR_NOT_FOUND', 'the allowed list_issues call is not in the audit log');
  const bundle = await admin.request('GET', `/admin/v1/audit/proof/inclusion?index=${allowed.index}&size=${checkpoint.size}`);
  const proof = verifyProofBundle(bundle, opts);
  if (!proof.ok) throw new MandateError('ERR_FORBIDDEN', `the inclusion proof of event ${allowed.index} does not verify: ${proof.problems[0]}`);
  say(`   inclusion proof of event ${allowed.index} (list_issues, allow) verified against the checkpoint at size ${proof.size}`);
}

/** HH:MM:SS (UTC) of a time. */
function clock(time: Date): string {
  return `${time.toISOString().slice(11, 19)} UTC`;
}
