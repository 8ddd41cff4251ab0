/**
 * The server side of the demo (`mandate up --demo`, what `npm start` runs): the demo registration
 * entry and user, the demo issue tracker behind the gateway, and `<data dir>/demo.json`, the hand-over
 * to `mandate demo` (`npm run demo`), which drives the running instance as an agent and its person.
 *
 * demo.json exists only in demo mode and holds secrets: the admin token and the demo user's password,
 * which only the start that created them knows (their hashes alone are stored). It is written with
 * mode 0600, and a later start keeps the secrets a first start wrote there.
 *
 * Ports: the demo configuration names 127.0.0.1:8420 (Mandate) and 127.0.0.1:8421 (the tracker) in
 * several places (listen address, resources, the tool server's URL and audience). In demo mode,
 * MANDATE_DEMO_BASE_PORT=<n> moves both, consistently, to n and n+1 by rewriting those two addresses in
 * the configuration text before it is read (line numbers in errors stay true).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig } from '../config/load.ts';
import type { MandateConfig, ToolServerConfig } from '../config/types.ts';
import { startIssueTracker, type IssueTracker } from '../demo/issue-tracker.ts';
import { MandateError, messageOf } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { RunningMandate } from '../server/app.ts';

export const DEMO_AGENT = 'agent/triage-bot';

export const DEMO_USER = 'alice';

/** The tool server of the demo configuration that `--demo` serves with the demo issue tracker. */
export const DEMO_TOOL_SERVER = 'issues';

/** The hand-over file in the data directory. */
export const DEMO_FILE = 'demo.json';

/** Moves the demo's two ports (see the module comment). */
export const ENV_DEMO_BASE_PORT = 'MANDATE_DEMO_BASE_PORT';

/** The addresses the demo configuration uses, in the order the base port replaces them (n, n+1). */
const DEMO_ADDRESSES = ['127.0.0.1:8420', '127.0.0.1:8421'] as const;

export interface DemoSeed {
  spiffeId: string;
  joinToken: string;
  /** The demo user's password, when this start created the user (shown once). */
  userPassword: string | undefined;
}

/**
 * Seeds the demo registration entry and the demo user (both idempotent) and returns a fresh join
 * token for the agent.
 */
export async function seedDemo(m: RunningMandate): Promise<DemoSeed> {
  const spiffeId = `spiffe://${m.authority.trustDomain}/${DEMO_AGENT}`;
  const existing = await m.store.listEntriesBySpiffeId(spiffeId);
  if (existing.length === 0) {
    await m.authority.createEntry({ id: 'demo-triage-bot', spiffe_id: spiffeId, selectors: ['k8s:ns:demo', 'k8s:sa:triage-bot'], metadata: { owner: 'demo', description: 'the demo issue-triage agent' } });
  }
  const { token } = await m.authority.createJoinToken({ spiffe_id: spiffeId });
  let userPassword: string | undefined;
  if (!(await m.store.findUserByUsername(DEMO_USER))) {
    userPassword = randomBytes(12).toString('base64url');
    await m.delegation.directory.createUser({ username: DEMO_USER, displayName: 'Alice (demo)', password: userPassword });
  }
  return { spiffeId, joinToken: token, userPassword };
}

/** The base port from MANDATE_DEMO_BASE_PORT; undefined when unset. */
export function demoBasePort(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env[ENV_DEMO_BASE_PORT];
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port < 1 || port > 65534) {
    throw new MandateError('ERR_CONFIG_INVALID', `${ENV_DEMO_BASE_PORT} must be a port from 1 to 65534 (Mandate listens there, the demo tool server on the next one), got "${text}"`);
  }
  return port;
}

/**
 * The configuration for `mandate up --demo`: the file as it is, or with the demo's addresses moved to
 * MANDATE_DEMO_BASE_PORT and the port after it.
 */
export function loadDemoConfig(path: string, env: NodeJS.ProcessEnv = process.env): MandateConfig {
  const base = demoBasePort(env);
  if (base === undefined) return loadConfigFile(path, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [{ keyPath: '', message: `cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  return parseConfig(rebaseDemoPorts(text, base), path, env);
}

/** Replaces 127.0.0.1:8420 with 127.0.0.1:<base> and 127.0.0.1:8421 with 127.0.0.1:<base+1>. */
export function rebaseDemoPorts(text: string, base: number): string {
  return text.replace(/127\.0\.0\.1:(8420|8421)(?![0-9])/g, (address) => `127.0.0.1:${base + DEMO_ADDRESSES.indexOf(address as (typeof DEMO_ADDRESSES)[number])}`);
}

/** The demo tool server of the configuration, when it is one the demo tracker can serve. */
export function demoToolServer(config: MandateConfig): ToolServerConfig | undefined {
  const server = config.gateway.toolServers.find((s) => s.name === DEMO_TOOL_SERVER);
  return server?.type === 'mcp' && server.url !== undefined ? server : undefined;
}

/**
 * Starts the demo issue tracker where the demo tool server's URL points, accepting only tokens of
 * this Mandate for the audience the gateway mints them for. Undefined when the configuration has no
 * demo tool server (any configuration may be run with --demo).
 */
export async function startDemoTracker(m: RunningMandate, config: MandateConfig, logger: Logger): Promise<IssueTracker | undefined> {
  const server = demoToolServer(config);
  if (!server) return undefined;
  const url = new URL(server.url as string);
  const audience = server.credential.type === 'obo_token' ? server.credential.audience : url.origin;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  try {
    return await startIssueTracker({
      host, port,
      verifyCaller: { issuer: m.issuer, jwksUrl: `${m.issuer}/oauth/jwks`, audience },
      onError: (err) => logger.error({ err: messageOf(err) }, 'demo issue tracker failed'),
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new MandateError('ERR_CONFIG_INVALID', `the demo issue tracker cannot listen on ${url.host}: the port is in use (another \`npm start\`?); stop it, or set ${ENV_DEMO_BASE_PORT} to move the demo's ports`);
  }
}

/** What `mandate demo` needs to drive a running demo; written by `mandate up --demo`. */
export interface DemoFile {
  /** Says what the file is, for whoever finds it. */
  about: string;
  /** Mandate's base URL, and its issuer. */
  server: string;
  issuer: string;
  agent: { spiffe_id: string };
  /** The demo tool server as agents reach it through the gateway. */
  tool_server: { name: string; url: string; resource: string; scopes: string[] };
  /** The public OAuth client whose consent flow the demo user goes through. */
  client: { client_id: string; redirect_uri: string } | null;
  /** Only when the first start of this data directory wrote it. */
  admin_token?: string;
  user: { username: string; password?: string };
}

const ABOUT = 'Written by `mandate up --demo` for `npm run demo` (mandate demo). Holds secrets (the admin token, the demo user\'s password): for the local demo only; delete it with the data directory.';

/** The public client with the authorization-code grant that the demo user consents through. */
function consentClient(config: MandateConfig): DemoFile['client'] {
  const client = config.delegation.clients.find((c) => c.authMethod === 'none' && c.grantTypes.includes('authorization_code') && c.redirectUris.length > 0);
  return client ? { client_id: client.clientId, redirect_uri: client.redirectUris[0] as string } : null;
}

/** Reads demo.json when it is there and readable; undefined otherwise. */
function readExisting(path: string): Partial<DemoFile> | undefined {
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Partial<DemoFile>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes `<dataDir>/demo.json` (mode 0600, replaced atomically) for this start, keeping the admin
 * token and the demo user's password a previous start wrote when this one did not create them.
 * Returns the file's path.
 */
export function writeDemoFile(dataDir: string, m: RunningMandate, config: MandateConfig, seed: DemoSeed): string {
  const path = join(resolve(dataDir), DEMO_FILE);
  const before = readExisting(path);
  const server = demoToolServer(config);
  if (!server) throw new MandateError('ERR_CONFIG_INVALID', `the demo needs the gateway tool server "${DEMO_TOOL_SERVER}" (type mcp) of config/demo.yaml`);
  const resource = server.resource ?? `${m.issuer}${server.path}`;
  const adminToken = m.adminToken ?? (typeof before?.admin_token === 'string' ? before.admin_token : undefined);
  const keptPassword = before?.user?.username === DEMO_USER && typeof before.user.password === 'string' ? before.user.password : undefined;
  const password = seed.userPassword ?? keptPassword;
  const doc: DemoFile = {
    about: ABOUT,
    server: m.url,
    issuer: m.issuer,
    agent: { spiffe_id: seed.spiffeId },
    tool_server: { name: server.name, url: `${m.url}${server.path}`, resource, scopes: [...(config.delegation.resources.find((r) => r.uri === resource)?.scopes ?? [])] },
    client: consentClient(config),
    ...(adminToken !== undefined && { admin_token: adminToken }),
    user: { username: DEMO_USER, ...(password !== undefined && { password }) },
  };
  const partial = `${path}.partial`;
  try {
    rmSync(partial, { force: true });
    writeFileSync(partial, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(partial, path);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new MandateError('ERR_INTERNAL', `cannot write ${path}: ${messageOf(err)}`);
  }
  return path;
}

/**
 * Reads demo.json for `mandate demo`, saying exactly what to do when the demo is not running or the
 * file is missing or incomplete.
 */
export function readDemoFile(dataDir: string): DemoFile {
  const path = join(resolve(dataDir), DEMO_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new MandateError('ERR_BAD_REQUEST', `cannot read ${path}: ${messageOf(err)}`);
    throw new MandateError('ERR_NOT_FOUND', `${path} does not exist: start the demo first with \`npm start\` (mandate up --config config/demo.yaml --demo) in another terminal, then run \`npm run demo\` again (with MANDATE_HOME set as for npm start, if you set it there)`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new MandateError('ERR_BAD_REQUEST', `${path} is not JSON: stop Mandate, delete the file and run \`npm start\` again`);
  }
  const d = doc as Partial<DemoFile> | null;
  const str = (v: unknown) => typeof v === 'string' && v !== '';
  if (!d || !str(d.server) || !str(d.issuer) || !str(d.agent?.spiffe_id) || !str(d.tool_server?.url) || !str(d.tool_server?.resource) || !str(d.user?.username)) {
    throw new MandateError('ERR_BAD_REQUEST', `${path} is incomplete: stop Mandate and run \`npm start\` again, which rewrites it`);
  }
  return d as DemoFile;
}
