/**
 * What the gateway asks the policy engine: a decision request for each MCP message or HTTP call,
 * built from the verified caller, their mandate and the message; and which tools, prompts and
 * resources of a list to show.
 *
 * A list is filtered with Cedar's partial evaluation (`whatCan`, `whatCanOn`): a tool whose
 * per-tool action is denied whatever its arguments is hidden, and so is a prompt that `prompts/get`
 * on it is denied whatever its arguments, and a resource that `resources/read` on its URI is denied
 * whatever the time and mandate. What may be allowed in some case is shown, and each use is then
 * decided in full. The answers are cached per policy-set version, agent, principal, scopes and
 * chain, for a short time.
 */
import type { MandateRecord, Store } from '../store/store.ts';
import { whatCan, whatCanOn, type CanAnswer, type CanQuery } from '../policy/can.ts';
import type { DecisionRequest, ToolAnnotations } from '../policy/decide.ts';
import { listedItem, toolNamespace } from '../policy/decide.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { actionKey } from '../policy/policy-set.ts';
import type { Caller } from './caller.ts';

const MANDATE_CACHE_SIZE = 10_000;
const LIST_CACHE_SIZE = 10_000;
const LIST_CACHE_MS = 30_000;
/** Listed prompts and resources remembered per caller (then forgotten together). */
const ITEM_CACHE_SIZE = 10_000;

/** A small LRU map: the oldest entry goes when full. */
class Lru<K, V> {
  readonly #map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as K);
  }
  delete(key: K): void {
    this.#map.delete(key);
  }
}

/** What a caller may do, by partial evaluation: per action, and per listed prompt or resource. */
interface CallerAnswers {
  at: number;
  query: CanQuery;
  answers: Map<string, CanAnswer['answer']>;
  /** Per listed item (`prompt <server>/<name>`, `resource <server>|<uri>`), filled as lists pass. */
  items: Map<string, CanAnswer['answer']>;
}

export type McpAction = Extract<DecisionRequest['action'], { kind: 'mcp' }>;
export type HttpAction = Extract<DecisionRequest['action'], { kind: 'http' }>;

export class GatewayPolicy {
  /** Mandates by id. A mandate's terms never change; revocation is the revocation list's job. */
  readonly #mandates = new Lru<string, MandateRecord>(MANDATE_CACHE_SIZE);
  readonly #lists = new Lru<string, CallerAnswers>(LIST_CACHE_SIZE);
  /** Tool annotations learnt from the tools/list answers that passed through, by server and tool. */
  readonly #annotations = new Map<string, Map<string, ToolAnnotations>>();

  constructor(private readonly engine: PolicyEngine, private readonly store: Store) {}

  async #mandate(id: string | undefined): Promise<DecisionRequest['mandate']> {
    if (id === undefined) return undefined;
    let m = this.#mandates.get(id);
    if (!m) {
      const found = await this.store.getMandate(id);
      if (!found) return undefined;
      m = found;
      this.#mandates.set(id, m);
    }
    return { id: m.id, scopes: m.scopes, constraints: m.constraints, expiresAt: m.expiresAt, maxDepth: m.maxDepth };
  }

  async request(caller: Caller, action: McpAction | HttpAction, now = new Date()): Promise<DecisionRequest> {
    const t = caller.token;
    if (action.kind === 'mcp' && action.tool) {
      action = { ...action, tool: { name: action.tool.name, annotations: this.#annotations.get(action.server)?.get(action.tool.name) } };
    }
    return {
      agent: { spiffeId: caller.agent },
      principal: caller.principal,
      mandate: await this.#mandate(t.mandateId),
      action,
      scopes: t.scopes,
      chain: t.chain,
      now,
      clientAddress: caller.sourceAddress,
      binding: t.binding,
    };
  }

  decide(request: DecisionRequest) {
    return this.engine.decide(request);
  }

  /** Remembers the annotations of the tools a server listed (policies see them as Tool attributes). */
  learnTools(server: string, tools: ReadonlyArray<{ name?: unknown; annotations?: unknown }>): void {
    let known = this.#annotations.get(server);
    if (!known) this.#annotations.set(server, (known = new Map()));
    for (const tool of tools) {
      if (typeof tool.name !== 'string') continue;
      const a = (tool.annotations ?? {}) as Record<string, unknown>;
      const hint = (k: string) => (typeof a[k] === 'boolean' ? (a[k] as boolean) : undefined);
      known.set(tool.name, { readOnlyHint: hint('readOnlyHint'), destructiveHint: hint('destructiveHint'), idempotentHint: hint('idempotentHint'), openWorldHint: hint('openWorldHint') });
    }
  }

  /** Whether a listed tool may be shown to this caller: hidden only when denied whatever the arguments. */
  toolVisible(caller: Caller, server: string, tool: string): boolean {
    const { answers } = this.#answers(caller);
    const answer = answers.get(actionKey(`${toolNamespace(server)}::Action`, tool)) ?? answers.get(actionKey('Mandate::Action', 'tools/call'));
    return answer !== 'denied';
  }

  /** Whether a listed prompt may be shown: hidden only when `prompts/get` on it is denied whatever the arguments, time or mandate. */
  promptVisible(caller: Caller, server: string, prompt: string): boolean {
    return this.#itemAnswer(caller, 'prompts/get', `prompt ${server}/${prompt}`, () => listedItem(server, { prompt })) !== 'denied';
  }

  /** Whether a listed resource may be shown: hidden only when `resources/read` on its URI is denied whatever the time or mandate. */
  resourceVisible(caller: Caller, server: string, uri: string): boolean {
    return this.#itemAnswer(caller, 'resources/read', `resource ${server}|${uri}`, () => listedItem(server, { resourceUri: uri })) !== 'denied';
  }

  /** Whether resource templates may be shown: hidden only when `resources/read` is denied on every resource. */
  resourceTemplatesVisible(caller: Caller): boolean {
    return this.#answers(caller).answers.get(actionKey('Mandate::Action', 'resources/read')) !== 'denied';
  }

  #itemAnswer(caller: Caller, method: 'prompts/get' | 'resources/read', key: string, item: () => ReturnType<typeof listedItem>): CanAnswer['answer'] {
    const cached = this.#answers(caller);
    let answer = cached.items.get(key);
    if (answer === undefined) {
      answer = whatCanOn(this.engine.current, cached.query, actionKey('Mandate::Action', method), item())?.answer ?? 'denied';
      if (cached.items.size >= ITEM_CACHE_SIZE) cached.items.clear();
      cached.items.set(key, answer);
    }
    return answer;
  }

  #answers(caller: Caller): CallerAnswers {
    const set = this.engine.current;
    const t = caller.token;
    const key = JSON.stringify([set.version, caller.agent, caller.principal.issuer, caller.principal.subject, [...t.scopes].sort(), t.chain]);
    const cached = this.#lists.get(key);
    const now = Date.now();
    if (cached && now - cached.at < LIST_CACHE_MS) return cached;
    const query: CanQuery = { agent: caller.agent, principal: caller.principal, scopes: [...t.scopes], chain: t.chain };
    const fresh = { at: now, query, answers: new Map(whatCan(set, query).map((a) => [a.action, a.answer])), items: new Map() };
    this.#lists.set(key, fresh);
    return fresh;
  }
}
