/** Starts a real Mandate (HTTP on 127.0.0.1, SQLite in a temp dir) for scenario tests. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.ts';
import { MemoryEventSink } from '../../src/observability/events.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startMandate, type RunningMandate } from '../../src/server/app.ts';

export interface TestMandate extends RunningMandate {
  dataDir: string;
  events: MemoryEventSink;
  /** Everything the JSON logger wrote. */
  logs: () => string;
  admin(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
  call(method: string, path: string, init?: { body?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function startTestMandate(opts: { yaml?: string; dataDir?: string } = {}): Promise<TestMandate> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'mandate-test-'));
  const config = parseConfig(opts.yaml ?? 'trust_domain: example.org\n', join(dataDir, 'mandate.yaml'), {});
  let logText = '';
  const destination = new Writable({ write(chunk, _enc, done) { logText += chunk.toString(); done(); } });
  const events = new MemoryEventSink();
  const m = await startMandate({ config, dataDir, logger: createLogger({ level: 'debug', destination }), events, listen: { host: '127.0.0.1', port: 0 } });
  const call: TestMandate['call'] = async (method, path, init = {}) => {
    const res = await fetch(m.url + path, { method, body: init.body, headers: init.headers });
    const text = await res.text();
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* keep text */ }
    return { status: res.status, body, headers: res.headers };
  };
  const admin: TestMandate['admin'] = (method, path, body, token = m.adminToken ?? '') =>
    call(method, path, { body: body === undefined ? undefined : JSON.stringify(body), headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } });
  return Object.assign(m, { dataDir, events, logs: () => logText, admin, call });
}
