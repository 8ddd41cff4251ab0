/**
 * `mandate audit ...` run as the real program. Offline first, with no server: an exported log and
 * proof bundles verify, and tampered copies fail naming the first bad index. Then against a running
 * Mandate: the key, checkpoints, export then verify, queries, proofs, tail and tail -f.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportAuditLog } from '../../src/audit/export.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { generateNoteKey, parseSignerKey } from '../../src/audit/note.ts';
import type { ConsistencyProofBundle, InclusionProofBundle } from '../../src/audit/verify.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { cliFor } from '../support/cli.ts';
import { startTestMandate, type TestMandate } from '../support/mandate.ts';

const BIN = join(process.cwd(), 'bin/mandate.js');
const ORIGIN = 'example.org/mandate/audit';

describe('mandate audit verify, offline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-cli-audit-'));
  const keys = generateNoteKey('example.org-audit');
  const exportFile = join(dir, 'audit.jsonl');
  const keyFile = join(dir, 'audit.vkey');
  let lines: string[];
  let inclusion: InclusionProofBundle;
  let consistency: ConsistencyProofBundle;
  let lastNote: string;
  const run = (args: string[], input?: string) => spawnSync(process.execPath, [BIN, 'audit', ...args], { encoding: 'utf8', timeout: 60_000, input });

  before(async () => {
    const store = await openSqliteStore({ path: join(dir, 'mandate.db') });
    try {
      const log = await AuditLog.open({ store, origin: ORIGIN, signer: parseSignerKey(keys.signerKey) });
      const notes = new Map<number, string>();
      for (const size of [100, 250, 300]) {
        await Promise.all(Array.from({ length: size - log.size }, (_, i) => log.append({
          v: 1, time: new Date(Date.UTC(2026, 10, 24, 10, 0, log.size + i)).toISOString(), type: 'gateway.decision', outcome: 'success',
          agent: 'spiffe://example.org/agent/triage-bot', tool: 'add_comment', decision: { decision: 'allow', policies: ['p'] }, replica: 'r1',
        })));
        notes.set(size, await log.checkpoint());
      }
      lastNote = notes.get(300) as string;
      const out = createWriteStream(exportFile);
      await exportAuditLog(store, out);
      out.end();
      await once(out, 'finish');
      const [record] = await store.getAuditRecords(123, 124);
      inclusion = {
        format: 'mandate-audit-proof', version: 1, index: 123, size: 250, event: record?.event as string,
        proof: (await log.inclusionProof(123, 250)).map((h) => h.toString('hex')), checkpoint: notes.get(250) as string,
      };
      consistency = {
        format: 'mandate-audit-consistency', version: 1, from: 100, to: 300,
        proof: (await log.consistencyProof(100, 300)).map((h) => h.toString('hex')), from_checkpoint: notes.get(100) as string, to_checkpoint: notes.get(300) as string,
      };
    } finally {
      await store.close();
    }
    writeFileSync(keyFile, `# the audit log's checkpoint key\n${keys.verifierKey}\n`);
    lines = readFileSync(exportFile, 'utf8').trimEnd().split('\n');
  });

  /** A copy of the export with `change` applied to its lines. */
  const tampered = (name: string, change: (lines: string[]) => string[]): string => {
    const file = join(dir, name);
    writeFileSync(file, `${change([...lines]).join('\n')}\n`);
    return file;
  };
  const recordLine = (index: number) => lines.findIndex((l) => l.startsWith(`{"index":${index},`));

  it('verifies the export with the key given inline, from @file, and on standard input', () => {
    const inline = run(['verify', '--key', keys.verifierKey, exportFile]);
    assert.equal(inline.status, 0, inline.stdout + inline.stderr);
    assert.match(inline.stdout, /verified 300 events \(0\.\.299\) and 3 signed checkpoints/);
    const fromFile = run(['verify', '--key', `@${keyFile}`, '--origin', ORIGIN, exportFile]);
    assert.equal(fromFile.status, 0, fromFile.stdout + fromFile.stderr);
    const stdin = run(['verify', '--key', `@${keyFile}`, '-'], readFileSync(exportFile, 'utf8'));
    assert.equal(stdin.status, 0, stdin.stdout + stdin.stderr);
    assert.equal(stdin.stderr, '', 'no progress bar when stderr is not a terminal');
  });

  it('fails with exit 1 naming the first bad index when the export was changed', () => {
    const changed = tampered('changed.jsonl', (l) => l.map((line, i) => (i === recordLine(123) ? line.replace('add_comment', 'delete_issue') : line)));
    const res = run(['verify', '--key', `@${keyFile}`, changed]);
    assert.equal(res.status, 1);
    assert.match(res.stdout, /verification FAILED at line \d+\nevent 123 was changed: its leaf hash does not match/);
    assert.match(res.stdout, /first bad index: 123/);

    const dropped = tampered('dropped.jsonl', (l) => l.filter((_, i) => i !== recordLine(77)));
    const json = run(['verify', '--key', `@${keyFile}`, dropped, '--json']);
    assert.equal(json.status, 1);
    const report = JSON.parse(json.stdout);
    assert.equal(report.ok, false);
    assert.equal(report.firstBadIndex, 77);
    assert.match(report.problems[0], /^event 77 is missing/);

    // Cut back together with its last checkpoint, the export looks whole; a kept checkpoint shows the loss.
    const cut = tampered('cut.jsonl', (l) => l.slice(0, recordLine(260)));
    assert.equal(run(['verify', '--key', `@${keyFile}`, cut]).status, 0);
    const kept = join(dir, 'kept.note');
    writeFileSync(kept, lastNote);
    const caught = run(['verify', '--key', `@${keyFile}`, '--checkpoint', kept, cut]);
    assert.equal(caught.status, 1, caught.stdout + caught.stderr);
    assert.match(caught.stdout, /the log lost events 260\.\.299: trusted checkpoint 1 was signed at size 300/);

    const truncated = tampered('truncated.jsonl', (l) => [...l.slice(0, recordLine(280)), l.at(-1) as string]);
    const lost = run(['verify', '--key', `@${keyFile}`, truncated]);
    assert.equal(lost.status, 1);
    assert.match(lost.stdout, /the log lost events 280\.\.299/);
  });

  it('fails on another key, an unreadable key, a missing file and a file that is not an export', () => {
    const other = run(['verify', '--key', generateNoteKey('example.org-audit').verifierKey, exportFile]);
    assert.equal(other.status, 1);
    assert.match(other.stdout, /the checkpoint on line \d+ is refused: .*no signature from a known key/);
    const bad = run(['verify', '--key', 'not-a-key', exportFile]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /verifier key refused/);
    const missing = run(['verify', '--key', keys.verifierKey, join(dir, 'nope.jsonl')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read .*nope\.jsonl: ENOENT/);
    const directory = run(['verify', '--key', keys.verifierKey, dir]);
    assert.equal(directory.status, 1);
    assert.match(directory.stderr, /cannot read .*EISDIR/);
    const garbage = tampered('garbage.jsonl', () => ['\u0000\u0001 binary', 'x'.repeat(100)]);
    const notExport = run(['verify', '--key', keys.verifierKey, garbage]);
    assert.equal(notExport.status, 1);
    assert.match(notExport.stdout, /line 1 is not a Mandate audit export header/);
  });

  it('verifies inclusion and consistency bundles, and fails a changed one', () => {
    const inc = join(dir, 'inclusion.json');
    writeFileSync(inc, JSON.stringify(inclusion));
    const ok = run(['verify', '--key', `@${keyFile}`, '--proof', inc]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /verified against the checkpoint of example\.org\/mandate\/audit at size 250/);
    const con = join(dir, 'consistency.json');
    writeFileSync(con, JSON.stringify(consistency));
    assert.equal(run(['verify', '--key', `@${keyFile}`, '--proof', con]).status, 0);

    const forged = join(dir, 'forged.json');
    writeFileSync(forged, JSON.stringify({ ...inclusion, event: inclusion.event.replace('"allow"', '"deny"') }));
    const res = run(['verify', '--key', `@${keyFile}`, '--proof', forged]);
    assert.equal(res.status, 1);
    assert.match(res.stdout, /event 123 is not in the log the checkpoint signs at size 250/);
    writeFileSync(forged, '{"format":"mandate-audit-proof","version":9}');
    assert.match(run(['verify', '--key', `@${keyFile}`, '--proof', forged]).stdout, /unsupported mandate-audit-proof version 9/);
    writeFileSync(forged, 'not json');
    assert.match(run(['verify', '--key', `@${keyFile}`, '--proof', forged]).stderr, /is not JSON: not a proof bundle/);
  });
});

describe('mandate audit against a running Mandate', () => {
  let m: TestMandate;
  const cli = cliFor(() => m);
  const dir = mkdtempSync(join(tmpdir(), 'mandate-cli-audit-online-'));
  const keyFile = join(dir, 'audit.vkey');

  const record = (n: number, extra: Record<string, unknown> = {}) => m.audit.record({
    type: 'gateway.decision', outcome: n % 3 ? 'success' : 'failure', agent: `spiffe://example.org/agent/bot-${n % 2}`,
    principal: { issuer: 'https://sso.example', subject: n % 2 ? 'alice' : 'bob' }, tool: n % 2 ? 'add_comment' : 'close_issue',
    decision: { decision: n % 3 ? 'allow' : 'deny', policies: ['p'] }, ...extra,
  });

  before(async () => {
    m = await startTestMandate();
    for (let n = 0; n < 30; n++) await record(n);
  });
  after(() => m?.close());

  it('prints the key, signs and shows checkpoints, exports the log, and the export verifies offline', async () => {
    const key = await cli.ok(['audit', 'key']);
    assert.match(key, /^example\.org[^\s+]*\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n$/);
    writeFileSync(keyFile, key);
    assert.equal(JSON.parse(await cli.ok(['audit', 'key', '--json'])).verifier_key, key.trim());

    const note = await cli.ok(['audit', 'checkpoint', '--new']);
    assert.match(note, new RegExp(`^${ORIGIN.replaceAll('.', '\\.')}\\n\\d+\\n[A-Za-z0-9+/=]{44}\\ntime \\d+\\n\\n\\u2014 `));
    // The latest: this one, or a scheduled one signed since over a longer log.
    const sizeOf = (text: string) => Number(text.split('\n')[1]);
    const shown = await cli.ok(['audit', 'checkpoint']);
    assert.ok(shown === note || sizeOf(shown) > sizeOf(note), shown);

    const file = join(dir, 'export.jsonl');
    const exported = await cli.run(['audit', 'export', '--out', file]);
    assert.equal(exported.status, 0, exported.stderr);
    assert.match(exported.stderr, /wrote \d+ lines to /);
    const verified = await cli.run(['audit', 'verify', '--key', `@${keyFile}`, '--origin', ORIGIN, file]);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /verified \d+ events/);

    const streamed = await cli.ok(['audit', 'export', '--out', '-']);
    assert.match(streamed, /^\{"format":"mandate-audit-export","version":1,"origin":"example\.org\/mandate\/audit"\}\n\{"index":0,"event":\{/);

    const part = join(dir, 'part.jsonl');
    assert.equal((await cli.run(['audit', 'export', '--from', '10', '--out', part])).status, 0);
    const partReport = JSON.parse((await cli.ok(['audit', 'verify', '--key', `@${keyFile}`, part, '--json'])));
    assert.equal(partReport.ok, true);
    assert.equal(partReport.events, partReport.size - 10);
    const refused = await cli.run(['audit', 'export', '--from', '20', '--to', '10', '--out', part]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /cannot export events .*\(ERR_BAD_REQUEST\)/);
    const unauthenticated = await cli.run(['audit', 'export', '--out', part, '--admin-token', 'wrong']);
    assert.equal(unauthenticated.status, 1);
    assert.match(unauthenticated.stderr, /ERR_UNAUTHENTICATED/);
  });

  it('queries by agent, person, tool, decision and time, as a table or JSON', async () => {
    const table = await cli.ok(['audit', 'query', '--tool', 'add_comment', '--decision', 'deny']);
    const [header, ...rows] = table.trimEnd().split('\n');
    assert.match(header as string, /^INDEX\s+TIME\s+TYPE\s+AGENT\s+PRINCIPAL\s+TOOL\s+DECISION\s+OUTCOME$/);
    assert.equal(rows.length, 5, table); // n odd and a multiple of 3 below 30: 3, 9, 15, 21, 27
    for (const r of rows) assert.match(r, /gateway\.decision\s+spiffe:\/\/example\.org\/agent\/bot-1\s+alice\s+add_comment\s+deny\s+failure$/);

    const page = JSON.parse(await cli.ok(['audit', 'query', '--principal', 'https://sso.example', 'bob', '--since', '1h', '--limit', '4', '--json']));
    assert.equal(page.events.length, 4);
    assert.ok(page.events.every((e: { event: { principal: { subject: string } } }) => e.event.principal.subject === 'bob'));
    assert.equal(page.next_after, page.events[3].index);
    const next = JSON.parse(await cli.ok(['audit', 'query', '--principal-subject', 'bob', '--after', String(page.next_after), '--limit', '100', '--json']));
    assert.equal(next.events.length, 11);
    assert.equal((await cli.ok(['audit', 'query', '--agent', 'spiffe://example.org/agent/nobody'])).trim(), '(none)');
    const future = await cli.run(['audit', 'query', '--since', 'yesterday']);
    assert.equal(future.status, 1);
    assert.match(future.stderr, /--since "yesterday" is neither an ISO 8601 time/);
  });

  it('fetches inclusion and consistency proofs that verify offline', async () => {
    const first = JSON.parse(await cli.ok(['audit', 'checkpoint', '--new', '--json']));
    await record(100);
    await record(101);
    await cli.ok(['audit', 'checkpoint', '--new']);
    const inc = join(dir, 'inclusion.json');
    await cli.ok(['audit', 'proof', 'inclusion', '5', '--out', inc]);
    const incOk = await cli.run(['audit', 'verify', '--key', `@${keyFile}`, '--proof', inc]);
    assert.equal(incOk.status, 0, incOk.stdout + incOk.stderr);
    const con = join(dir, 'consistency.json');
    await cli.ok(['audit', 'proof', 'consistency', '--from', String(first.size), '--out', con]);
    const conOk = await cli.run(['audit', 'verify', '--key', `@${keyFile}`, '--proof', con]);
    assert.equal(conOk.status, 0, conOk.stdout + conOk.stderr);
    const sized = JSON.parse(await cli.ok(['audit', 'proof', 'inclusion', '5', '--size', String(first.size)]));
    assert.equal(sized.size, first.size);
    const missing = await cli.run(['audit', 'proof', 'inclusion', '999999']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /ERR_NOT_FOUND/);
  });

  it('tails the newest events, and with -f prints new ones until interrupted', async () => {
    const tail = (await cli.ok(['audit', 'tail', '-n', '3', '--tool', 'close_issue'])).trimEnd().split('\n');
    assert.equal(tail.length, 3);
    const newest = JSON.parse(await cli.ok(['audit', 'query', '--tool', 'close_issue', '--limit', '1000', '--json'])).events.slice(-3);
    assert.deepEqual(tail.map((l) => Number(l.split(/\s+/)[0])), newest.map((e: { index: number }) => e.index));

    const child = spawn(process.execPath, [BIN, 'audit', 'tail', '-f', '-n', '1', '--interval', '200ms', '--type', 'test.followed', '--json'], {
      env: { ...process.env, MANDATE_SERVER: m.url, MANDATE_ADMIN_TOKEN: m.adminToken ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const seen = (pattern: RegExp) => new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!pattern.test(out)) return;
        child.stdout.off('data', check);
        child.off('exit', exited);
        resolve();
      };
      const exited = (code: number | null) => reject(new Error(`tail -f exited (${code}) before printing ${pattern}: ${out}`));
      child.stdout.on('data', check);
      child.once('exit', exited);
      check();
    });
    try {
      await record(200, { type: 'test.followed', tool: 'first' });
      await seen(/"tool":"first"/);
      await record(201, { type: 'test.followed', tool: 'second' });
      await seen(/"tool":"second"/);
      const printed = out.trimEnd().split('\n').map((l) => JSON.parse(l).event.tool);
      assert.deepEqual(printed, ['first', 'second'], 'each event once, in order');
    } finally {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
  });
});
