/**
 * One benchmark worker: builds the same fixtures Mandate uses (a CA, a JWT key, CSRs, tokens) and
 * measures one named operation for a fixed time. Run by identity.bench.ts in 1 and 2 threads.
 */
import { createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { TrustBundleSet } from '../src/identity/bundle/set.ts';
import { issueJwtSvid } from '../src/identity/jwt-svid/issue.ts';
import { verifyJwtSvid } from '../src/identity/jwt-svid/verify.ts';
import { parseSpiffeId } from '../src/identity/spiffe-id/parse.ts';
import { issueX509Svid } from '../src/identity/x509-svid/issue.ts';
import { keyAndCsr, testCa } from '../test/support/pki.ts';
import { opsPerSecond } from './lib.ts';

const { op, ms } = workerData as { op: string; ms: number };
const ID = parseSpiffeId('spiffe://example.org/agent/triage-bot');

async function fixture(): Promise<() => unknown> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from('{"alg":"ES256"}.{"sub":"spiffe://example.org/agent/triage-bot","aud":["gw"],"exp":2000000000}');
  const signature = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const kid = 'k1';
  const key = { kid, alg: 'ES256' as const, privateKey: createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })) };
  const bundles = new TrustBundleSet();
  bundles.set({ trustDomain: 'example.org', x509Authorities: [], jwtAuthorities: new Map([[kid, { ...publicKey.export({ format: 'jwk' }), kid, use: 'jwt-svid', alg: 'ES256' }]]) });
  switch (op) {
    case 'baseline-ecdsa-sign':
      return () => sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    case 'baseline-ecdsa-verify':
      return () => verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    case 'jwt-svid-issue':
      return () => issueJwtSvid({ spiffeId: ID.toString(), audience: ['gw'], ttlSeconds: 300, key });
    case 'jwt-svid-validate': {
      const { token } = await issueJwtSvid({ spiffeId: ID.toString(), audience: ['gw'], ttlSeconds: 3600, key });
      return () => verifyJwtSvid(token, bundles, { audience: 'gw' });
    }
    case 'jwt-svid-validate-distinct': {
      // a fresh token per call (more tokens than the run can verify): no verified-signature cache can help
      const tokens = await Promise.all(Array.from({ length: 40_000 }, () => issueJwtSvid({ spiffeId: ID.toString(), audience: ['gw'], ttlSeconds: 3600, key }).then((t) => t.token)));
      let i = 0;
      return () => {
        if (i >= tokens.length) throw new Error('ran out of distinct tokens: raise the count');
        return verifyJwtSvid(tokens[i++] as string, bundles, { audience: 'gw' });
      };
    }
    case 'x509-svid-issue': {
      const ca = await testCa();
      const csrs = await Promise.all(Array.from({ length: 200 }, () => keyAndCsr().then((k) => k.csrPem)));
      let i = 0;
      return () => issueX509Svid(ca, { csr: csrs[i++ % csrs.length] as string, spiffeId: ID, ttlSeconds: 3600 });
    }
    default:
      throw new Error(`unknown benchmark operation ${op}`);
  }
}

const run = await fixture();
parentPort?.postMessage(await opsPerSecond(run, ms));
