import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import { signCheckpoint } from './checkpoint.ts';
import { canonicalJson, type AuditEvent } from './event.ts';
import { exportAuditLog } from './export.ts';
import { AuditLog } from './log.ts';
import { leafHash } from './merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from './note.ts';
import {
  INLINE_EVENT_CHECKS,
  MAX_LINE_LENGTH,
  splitLines,
  verifyBundle,
  verifyConsistencyBundle,
  verifyExport,
  verifyProofBundle,
  type ConsistencyProofBundle,
  type InclusionProofBundle,
  type VerifyReport,
} from './verify.ts';

const ORIGIN = 'example.org/mandate/audit';
const keys = generateNoteKey('example.org-audit');
const signer = parseSignerKey(keys.signerKey);
const verifiers = [parseVerifierKey(keys.verifierKey)];
/** Same key name, another key: what a forger without the deployment's key can sign with. */
const forger = parseSignerKey(generateNoteKey('example.org-audit').signerKey);

function event(n: number): AuditEvent {
  return {
    v: 1,
    time: new Date(Date.UTC(2026, 10, 24, 10, 0, 0, n)).toISOString(),
    type: 'gateway.decision',
    outcome: 'success',
    agent: `spiffe://example.org/agent/a${n % 3}`,
    principal: { issuer: 'https://sso.example', subject: `u${n % 5}` },
    tool: 'add_comment',
    decision: { decision: n % 2 ? 'allow' : 'deny', policies: ['p'] },
    replica: 'r1',
  };
}

interface Log {
  /** The export's lines. */
  lines: string[];
  notes: Map<number, string>;
  root: string;
  bundle(index: number, size: number): Promise<InclusionProofBundle>;
  consistency(from: number, to: number): Promise<ConsistencyProofBundle>;
}

/**
 * A log of `size` events on a real SQLite store with checkpoints at the given sizes, exported from
 * `from`. Proof bundles are read while the store is open, so `build` keeps it until `use` returns.
 */
async function withLog<T>(size: number, checkpointAt: readonly number[], use: (log: Log) => Promise<T>, from = 0): Promise<T> {
  const store = await openSqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'mandate-verify-')), 'mandate.db') });
  try {
    const log = await AuditLog.open({ store, origin: ORIGIN, signer });
    const notes = new Map<number, string>();
    for (const at of [...new Set([...checkpointAt, size])].sort((a, b) => a - b)) {
      await Promise.all(Array.from({ length: at - log.size }, (_, i) => log.append(event(log.size + i))));
      if (checkpointAt.includes(at)) notes.set(at, await log.checkpoint());
    }
    const lines: string[] = [];
    await exportAuditLog(store, (line) => lines.push(line), { from });
    const records = (i: number) => store.getAuditRecords(i, i + 1);
    return await use({
      lines,
      notes,
      root: log.root().toString('hex'),
      bundle: async (index, at) => ({
        format: 'mandate-audit-proof',
        version: 1,
        index,
        size: at,
        event: (await records(index))[0]?.event as string,
        proof: (await log.inclusionProof(index, at)).map((h) => h.toString('hex')),
        checkpoint: notes.get(at) as string,
      }),
      consistency: async (a, b) => ({
        format: 'mandate-audit-consistency',
        version: 1,
        from: a,
        to: b,
        proof: (await log.consistencyProof(a, b)).map((h) => h.toString('hex')),
        from_checkpoint: notes.get(a) as string,
        to_checkpoint: notes.get(b) as string,
      }),
    });
  } finally {
    await store.close();
  }
}

const verify = (lines: AsyncIterable<string> | Iterable<string>, origin?: string) => verifyExport(lines, { verifiers, ...(origin && { origin }) });

/** Position in `lines` of the record of event `index`. */
function at(lines: string[], index: number): number {
  const i = lines.findIndex((l) => l.startsWith(`{"index":${index},`));
  assert.ok(i > 0, `no record of event ${index}`);
  return i;
}

/** `lines` with line `i` replaced (Array.prototype.with is ES2023). */
function replaced(lines: readonly string[], i: number, line: string): string[] {
  return lines.map((l, j) => (j === i ? line : l));
}

/** `lines` with `remove` lines at `i` replaced by `add`, as a copy. */
function spliced(lines: readonly string[], i: number, remove: number, ...add: string[]): string[] {
  const copy = [...lines];
  copy.splice(i, remove, ...add);
  return copy;
}

/** A record line whose leaf hash matches its (forged) event text. */
function forgedRecord(index: number, text: string): string {
  return `{"index":${index},"event":${text},"leaf_hash":"${leafHash(Buffer.from(text, 'utf8')).toString('hex')}"}`;
}

function eventText(line: string): string {
  return JSON.stringify((JSON.parse(line) as { event: unknown }).event);
}

function fails(report: VerifyReport, pattern: RegExp, firstBadIndex?: number): void {
  assert.equal(report.ok, false, 'expected verification to fail');
  assert.equal(report.problems.length, 1, 'exactly one problem: verification stops at the first');
  assert.match(report.problems[0] as string, pattern);
  assert.equal(report.firstBadIndex, firstBadIndex);
}

/** Every way of tampering with an exported log's lines, with the problem and index it must be named by. */
const TAMPERING: Array<{ name: string; tamper: (lines: string[]) => string[] | Promise<string[]>; problem: RegExp; firstBadIndex?: number }> = [
  {
    name: 'one byte of an event changed',
    tamper: (l) => replaced(l, at(l, 37), (l[at(l, 37)] as string).replace('add_comment', 'add_commenT')),
    problem: /^event 37 was changed: its leaf hash does not match/,
    firstBadIndex: 37,
  },
  {
    name: 'a leaf hash changed',
    tamper: (l) => replaced(l, at(l, 37), (l[at(l, 37)] as string).replace(/"leaf_hash":"(.)/, (_, c: string) => `"leaf_hash":"${c === '0' ? '1' : '0'}`)),
    problem: /^event 37 was changed: its leaf hash does not match/,
    firstBadIndex: 37,
  },
  {
    name: 'a record dropped',
    tamper: (l) => spliced(l, at(l, 37), 1),
    problem: /^event 37 is missing/,
    firstBadIndex: 37,
  },
  {
    name: 'a record duplicated',
    tamper: (l) => spliced(l, at(l, 37), 0, l[at(l, 37)] as string),
    problem: /^event 37 appears twice or out of order/,
    firstBadIndex: 37,
  },
  {
    name: 'two records swapped',
    tamper: (l) => replaced(replaced(l, at(l, 37), l[at(l, 38)] as string), at(l, 38), l[at(l, 37)] as string),
    problem: /^event 37 is missing: line \d+ holds event 38/,
    firstBadIndex: 37,
  },
  {
    name: 'a forged record inserted (its leaf hash consistent)',
    tamper: (l) => spliced(l, at(l, 37), 0, forgedRecord(37, canonicalJson({ ...event(37), tool: 'delete_repository' }))),
    problem: /^event 37 appears twice or out of order/,
    firstBadIndex: 37,
  },
  {
    name: 'an event rewritten with its leaf hash (between checkpoints 20 and 50)',
    tamper: (l) => replaced(l, at(l, 37), forgedRecord(37, canonicalJson({ ...event(37), tool: 'delete_repository' }))),
    problem: /^the events between checkpoint sizes 20 and 50 \(events 20\.\.49\) do not match the checkpoint signed at 50/,
    firstBadIndex: 20,
  },
  {
    name: 'a checkpoint forged with another key',
    tamper: (l) => replaced(l, at(l, 49) + 1, JSON.stringify({ checkpoint: signCheckpoint({ origin: ORIGIN, size: 50, rootHash: Buffer.alloc(32, 7), time: 1 }, forger) })),
    problem: /^the checkpoint on line \d+ is refused: .*no signature from a known key/,
  },
  {
    name: 'a checkpoint of another origin signed by the key',
    tamper: (l) => spliced(l, at(l, 50), 0, JSON.stringify({ checkpoint: signCheckpoint({ origin: 'example.org/other-log', size: 50, rootHash: Buffer.alloc(32), time: 1 }, signer) })),
    problem: /^the checkpoint on line \d+ is refused: .*origin is not the expected one/,
  },
  {
    name: 'the tail truncated after event 60, the checkpoint at 80 kept',
    tamper: (l) => [...l.slice(0, at(l, 61)), l.at(-1) as string],
    problem: /^the log lost events 61\.\.79: the checkpoint on line \d+ was signed at size 80/,
    firstBadIndex: 61,
  },
  {
    name: 'a checkpoint moved before the events it covers',
    tamper: (l) => {
      const cp = at(l, 19) + 1; // the checkpoint at 20 follows event 19
      return spliced(spliced(l, cp, 1), at(l, 10), 0, l[cp] as string);
    },
    problem: /^the checkpoint on line \d+, signed at size 20, comes before events 10\.\.19 it covers/,
    firstBadIndex: 10,
  },
  {
    name: 'an event that is not an audit event, its leaf hash consistent',
    tamper: (l) => replaced(l, at(l, 37), forgedRecord(37, '{"v":1,"time":"2026-11-24T10:00:00Z"}')),
    problem: /^event 37 on line \d+ is not a valid audit event: it lacks the fields v, time and type/,
    firstBadIndex: 37,
  },
];

describe('verifyExport', () => {
  it('verifies an untampered export: every event, every checkpoint, the root of the log', async () => {
    await withLog(80, [20, 50, 80], async ({ lines, root }) => {
      const progress: number[] = [];
      const report = await verifyExport(lines, { verifiers, origin: ORIGIN, onProgress: (done) => progress.push(done) });
      assert.deepEqual(report, { ok: true, events: 80, checkpoints: 3, size: 80, root, problems: [], warnings: [] });
      assert.deepEqual(progress, [80]);
    });
  });

  it('takes its lines from a byte stream split anywhere, CRLF line ends included', async () => {
    await withLog(30, [30], async ({ lines }) => {
      const bytes = Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8');
      async function* chunks(size: number) {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      }
      for (const size of [1, 7, 4096]) assert.equal((await verify(splitLines(chunks(size)))).ok, true, `chunks of ${size}`);
    });
  });

  for (const { name, tamper, problem, firstBadIndex } of TAMPERING) {
    it(`fails and names it: ${name}`, async () => {
      await withLog(80, [20, 50, 80], async ({ lines }) => {
        assert.equal((await verify(lines)).ok, true);
        fails(await verify(await tamper(lines)), problem, firstBadIndex);
      });
    });
  }

  it('fails when the origin is not the expected one, and accepts it when it is', async () => {
    await withLog(10, [10], async ({ lines }) => {
      fails(await verify(lines, 'example.org/another-log'), /the checkpoint on line 12 is refused: .*origin is not the expected one/);
      assert.equal((await verify(lines, ORIGIN)).ok, true);
      const header = JSON.stringify({ format: 'mandate-audit-export', version: 1, origin: 'example.org/another-log' });
      fails(await verify(replaced(lines, 0, header)), /origin is not the expected one/);
    });
  });

  it('verifies an export that starts after event 0 from its frontier, and refuses a changed frontier', async () => {
    await withLog(90, [30, 60, 90], async ({ lines, root }) => {
      const report = await verify(lines);
      assert.deepEqual({ ok: report.ok, events: report.events, size: report.size, root: report.root, checkpoints: report.checkpoints }, { ok: true, events: 46, size: 90, root, checkpoints: 2 });
      const header = JSON.parse(lines[0] as string) as { frontier: string[] };
      assert.equal(header.frontier.length, 3, 'a tree of 44 leaves has a frontier of 3 perfect subtrees (32, 8, 4)');
      header.frontier[1] = (header.frontier[1] as string).replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
      fails(await verify(replaced(lines, 0, JSON.stringify(header))), /^the export's frontier or events 44\.\.59 do not match the checkpoint signed at 60/, 44);
    }, 44);
  });

  it('warns about events no checkpoint covers, and fails when no checkpoint covers any', async () => {
    await withLog(40, [25], async ({ lines }) => {
      const report = await verify(lines);
      assert.equal(report.ok, true);
      assert.deepEqual(report.warnings, ['events 25..39 are not covered by any signed checkpoint']);
      const withoutCheckpoints = lines.filter((l) => !l.startsWith('{"checkpoint"'));
      fails(await verify(withoutCheckpoints), /^no signed checkpoint covers any of events 0\.\.39/);
    });
  });

  it('reports malformed input as a problem naming the line, never by throwing', async () => {
    await withLog(5, [5], async ({ lines }) => {
      const record = lines[3] as string;
      const cases: Array<[string[], RegExp, number?]> = [
        [[], /the export is empty/],
        [lines.slice(1), /line 1 is not a Mandate audit export header/],
        [replaced(lines, 0, '{"format":"mandate-audit-export","version":2,"origin":null}'), /unsupported export version 2/],
        [replaced(lines, 0, 'not json'), /line 1 is not a Mandate audit export header/],
        [replaced(lines, 3, 'garbage'), /^line 4 \(where event 2 is expected\) is not JSON/, 2],
        [replaced(lines, 3, ''), /^line 4 \(where event 2 is expected\) is not JSON/, 2],
        [replaced(lines, 3, JSON.stringify(JSON.parse(record), null, 1).replaceAll('\n', '')), /^line 4 \(where event 2 is expected\) is malformed: a record must read exactly/, 2],
        [replaced(lines, 3, record.replace(/"leaf_hash":"[0-9a-f]{4}/, '"leaf_hash":"XYZW')), /^line 4 is malformed: the leaf hash of event 2 must be 64 lowercase hex digits/, 2],
        [replaced(lines, 3, record.replace(/"leaf_hash":"[0-9a-f]{2}/, '"leaf_hash":"')), /^line 4 \(where event 2 is expected\) is malformed/, 2],
        [replaced(lines, 3, '{"checkpoint":42}'), /the checkpoint on line 4 must be a signed note/],
        [replaced(lines, 3, '{"checkpoint":"not a note"}'), /the checkpoint on line 4 is refused: note refused/],
        [replaced(lines, 3, '[1,2]'), /^line 4 \(where event 2 is expected\) is neither an event record nor a checkpoint/, 2],
        [replaced(lines, 3, 'x'.repeat(MAX_LINE_LENGTH + 1)), new RegExp(`^line 4 is longer than ${MAX_LINE_LENGTH} characters`), 2],
        [replaced(lines, 0, JSON.stringify({ format: 'mandate-audit-export', version: 1, origin: null, from: 3, frontier: ['zz'] })), /frontier hash 0 must be 64 lowercase hex digits/],
        [replaced(lines, 0, JSON.stringify({ format: 'mandate-audit-export', version: 1, origin: null, from: 3, frontier: [] })), /line 1: a tree of size 3 has a frontier of 2 hashes/],
        [replaced(lines, 0, JSON.stringify({ format: 'mandate-audit-export', version: 1, origin: null, from: -1, frontier: [] })), /line 1: from must be an integer >= 0/],
      ];
      for (const [input, problem, firstBadIndex] of cases) fails(await verify(input), problem, firstBadIndex);
    });
  });

  it('reports a line too long for splitLines before reading the rest of it', async () => {
    async function* endless() {
      yield '{"format":"mandate-audit-export","version":1,"origin":null}\n';
      for (;;) yield 'x'.repeat(64 * 1024);
    }
    fails(await verify(splitLines(endless())), new RegExp(`^after line 1: line 2 is longer than ${MAX_LINE_LENGTH} characters`));
  });

  it(`checks events on a worker past ${INLINE_EVENT_CHECKS} events, and still names the first bad one`, async () => {
    const size = INLINE_EVENT_CHECKS + 3000;
    await withLog(size, [size - 1000, size], async ({ lines }) => {
      assert.equal((await verify(lines)).ok, true);
      // The bad event comes before the failing checkpoint: it is the first problem.
      const bad = size - 1500;
      const tampered = replaced(lines, at(lines, bad), forgedRecord(bad, '{"v":1,"time":"t","type":7}'));
      fails(await verify(tampered), new RegExp(`^event ${bad} on line \\d+ is not a valid audit event: it lacks the fields`), bad);
      const last = size - 10;
      fails(await verify(replaced(lines, at(lines, last), forgedRecord(last, '[]'))), new RegExp(`^event ${last} on line \\d+ is not a valid audit event: it is not a JSON object`), last);
    });
  });

  it('property: untampered exports of any size, checkpoints and start verify', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 150 }).chain((size) =>
          fc.tuple(fc.constant(size), fc.uniqueArray(fc.integer({ min: 1, max: size }), { maxLength: 6 }), fc.integer({ min: 0, max: size - 1 })),
        ),
        async ([size, checkpointAt, from]) => {
          await withLog(size, [...checkpointAt, size], async ({ lines }) => {
            const report = await verify(lines);
            assert.equal(report.ok, true, report.problems[0]);
            assert.equal(report.events, size - from);
            assert.deepEqual(report.warnings, []);
          }, from);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('property: dropping, duplicating, changing or moving any event fails at its index', async () => {
    const size = 60;
    await withLog(size, [17, 40, size], async ({ lines }) => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: size - 2 }), fc.constantFrom('drop', 'duplicate', 'change', 'swap'), async (k, how) => {
          const i = at(lines, k);
          const tampered = {
            drop: () => spliced(lines, i, 1),
            duplicate: () => spliced(lines, i, 0, lines[i] as string),
            change: () => replaced(lines, i, (lines[i] as string).replace('"type":"gateway.decision"', '"type":"gateway.decisioN"')),
            swap: () => replaced(replaced(lines, i, lines[at(lines, k + 1)] as string), at(lines, k + 1), lines[i] as string),
          }[how]();
          const report = await verify(tampered);
          assert.equal(report.ok, false);
          assert.equal(report.firstBadIndex, k, `${how} ${k}: ${report.problems[0]}`);
        }),
        { numRuns: 60 },
      );
    });
  });
});

describe('verifyProofBundle / verifyConsistencyBundle', () => {
  it('verifies an event with its inclusion proof, and refuses every change to the bundle', async () => {
    await withLog(40, [25, 40], async ({ bundle }) => {
      const good = await bundle(13, 25);
      assert.equal(verifyProofBundle(good, { verifiers, origin: ORIGIN }).ok, true);
      assert.equal(verifyBundle(JSON.parse(JSON.stringify(good)), { verifiers }).ok, true, 'as read from a file');
      const changed: Array<[unknown, RegExp]> = [
        [{ ...good, event: good.event.replace('add_comment', 'delete_issue') }, /event 13 is not in the log the checkpoint signs at size 25/],
        [{ ...good, index: 14 }, /event 14 is not in the log/],
        [{ ...good, size: 40 }, /the checkpoint was signed at size 25, not at the bundle's size 40/],
        [{ ...good, checkpoint: (await bundle(13, 40)).checkpoint }, /signed at size 40, not at the bundle's size 25/],
        [{ ...good, proof: good.proof.slice(1) }, /event 13 is not in the log/],
        [{ ...good, proof: ['zz', ...good.proof.slice(1)] }, /proof hash 0 must be 64 lowercase hex digits/],
        [{ ...good, version: 2 }, /unsupported mandate-audit-proof version 2/],
        [{ ...good, index: -1 }, /index must be an integer >= 0/],
        [{ ...good, event: 12 }, /event must be the event's JSON text/],
        [{ ...good, checkpoint: signCheckpoint({ origin: ORIGIN, size: 25, rootHash: Buffer.alloc(32), time: 1 }, forger) }, /the checkpoint is refused: .*no signature from a known key/],
        ['nonsense', /not a JSON object/],
      ];
      for (const [input, problem] of changed) {
        const report = verifyProofBundle(input, { verifiers });
        assert.equal(report.ok, false, String(problem));
        assert.match(report.problems[0] as string, problem);
      }
      assert.match(verifyProofBundle(good, { verifiers, origin: 'example.org/other' }).problems[0] as string, /origin is not the expected one/);
    });
  });

  it('verifies a consistency proof between two checkpoints, and refuses a changed one', async () => {
    await withLog(40, [7, 25, 40], async ({ consistency }) => {
      const good = await consistency(7, 40);
      const report = verifyConsistencyBundle(good, { verifiers });
      assert.equal(report.ok, true, report.problems[0]);
      assert.equal(report.size, 40);
      assert.equal(verifyBundle(good, { verifiers, origin: ORIGIN }).ok, true);
      const other = await consistency(25, 40);
      const changed: Array<[unknown, RegExp]> = [
        [{ ...good, from_checkpoint: other.from_checkpoint }, /signed at sizes 25 and 40, not at the bundle's 7 and 40/],
        [{ ...good, proof: other.proof }, /the log signed at size 40 does not extend the log signed at size 7/],
        [{ ...good, from: 0 }, /from must be at least 1/],
        [{ ...good, to_checkpoint: signCheckpoint({ origin: ORIGIN, size: 40, rootHash: Buffer.alloc(32), time: 1 }, forger) }, /the newer checkpoint is refused/],
      ];
      for (const [input, problem] of changed) assert.match(verifyConsistencyBundle(input, { verifiers }).problems[0] as string, problem);
      assert.match(verifyBundle({ format: 'something-else' }, { verifiers }).problems[0] as string, /not a proof bundle/);
    });
  });
});

describe('splitLines', () => {
  it('property: any chunking of any text gives the lines of split("\\n")', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'binary' }).map((s) => s.replaceAll('\r', '')), { maxLength: 20 }), fc.array(fc.nat(40), { maxLength: 30 }), async (lineTexts, cuts) => {
        const text = lineTexts.map((l) => `${l}\n`).join('');
        const bytes = Buffer.from(text, 'utf8');
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        async function* chunks() {
          let start = 0;
          for (const p of [...points, bytes.length]) {
            yield bytes.subarray(start, p);
            start = p;
          }
        }
        const got: string[] = [];
        for await (const line of splitLines(chunks())) got.push(line);
        assert.deepEqual(got, Buffer.from(text, 'utf8').toString('utf8').split('\n').slice(0, -1));
      }),
    );
  });
});

describe('verifyExport with checkpoints the verifier already holds', () => {
  it('catches a log cut back together with its later checkpoints, which the export alone cannot show', async () => {
    await withLog(30, [10, 20, 30], async (log) => {
      // Cut after event 19: drop events 20..29 and the checkpoint at 30.
      const cut = log.lines.slice(0, at(log.lines, 20));
      const plain = await verify(cut);
      assert.equal(plain.ok, true, 'the cut export is self-consistent');
      const pinned = await verifyExport(cut, { verifiers, trusted: [log.notes.get(30) as string] });
      assert.equal(pinned.ok, false);
      assert.equal(pinned.firstBadIndex, 20);
      assert.match(pinned.problems[0] ?? '', /the log lost events 20\.\.29: trusted checkpoint 1 was signed at size 30/);
      const whole = await verifyExport(log.lines, { verifiers, trusted: [log.notes.get(20) as string, log.notes.get(30) as string] });
      assert.equal(whole.ok, true, whole.problems.join('; '));
    });
  });

  it('names the range a trusted checkpoint disagrees with, and refuses a forged one', async () => {
    await withLog(12, [4, 12], async (log) => {
      // A consistent rewrite of event 6 (event and leaf hash), with the checkpoint at 12 removed.
      const i = at(log.lines, 6);
      const text = canonicalJson({ ...event(6), tool: 'delete_issue' });
      const rewritten = log.lines.map((l, n) => (n === i ? `{"index":6,"event":${text},"leaf_hash":"${leafHash(Buffer.from(text)).toString('hex')}"}` : l))
        .filter((l) => l !== JSON.stringify({ checkpoint: log.notes.get(12) }));
      const report = await verifyExport(rewritten, { verifiers, trusted: [log.notes.get(12) as string] });
      assert.equal(report.ok, false);
      assert.equal(report.firstBadIndex, 4);
      assert.match(report.problems[0] ?? '', /events 4\.\.11 do not match trusted checkpoint 1, signed at size 12/);
      const forged = signCheckpoint({ origin: ORIGIN, size: 12, rootHash: Buffer.alloc(32), time: 0 }, forger);
      const refused = await verifyExport(log.lines, { verifiers, trusted: [forged] });
      assert.equal(refused.ok, false);
      assert.match(refused.problems[0] ?? '', /trusted checkpoint 1 is refused/);
    });
  });
});
