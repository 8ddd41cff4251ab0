import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isMandateError } from '../../errors.ts';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.ts';
import type { Store } from '../../store/store.ts';
import { attest, buildAttestors, type AttestationConfig } from './catalog.ts';
import { createJoinToken } from './join-token/join-token.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const NOTHING_ENABLED: AttestationConfig = {
  joinToken: { enabled: false },
  k8s: { clusters: [] },
  static: { enabled: false, allowedSelectors: [] },
};

describe('attestor catalog', () => {
  let dir: string;
  let store: Store;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mandate-attestation-catalog-'));
    store = await openSqliteStore({ path: join(dir, 'mandate.db') });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('builds only the enabled attestors', async () => {
    assert.deepEqual([...buildAttestors(NOTHING_ENABLED, { store }).keys()], []);
    const jwksFile = join(dir, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify({ keys: [] }));
    const all = buildAttestors(
      {
        joinToken: { enabled: true },
        k8s: { clusters: [{ name: 'kind', issuer: 'https://kubernetes.default.svc.cluster.local', audience: 'mandate', jwksFile }] },
        static: { enabled: true, allowedSelectors: [] },
      },
      { store },
    );
    assert.deepEqual([...all.keys()].sort(), ['join_token', 'k8s_psat', 'static']);
    for (const [type, attestor] of all) assert.equal(attestor.type, type);
  });

  test('a bad cluster configuration fails the build', () => {
    const cfg = { ...NOTHING_ENABLED, k8s: { clusters: [{ name: 'x', issuer: 'http://example.com', audience: 'mandate' }] } };
    assert.throws(() => buildAttestors(cfg, { store }), (err) => isMandateError(err, 'ERR_CONFIG_INVALID'));
  });

  test('dispatches to the attestor named by type', async () => {
    const entryId = randomUUID();
    await store.createEntry({ id: entryId, spiffeId: 'spiffe://example.org/agent/triage-bot', selectors: [], x509SvidTtl: 3600, jwtSvidTtl: 300, metadata: {}, createdAt: NOW });
    const { token, id } = await createJoinToken(store, { entryId, ttlSeconds: 60, now: NOW });
    const attestors = buildAttestors({ ...NOTHING_ENABLED, joinToken: { enabled: true }, static: { enabled: true, allowedSelectors: [] } }, { store });
    assert.deepEqual(await attest(attestors, { type: 'join_token', token }, NOW), {
      attestor: 'join_token',
      selectors: [`join_token:${id}`],
      entryIds: [entryId],
      subject: `join_token:${id}`,
    });
    assert.equal((await attest(attestors, { type: 'static', selectors: ['dev:x'] }, NOW)).attestor, 'static');
  });

  test('refuses disabled and unknown types', async () => {
    const attestors = buildAttestors(NOTHING_ENABLED, { store });
    for (const type of ['join_token', 'k8s_psat', 'x509pop', 'constructor', '__proto__']) {
      await assert.rejects(
        attest(attestors, { type, token: 'x' }, NOW),
        (err) => isMandateError(err, 'ERR_ATTESTOR_DISABLED') && err.message === `attestation type "${type}" is not enabled on this server`,
        type,
      );
    }
    await assert.rejects(
      attest(attestors, { type: 'static', selectors: ['dev:x'] }, NOW),
      (err) => isMandateError(err, 'ERR_ATTESTOR_DISABLED') && err.message.includes('attestation.static.enabled'),
    );
    await assert.rejects(
      attest(attestors, { type: 'y'.repeat(10_000) }, NOW),
      (err) => isMandateError(err, 'ERR_ATTESTOR_DISABLED') && err.message.length < 200,
    );
  });

  test('refuses requests that are not an object with a string type', async () => {
    const attestors = buildAttestors({ ...NOTHING_ENABLED, joinToken: { enabled: true } }, { store });
    for (const req of [null, undefined, 'join_token', 42, ['join_token'], {}, { type: 1 }, { type: null }]) {
      await assert.rejects(attest(attestors, req, NOW), (err) => isMandateError(err, 'ERR_BAD_REQUEST'), JSON.stringify(req));
    }
  });
});
