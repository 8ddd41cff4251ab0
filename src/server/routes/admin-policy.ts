/**
 * The admin API's policy part (/admin/v1/policy): the set in force (version, size, where from), a
 * reload on demand, and one decision for a request given as JSON (the same fields as a policy test
 * file's `request`, see docs/policy.md) — what `mandate policy explain` does offline, against the
 * set the running Mandate holds.
 */
import { MandateError } from '../../errors.ts';
import type { PolicyEngine } from '../../policy/engine.ts';
import { parseRequest } from '../../policy/test-file.ts';
import type { AdminRoute } from './admin.ts';

export function adminPolicyRoutes(on: AdminRoute, policy: PolicyEngine | undefined): void {
  const engine = (): PolicyEngine => {
    if (!policy) throw new MandateError('ERR_NOT_FOUND', 'no policy engine: set policy.dir in the configuration');
    return policy;
  };
  on('GET', '/admin/v1/policy', 'policy.show', async () => {
    const set = engine().current;
    return { policy_set_version: set.version, policies: set.policies.size, actions: set.actions.size };
  });
  on('POST', '/admin/v1/policy/reload', 'policy.reload', async () => {
    const result = engine().reload();
    if (!result.ok) throw result.error;
    return { policy_set_version: result.version, changed: result.changed };
  });
  on('POST', '/admin/v1/policy/decide', 'policy.decide', async (ctx) => {
    const set = engine();
    const decision = set.decide(parseRequest(await ctx.json(), 'request'));
    const determining = decision.policies.map((id) => {
      const p = set.current.policies.get(id);
      return { id, effect: p?.effect ?? null, reason: p?.reason ?? null, at: p ? `${p.file}:${p.line}` : null };
    });
    return { decision: decision.decision, determining, reasons: decision.reasons, errors: decision.errors, policy_set_version: decision.policySetVersion };
  });
}
