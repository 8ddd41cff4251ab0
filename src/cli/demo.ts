import type { RunningMandate } from '../server/app.ts';

export const DEMO_AGENT = 'agent/triage-bot';

/** Seeds the demo registration entry (idempotent) and returns a fresh join token for it. */
export async function seedDemo(m: RunningMandate): Promise<{ spiffeId: string; joinToken: string }> {
  const spiffeId = `spiffe://${m.authority.trustDomain}/${DEMO_AGENT}`;
  const existing = await m.store.listEntriesBySpiffeId(spiffeId);
  if (existing.length === 0) {
    await m.authority.createEntry({ id: 'demo-triage-bot', spiffe_id: spiffeId, selectors: ['k8s:ns:demo', 'k8s:sa:triage-bot'], metadata: { owner: 'demo', description: 'the demo issue-triage agent' } });
  }
  const { token } = await m.authority.createJoinToken({ spiffe_id: spiffeId });
  return { spiffeId, joinToken: token };
}
