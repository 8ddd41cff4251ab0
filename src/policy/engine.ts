/**
 * The policy engine a gateway holds: the policy set in force, decisions against it, and hot reload
 * from its directory. A reload compiles the new set completely before it replaces the old one, in a
 * single assignment, so decisions in flight (synchronous, on this thread) never see half a set; a
 * set that does not validate is refused and the previous one stays in force.
 *
 * @example
 *   const engine = PolicyEngine.fromDirectory('policies', { events });
 *   engine.watch();                        // reload when a .cedar or .cedarschema file changes
 *   const d = engine.decide(request);      // { decision: 'allow', policies: ['read-only'], ... }
 */
import { watch, type FSWatcher } from 'node:fs';
import type { EventSink } from '../observability/events.ts';
import { recordPolicyDecision, secondsSince } from '../observability/metrics.ts';
import { withSpan } from '../observability/tracing.ts';
import { decide, type Decision, type DecisionRequest } from './decide.ts';
import { compilePolicySet, loadPolicyDirectory, PolicySetError, type CompiledPolicySet } from './policy-set.ts';

export interface PolicyEngineOptions {
  events?: EventSink;
  /** Quiet time after a file change before reloading (editors write in several steps). Default 200 ms. */
  debounceMs?: number;
}

let engines = 0;

export type ReloadResult = { ok: true; version: string; changed: boolean } | { ok: false; error: PolicySetError };

export class PolicyEngine {
  #set: CompiledPolicySet;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** Which of the two Cedar storage slots holds the set in force; a reload compiles into the other. */
  #slot = 0;

  private constructor(
    private readonly dir: string,
    set: CompiledPolicySet,
    private readonly storage: string,
    private readonly opts: PolicyEngineOptions,
  ) {
    this.#set = set;
  }

  /** Loads and compiles the directory's set. @throws PolicySetError when it does not validate. */
  static fromDirectory(dir: string, opts: PolicyEngineOptions = {}): PolicyEngine {
    const storage = `engine${++engines}`;
    return new PolicyEngine(dir, compilePolicySet(loadPolicyDirectory(dir), { storage: `${storage}/0` }), storage, opts);
  }

  /** The policy set in force. */
  get current(): CompiledPolicySet {
    return this.#set;
  }

  /** Decides one request against the set in force, in a `policy decide` span, counted and timed. */
  decide(request: DecisionRequest): Decision {
    const { action } = request;
    return withSpan('policy decide', {
      'mandate.policy.action': action.kind === 'mcp' ? action.method : `${action.method} ${action.pathTemplate}`,
      'mandate.policy.server': action.server,
      ...(action.kind === 'mcp' && action.tool !== undefined && { 'mandate.policy.tool': action.tool.name }),
    }, (span) => {
      const started = performance.now();
      const decision = decide(this.#set, request);
      recordPolicyDecision(decision.decision, secondsSince(started));
      span.setAttributes({ 'mandate.policy.decision': decision.decision, 'mandate.policy.set_version': decision.policySetVersion });
      return decision;
    });
  }

  /** Compiles the directory again; on success the new set replaces the old one, else the old one stays. */
  reload(): ReloadResult {
    const before = this.#set.version;
    try {
      const slot = 1 - this.#slot;
      const next = compilePolicySet(loadPolicyDirectory(this.dir), { storage: `${this.storage}/${slot}` });
      this.#set = next;
      this.#slot = slot;
      const changed = next.version !== before;
      if (changed) this.opts.events?.emit({ type: 'policy.reloaded', outcome: 'success', policySetVersion: next.version, previousVersion: before, policies: next.policies.size });
      return { ok: true, version: next.version, changed };
    } catch (caught) {
      // Anything that stops the new set (an unreadable directory, a file gone mid-save) is a refusal:
      // the set in force stays, and a watcher's reload never throws.
      const err = caught instanceof PolicySetError
        ? caught
        : new PolicySetError([{ file: this.dir, line: 1, column: 1, message: `the policy set could not be read: ${(caught as Error).message}` }]);
      this.opts.events?.emit({ type: 'policy.reload_refused', outcome: 'failure', error: err.code, reason: err.message, policySetVersion: before });
      return { ok: false, error: err };
    }
  }

  /** Reloads whenever a file in the directory changes. */
  watch(): void {
    if (this.#watcher) return;
    this.#watcher = watch(this.dir, () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 200);
      this.#timer.unref();
    });
    this.#watcher.unref();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
