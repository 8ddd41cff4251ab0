import { randomBytes } from 'node:crypto';
import type { RunningMandate } from '../server/app.ts';

export const DEMO_AGENT = 'agent/triage-bot';

export const DEMO_USER = 'alice';

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
