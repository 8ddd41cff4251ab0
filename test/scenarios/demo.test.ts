/**
 * Scenario: the demo as a newcomer runs it. `mandate up --config config/demo.yaml --demo` (what
 * `npm start` runs) as a real child process with its own data directory and ports moved by
 * MANDATE_DEMO_BASE_PORT, then `npm run demo` against it, twice, and again after a restart: the agent
 * gets its SVID, alice consents, the gateway allows one call and denies two, alice revokes, the agent
 * is refused, and the audit trail verifies. Also what the demo says when Mandate is not running.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEMO_FILE, ENV_DEMO_BASE_PORT, loadDemoConfig, rebaseDemoPorts, type DemoFile } from '../../src/cli/demo.ts';
import { outputOf, type CliRun } from '../support/cli.ts';

const REPO = process.cwd();
const BIN = join(REPO, 'bin/mandate.js');
const DEMO_CONFIG = join(REPO, 'config/demo.yaml');

/** True when nothing listens on 127.0.0.1:port. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A port n with n and n+1 free (the demo's two). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    if ((await isFree(base)) && (await isFree(base + 1))) return base;
  }
  throw new Error('no two consecutive free ports found');
}

/** The environment of a newcomer's shell: no admin token or server of another Mandate. */
function demoEnv(home: string, basePort?: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MANDATE_HOME: home };
  delete env.MANDATE_ADMIN_TOKEN;
  delete env.MANDATE_SERVER;
  delete env.MANDATE_CONFIG;
  if (basePort === undefined) delete env[ENV_DEMO_BASE_PORT];
  else env[ENV_DEMO_BASE_PORT] = String(basePort);
  return env;
}

interface Up {
  child: ChildProcessWithoutNullStreams;
  banner: string;
}

/** Starts `mandate up --demo` and resolves once its banner says it is up. */
function startUp(home: string, basePort: number): Promise<Up> {
  const child = spawn(process.execPath, [BIN, 'up', '--config', DEMO_CONFIG, '--demo'], { cwd: REPO, env: demoEnv(home, basePort) });
  child.stdout.resume();
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mandate up did not come up within 60 s:\n${stderr}`)), 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/Stop with Ctrl-C\./.test(stderr)) {
        clearTimeout(timer);
        resolve({ child, banner: stderr });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mandate up exited with ${code}:\n${stderr}`));
    });
  });
}

/** SIGTERM, and the exit code once it has stopped (SIGKILL after 20 s). */
function stop(up: Up | undefined): Promise<number | null> {
  if (!up || up.child.exitCode !== null) return Promise.resolve(up?.child.exitCode ?? null);
  return new Promise((resolve) => {
    const kill = setTimeout(() => up.child.kill('SIGKILL'), 20_000);
    up.child.once('exit', (code) => {
      clearTimeout(kill);
      resolve(code);
    });
    up.child.kill('SIGTERM');
  });
}

type Run = CliRun;

/** `npm run demo` as a newcomer types it, in the repository. */
function npmRunDemo(home: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  return outputOf(spawn('npm', ['run', '--silent', 'demo'], { cwd: REPO, env: { ...demoEnv(home), ...extraEnv } }));
}

/** The key lines of a successful run; returns the mandate it was granted. */
function checkRun(run: Run): string {
  assert.equal(run.status, 0, `npm run demo failed:\n${run.stdout}\n${run.stderr}`);
  const out = run.stdout;
  assert.match(out, /^1\. SVID +spiffe:\/\/example\.org\/agent\/triage-bot: an X\.509-SVID by join-token attestation/m);
  assert.match(out, /^2\. Mandate +alice signed in on the consent page and approved "issues:read issues:comment issues:delete"/m);
  const token = /^3\. OBO token .*DPoP-bound\): sub=\S+ \(alice\) act\.sub=spiffe:\/\/example\.org\/agent\/triage-bot scope="issues:read issues:comment issues:delete" .* mandate=(mdt_\S+)$/m.exec(out);
  assert.ok(token, `the token line:\n${out}`);
  assert.match(out, /^4\. tools\/list add_comment, get_issue, list_issues {2}\(delete_issue is hidden/m);
  assert.match(out, /^5\. list_issues acme\/api: allowed, 3 issues\n +#1 \[open\] Rate limiter drops requests during bursts/m);
  assert.match(out, /^6\. delete_issue acme\/api#1: denied \(JSON-RPC -31001\): .*the triage bot never deletes issues/m);
  assert.match(out, /^ {3}add_comment other\/secret-project#1: denied \(JSON-RPC -31001\): .*acme\/ repositories/m);
  assert.match(out, new RegExp(`^7\\. Revoked +alice revoked ${token[1]} on /account/mandates`, 'm'));
  assert.match(out, /^ {3}list_issues acme\/api: refused by the gateway \(HTTP 401\): invalid_token: .*revoked/m);
  assert.match(out, /^ {3}list_issues acme\/api again \(a new token exchange\): refused by the token endpoint: .*revoked/m);
  assert.match(out, /gateway\.decision +list_issues +allow +success/);
  assert.match(out, /gateway\.decision +delete_issue +deny +failure/);
  assert.match(out, /^ {3}verified \d+ events against checkpoint \d+ \(root [0-9a-f]{16}…\) signed by example\.org\/mandate\/audit$/m);
  assert.match(out, /^ {3}inclusion proof of event \d+ \(list_issues, allow\) verified against the checkpoint at size \d+$/m);
  assert.doesNotMatch(out, /mat_|eyJ/, 'no admin token and no JWT is printed');
  return token[1] as string;
}

describe('the demo configuration with moved ports', () => {
  it('moves 8420 and 8421 everywhere, consistently, and leaves other ports alone', () => {
    const text = readFileSync(DEMO_CONFIG, 'utf8');
    const moved = rebaseDemoPorts(text, 19_000);
    assert.doesNotMatch(moved, /:842[01]\b/);
    assert.match(moved, /127\.0\.0\.1:8400\/callback/, 'the consent client\'s redirect URI is no demo port');
    const config = loadDemoConfig(DEMO_CONFIG, { [ENV_DEMO_BASE_PORT]: '19000' });
    assert.deepEqual(config.server.listen, { host: '127.0.0.1', port: 19_000 });
    assert.deepEqual(config.delegation.resources.map((r) => r.uri), ['http://127.0.0.1:19000/mcp/issues']);
    const [issues] = config.gateway.toolServers;
    assert.equal(issues?.url, 'http://127.0.0.1:19001/mcp');
    assert.equal(issues?.resource, 'http://127.0.0.1:19000/mcp/issues');
    assert.deepEqual(issues?.credential, { type: 'obo_token', audience: 'http://127.0.0.1:19001', header: 'authorization', prefix: 'Bearer ' });
    assert.equal(loadDemoConfig(DEMO_CONFIG, {}).server.listen.port, 8420, 'unset: the file as it is');
  });

  it('refuses a base port that is not one', () => {
    for (const bad of ['0', '65535', '84x', '-1', '99999']) {
      assert.throws(() => loadDemoConfig(DEMO_CONFIG, { [ENV_DEMO_BASE_PORT]: bad }), new RegExp(`${ENV_DEMO_BASE_PORT} must be a port from 1 to 65534`));
    }
  });
});

describe('npm start and npm run demo', { timeout: 240_000 }, () => {
  const home = mkdtempSync(join(tmpdir(), 'mandate-demo-'));
  let basePort: number;
  let up: Up | undefined;
  const demoFile = (): DemoFile => JSON.parse(readFileSync(join(home, DEMO_FILE), 'utf8')) as DemoFile;

  before(async () => {
    basePort = await freePortPair();
    up = await startUp(home, basePort);
  });
  after(async () => {
    await stop(up);
    rmSync(home, { recursive: true, force: true });
  });

  it('starts with the gateway and the demo tool server, and says what to try', async () => {
    const banner = up?.banner ?? '';
    assert.match(banner, new RegExp(`Mandate is up at http://127\\.0\\.0\\.1:${basePort}`));
    assert.match(banner, new RegExp(`Demo tool server \\(an issue tracker\\) behind the gateway: http://127\\.0\\.0\\.1:${basePort}/mcp/issues`));
    assert.match(banner, /^ {2}npm run demo$/m);
    assert.match(banner, /^ {2}npx mandate audit tail -f$/m);
    const metadata = await fetch(`http://127.0.0.1:${basePort}/.well-known/oauth-protected-resource/mcp/issues`);
    assert.equal(metadata.status, 200);
    assert.equal(((await metadata.json()) as { resource: string }).resource, `http://127.0.0.1:${basePort}/mcp/issues`);
  });

  it('writes demo.json with mode 0600, holding the first start\'s secrets', () => {
    assert.equal(statSync(join(home, DEMO_FILE)).mode & 0o777, 0o600);
    const doc = demoFile();
    assert.equal(doc.server, `http://127.0.0.1:${basePort}`);
    assert.match(doc.admin_token ?? '', /^mat_/);
    assert.ok(up?.banner.includes(doc.admin_token as string), 'the token the banner showed');
    assert.equal(doc.user.username, 'alice');
    assert.ok(up?.banner.includes(`alice / ${doc.user.password}`), 'the password the banner showed');
    assert.equal(doc.tool_server.resource, `http://127.0.0.1:${basePort}/mcp/issues`);
  });

  it('runs the demo twice in a row, with a new mandate each time', async () => {
    const first = checkRun(await npmRunDemo(home));
    const second = checkRun(await npmRunDemo(home));
    assert.notEqual(first, second);
  });

  it('says whose admin token was refused, and exits 1', async () => {
    const refused = await npmRunDemo(home, { MANDATE_ADMIN_TOKEN: 'mat_not-this-one' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /does not accept the admin token from MANDATE_ADMIN_TOKEN \(or --admin-token\): unset MANDATE_ADMIN_TOKEN to use the one in demo\.json/);
  });

  it('keeps the secrets in demo.json across a restart, and the demo still runs', async () => {
    const before = demoFile();
    assert.equal(await stop(up), 0, 'a clean shutdown');
    up = await startUp(home, basePort);
    assert.doesNotMatch(up.banner, /Admin token \(shown once/, 'the token was not created again');
    const afterRestart = demoFile();
    assert.equal(afterRestart.admin_token, before.admin_token);
    assert.equal(afterRestart.user.password, before.user.password);
    checkRun(await npmRunDemo(home));
  });

  it('says how to start Mandate when it is not running, and exits 1', async () => {
    assert.equal(await stop(up), 0);
    const down = await npmRunDemo(home);
    assert.equal(down.status, 1);
    assert.match(down.stderr, new RegExp(`Mandate is not running at http://127\\.0\\.0\\.1:${basePort}: start it with \`npm start\``));
  });

  it('says how to start the demo when demo.json is missing, and exits 1', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'mandate-demo-none-'));
    const missing = await npmRunDemo(empty);
    rmSync(empty, { recursive: true, force: true });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /demo\.json does not exist: start the demo first with `npm start`/);
  });
});
