/**
 * Tampering with the audit tables directly, as an operator with database access could: every change,
 * deletion, insertion or reordering of rows must make the exported log fail offline verification,
 * naming the first bad index (or, when the rows were rewritten with consistent leaf hashes, the
 * range between the two checkpoints around them). On SQLite (a real file) and PostgreSQL (a fresh
 * schema per case; skipped when DATABASE_URL is unset).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openPostgresStore } from '../store/postgres/postgres-store.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import type { Store } from '../store/store.ts';
import { canonicalJson, type AuditEvent } from './event.ts';
import { exportAuditLog } from './export.ts';
import { AuditLog } from './log.ts';
import { leafHash } from './merkle.ts';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from './note.ts';
import { verifyExport, type VerifyReport } from './verify.ts';

const ORIGIN = 'example.org/mandate/audit';
const keys = generateNoteKey('example.org-audit');
const signer = parseSignerKey(keys.signerKey);
const verifiers = [parseVerifierKey(keys.verifierKey)];
const SIZE = 200;
const CHECKPOINTS = [50, 120, SIZE];
const url = process.env.DATABASE_URL;

/** A store on a fresh database, and raw SQL on its tables behind its back (`?` placeholders). */
interface Tamperable {
  store: Store;
  sql(query: string, ...params: unknown[]): Promise<void>;
  close(): Promise<void>;
}

const BACKENDS: Array<{ name: string; skip: string | false; open(): Promise<Tamperable> }> = [
  {
    name: 'SQLite',
    skip: false,
    async open() {
      const path = join(mkdtempSync(join(tmpdir(), 'mandate-tamper-')), 'mandate.db');
      const store = await openSqliteStore({ path });
      const raw = new Database(path);
      return {
        store,
        sql: async (query, ...params) => void raw.prepare(query).run(...params),
        close: async () => {
          raw.close();
          await store.close();
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    skip: url ? false : 'DATABASE_URL is unset: PostgreSQL tamper tests skipped',
    async open() {
      const schema = `mandate_tamper_${randomBytes(6).toString('hex')}`;
      const store = await openPostgresStore({ url: url as string, schema, poolSize: 2 });
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      await raw.query(`SET search_path = "${schema}"`);
      return {
        store,
        sql: async (query, ...params) => {
          let n = 0;
          await raw.query(query.replace(/\?/g, () => `$${++n}`), params);
        },
        close: async () => {
          await raw.end();
          try {
            await store.dropSchema();
          } finally {
            await store.close();
          }
        },
      };
    },
  },
];

function event(n: number): AuditEvent {
  return {
    v: 1,
    time: new Date(Date.UTC(2026, 10, 24, 10, 0, n)).toISOString(),
    type: 'gateway.decision',
    outcome: 'success',
    agent: `spiffe://example.org/agent/a${n % 3}`,
    principal: { issuer: 'https://sso.example', subject: `u${n % 5}` },
    tool: 'add_comment',
    arguments: { issue: n },
    decision: { decision: 'allow', policies: ['p'] },
    replica: 'r1',
  };
}

async function appendLog(store: Store): Promise<void> {
  const log = await AuditLog.open({ store, origin: ORIGIN, signer });
  for (const size of CHECKPOINTS) {
    await Promise.all(Array.from({ length: size - log.size }, (_, i) => log.append(event(log.size + i))));
    await log.checkpoint();
  }
  await log.close();
}

async function verifyStore(store: Store): Promise<VerifyReport> {
  const lines: string[] = [];
  await exportAuditLog(store, (line) => lines.push(line));
  return verifyExport(lines, { verifiers, origin: ORIGIN });
}

async function storedEvent(store: Store, index: number): Promise<{ event: string; leafHash: Buffer }> {
  const [record] = await store.getAuditRecords(index, index + 1);
  assert.ok(record, `event ${index} is stored`);
  return { event: record.event, leafHash: Buffer.from(record.leafHash) };
}

const forged = canonicalJson({ ...event(77), tool: 'delete_repository' });
const forgedHash = leafHash(Buffer.from(forged, 'utf8'));

/** Moves rows idx >= from up by one (through a free range, so no unique check trips midway). */
async function shiftUp(db: Tamperable, from: number): Promise<void> {
  await db.sql('UPDATE audit_log SET idx = idx + 1000000 WHERE idx >= ?', from);
  await db.sql('UPDATE audit_log SET idx = idx - 999999 WHERE idx >= 1000000');
}

async function swapColumns(db: Tamperable, a: number, b: number, columns: Array<'event' | 'leaf_hash'>): Promise<void> {
  const [ra, rb] = [await storedEvent(db.store, a), await storedEvent(db.store, b)];
  const value = (r: { event: string; leafHash: Buffer }, c: 'event' | 'leaf_hash') => (c === 'event' ? r.event : r.leafHash);
  for (const c of columns) {
    await db.sql(`UPDATE audit_log SET ${c} = ? WHERE idx = ?`, value(rb, c), a);
    await db.sql(`UPDATE audit_log SET ${c} = ? WHERE idx = ?`, value(ra, c), b);
  }
}

const BETWEEN_50_AND_120 = /^the events between checkpoint sizes 50 and 120 \(events 50\.\.119\) do not match the checkpoint signed at 120/;

const CASES: Array<{ name: string; tamper: (db: Tamperable) => Promise<void>; problem: RegExp; firstBadIndex: number }> = [
  {
    name: 'an event\'s text updated',
    tamper: async (db) => db.sql('UPDATE audit_log SET event = ? WHERE idx = 77', (await storedEvent(db.store, 77)).event.replace('add_comment', 'delete_repository')),
    problem: /^event 77 was changed: its leaf hash does not match/,
    firstBadIndex: 77,
  },
  {
    name: 'an event updated with its leaf hash recomputed to match',
    tamper: (db) => db.sql('UPDATE audit_log SET event = ?, leaf_hash = ? WHERE idx = 77', forged, forgedHash),
    problem: BETWEEN_50_AND_120,
    firstBadIndex: 50,
  },
  {
    name: 'a middle row deleted',
    tamper: (db) => db.sql('DELETE FROM audit_log WHERE idx = 77'),
    problem: /^event 77 is missing/,
    firstBadIndex: 77,
  },
  {
    name: 'the last rows deleted while a checkpoint covers them',
    tamper: (db) => db.sql('DELETE FROM audit_log WHERE idx >= 190'),
    problem: /^the log lost events 190\.\.199: the checkpoint on line \d+ was signed at size 200/,
    firstBadIndex: 190,
  },
  {
    name: 'a forged row inserted, later rows shifted, its leaf hash consistent',
    tamper: async (db) => {
      await shiftUp(db, 77);
      await db.sql('INSERT INTO audit_log (idx, event, leaf_hash, time, type) SELECT 77, ?, ?, time, type FROM audit_log WHERE idx = 76', forged, forgedHash);
    },
    problem: BETWEEN_50_AND_120,
    firstBadIndex: 50,
  },
  {
    name: 'a row duplicated, later rows shifted',
    tamper: async (db) => {
      await shiftUp(db, 78);
      await db.sql('INSERT INTO audit_log (idx, event, leaf_hash, time, type) SELECT 78, event, leaf_hash, time, type FROM audit_log WHERE idx = 77');
    },
    problem: BETWEEN_50_AND_120,
    firstBadIndex: 50,
  },
  {
    name: 'a forged row inserted with a leaf hash that does not match it',
    tamper: async (db) => {
      await shiftUp(db, 77);
      await db.sql('INSERT INTO audit_log (idx, event, leaf_hash, time, type) SELECT 77, ?, leaf_hash, time, type FROM audit_log WHERE idx = 78', forged);
    },
    problem: /^event 77 was changed: its leaf hash does not match/,
    firstBadIndex: 77,
  },
  {
    name: 'two rows\' events swapped (reordered)',
    tamper: (db) => swapColumns(db, 60, 90, ['event']),
    problem: /^event 60 was changed: its leaf hash does not match/,
    firstBadIndex: 60,
  },
  {
    name: 'two rows swapped with their leaf hashes',
    tamper: (db) => swapColumns(db, 60, 90, ['event', 'leaf_hash']),
    problem: BETWEEN_50_AND_120,
    firstBadIndex: 50,
  },
];

for (const backend of BACKENDS) {
  describe(`tampering with the audit tables on ${backend.name}`, { skip: backend.skip }, () => {
    for (const { name, tamper, problem, firstBadIndex } of CASES) {
      it(`${name}: verification fails at index ${firstBadIndex}`, async () => {
        const db = await backend.open();
        try {
          await appendLog(db.store);
          const before = await verifyStore(db.store);
          assert.equal(before.ok, true, before.problems[0]);
          assert.equal(before.size, SIZE);

          await tamper(db);
          const report = await verifyStore(db.store);
          assert.equal(report.ok, false, `${name} went unnoticed`);
          assert.match(report.problems[0] as string, problem);
          assert.equal(report.firstBadIndex, firstBadIndex);
        } finally {
          await db.close();
        }
      });
    }
  });
}
