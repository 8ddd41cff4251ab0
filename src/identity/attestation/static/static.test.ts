import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMandateError } from '../../../errors.ts';
import { createStaticAttestor } from './static.ts';

const NOW = new Date('2030-01-01T00:00:00Z');

describe('static attestation', () => {
  test('is refused while disabled, with a hint how to enable it', async () => {
    const attestor = createStaticAttestor({ enabled: false, allowedSelectors: [] });
    await assert.rejects(
      attestor.attest({ type: 'static', selectors: ['dev:agent:triage'] }, NOW),
      (err) =>
        isMandateError(err, 'ERR_ATTESTOR_DISABLED') &&
        err.message.includes('development') &&
        err.message.includes('attestation.static.enabled'),
    );
  });

  test('when enabled returns the stated selectors, deduplicated', async () => {
    const attestor = createStaticAttestor({ enabled: true, allowedSelectors: [] });
    const result = await attestor.attest({ type: 'static', selectors: ['dev:agent:triage', 'k8s:ns:payments', 'dev:agent:triage'] }, NOW);
    assert.deepEqual(result, { attestor: 'static', selectors: ['dev:agent:triage', 'k8s:ns:payments'], entryIds: [], subject: 'static' });
  });

  test('with an allow-list refuses any selector outside it', async () => {
    const attestor = createStaticAttestor({ enabled: true, allowedSelectors: ['dev:agent:triage', 'dev:env:local'] });
    const ok = await attestor.attest({ type: 'static', selectors: ['dev:env:local'] }, NOW);
    assert.deepEqual(ok.selectors, ['dev:env:local']);
    await assert.rejects(
      attestor.attest({ type: 'static', selectors: ['dev:agent:triage', 'k8s:ns:kube-system'] }, NOW),
      (err) => isMandateError(err, 'ERR_ATTESTATION_FAILED') && err.message.includes('"k8s:ns:kube-system"'),
    );
  });

  test('refuses malformed selector lists', async () => {
    const attestor = createStaticAttestor({ enabled: true, allowedSelectors: [] });
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /"selectors"/],
      ['dev:agent:x', /"selectors"/],
      [[], /"selectors"/],
      [[42], /selectors\[0\] is not a string/],
      [['ok:1', 'no-colon'], /selectors\[1\] is not of the form/],
      [['Upper:x'], /selectors\[0\] is not of the form/],
      [[':x'], /selectors\[0\] is not of the form/],
      [['dev:'], /selectors\[0\] is not of the form/],
      [[`dev:${'x'.repeat(253)}`], /selectors\[0\] exceeds 256/],
      [Array.from({ length: 33 }, (_, i) => `dev:s${i}`), /at most 32/],
    ];
    for (const [selectors, message] of cases) {
      await assert.rejects(
        attestor.attest({ type: 'static', selectors }, NOW),
        (err) => isMandateError(err, 'ERR_BAD_REQUEST') && message.test(err.message),
        JSON.stringify(selectors),
      );
    }
    // The limits are inclusive.
    const max = await attestor.attest({ type: 'static', selectors: Array.from({ length: 32 }, (_, i) => `dev:${String(i).padEnd(252, 'x')}`) }, NOW);
    assert.equal(max.selectors.length, 32);
    assert.equal(max.selectors[0]!.length, 256);
  });
});
