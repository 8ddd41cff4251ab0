import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMandateError } from '../../errors.ts';
import { parseSpiffeId } from '../spiffe-id/parse.ts';
import { emptyBundle } from './bundle.ts';
import { parseSpiffeBundle } from './parse.ts';
import { TrustBundleSet } from './set.ts';

const doc = readFileSync(resolve(process.cwd(), '../shared/vectors/spiffe/spiffebundle/spiffebundle_valid_1.json'), 'utf8');

test('forSpiffeId returns the bundle of the ID\'s own trust domain only', () => {
  const set = new TrustBundleSet();
  const a = parseSpiffeBundle(doc, 'a.example');
  const b = emptyBundle('b.example');
  set.set(a);
  set.set(b);
  assert.equal(set.forSpiffeId(parseSpiffeId('spiffe://a.example/agent/x')), a);
  assert.equal(set.forSpiffeId(parseSpiffeId('spiffe://b.example')), b);
  assert.throws(() => set.forSpiffeId(parseSpiffeId('spiffe://c.example/agent/x')), (err: unknown) =>
    isMandateError(err, 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN') && /no bundle for trust domain c\.example/.test(err.message));
});

test('the same document parsed for two trust domains stays two separate bundles', () => {
  const set = new TrustBundleSet();
  set.set(parseSpiffeBundle(doc, 'a.example'));
  set.set(parseSpiffeBundle(doc, 'b.example'));
  assert.equal(set.size, 2);
  assert.notEqual(set.get('a.example'), set.get('b.example'));
  assert.deepEqual(set.all().map((x) => x.trustDomain).sort(), ['a.example', 'b.example']);
});

test('set replaces, delete removes, and a removed trust domain is unknown again', () => {
  const set = new TrustBundleSet();
  const first = emptyBundle('a.example');
  const second = parseSpiffeBundle(doc, 'a.example');
  set.set(first);
  set.set(second);
  assert.equal(set.get('a.example'), second);
  assert.equal(set.delete('a.example'), true);
  assert.equal(set.delete('a.example'), false);
  assert.equal(set.get('a.example'), undefined);
  assert.throws(() => set.forSpiffeId(parseSpiffeId('spiffe://a.example/x')), (err: unknown) => isMandateError(err, 'ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN'));
});

test('set rejects a bundle whose trust domain is not a canonical trust domain name', () => {
  const set = new TrustBundleSet();
  for (const td of ['A.example', 'spiffe://a.example', 'a.example:443', '']) {
    assert.throws(() => set.set(emptyBundle(td)), (err: unknown) => isMandateError(err, 'ERR_TRUST_DOMAIN_INVALID'), td);
  }
  assert.equal(set.size, 0);
});
