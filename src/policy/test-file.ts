/**
 * Policy unit tests as operators keep them in their repositories: a YAML file of requests, each with
 * the decision expected (and, optionally, the policies expected to determine it). `mandate policy
 * test FILE` runs them against a policy directory and prints a diff for every mismatch.
 *
 * @example
 *   policies: ../policies             # relative to this file; --policies overrides
 *   tests:
 *     - name: the triage bot may comment on acme repositories
 *       request:
 *         agent: spiffe://example.org/agent/triage-bot
 *         principal: { issuer: https://sso.example, subject: alice, groups: [engineering] }
 *         server: issues
 *         tool: add_comment
 *         arguments: { repository: acme/api, issue: 7, body: "Looks like a duplicate of #3" }
 *         scopes: [issues:comment]
 *       expect: allow
 *       policies: [demo-comment]
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { MandateError } from '../errors.ts';
import { decide, type Decision, type DecisionRequest, type McpMethod, type ToolAnnotations } from './decide.ts';
import type { CompiledPolicySet } from './policy-set.ts';

export interface PolicyTestCase {
  name: string;
  request: DecisionRequest;
  expect: Decision['decision'];
  /** When given, exactly these policies must determine the decision (any order). */
  policies?: string[];
}

export interface PolicyTestFile {
  /** Absolute path of the policy directory the file names, if it names one. */
  policiesDir: string | undefined;
  tests: PolicyTestCase[];
}

export interface PolicyTestResult {
  name: string;
  passed: boolean;
  decision: Decision;
  /** Lines describing the difference, empty when passed. */
  diff: string[];
}

const METHODS: readonly McpMethod[] = ['tools/call', 'tools/list', 'resources/read', 'resources/list', 'prompts/get', 'prompts/list'];
const DECISIONS: readonly Decision['decision'][] = ['allow', 'deny', 'approval-required'];

function fail(where: string, message: string): never {
  throw new MandateError('ERR_BAD_REQUEST', `${where}: ${message}`);
}

function str(value: unknown, where: string, required = true): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') fail(where, 'must be a non-empty string');
  return value;
}

function strings(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail(where, 'must be a list of strings');
  return value as string[];
}

function obj(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'must be a mapping');
  return value as Record<string, unknown>;
}

function date(value: unknown, where: string): Date {
  const d = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (!d || Number.isNaN(d.getTime())) fail(where, 'must be an ISO 8601 time, e.g. 2026-11-24T10:00:00Z');
  return d;
}

/** Reads one request mapping into a DecisionRequest; `where` prefixes every problem. */
export function parseRequest(raw: unknown, where: string): DecisionRequest {
  const r = obj(raw, where);
  const principal = obj(r.principal, `${where}.principal`);
  const method = (r.method ?? (r.tool !== undefined ? 'tools/call' : r.http !== undefined ? undefined : 'tools/call')) as McpMethod | undefined;
  const server = str(r.server, `${where}.server`) as string;
  let action: DecisionRequest['action'];
  if (r.http !== undefined) {
    const http = obj(r.http, `${where}.http`);
    action = { kind: 'http', server, method: str(http.method, `${where}.http.method`) as string, pathTemplate: str(http.path, `${where}.http.path`) as string };
  } else {
    if (!METHODS.includes(method as McpMethod)) fail(`${where}.method`, `must be one of ${METHODS.join(', ')}`);
    const toolName = str(r.tool, `${where}.tool`, method === 'tools/call');
    action = {
      kind: 'mcp', method: method as McpMethod, server,
      ...(toolName !== undefined && { tool: { name: toolName, annotations: (r.annotations ?? {}) as ToolAnnotations } }),
      ...(r.resource !== undefined && { resourceUri: str(r.resource, `${where}.resource`) }),
      ...(r.prompt !== undefined && { prompt: str(r.prompt, `${where}.prompt`) }),
      ...(r.arguments !== undefined && { arguments: obj(r.arguments, `${where}.arguments`) }),
    };
  }
  let mandate: DecisionRequest['mandate'];
  if (r.mandate !== undefined) {
    const m = obj(r.mandate, `${where}.mandate`);
    mandate = {
      id: str(m.id ?? 'mdt_test', `${where}.mandate.id`) as string,
      scopes: strings(m.scopes, `${where}.mandate.scopes`),
      constraints: m.constraints === undefined ? {} : obj(m.constraints, `${where}.mandate.constraints`),
      expiresAt: m.expires_at === undefined ? new Date(Date.now() + 3600_000) : date(m.expires_at, `${where}.mandate.expires_at`),
      maxDepth: typeof m.max_depth === 'number' ? m.max_depth : 0,
    };
  }
  const binding = (r.binding ?? 'dpop') as DecisionRequest['binding'];
  if (!['dpop', 'mtls', 'none'].includes(binding)) fail(`${where}.binding`, 'must be dpop, mtls or none');
  return {
    agent: { spiffeId: str(r.agent, `${where}.agent`) as string, ...(r.agent_metadata !== undefined && { metadata: obj(r.agent_metadata, `${where}.agent_metadata`) as Record<string, string> }) },
    principal: { issuer: str(principal.issuer, `${where}.principal.issuer`) as string, subject: str(principal.subject, `${where}.principal.subject`) as string, groups: strings(principal.groups, `${where}.principal.groups`), ...(principal.name !== undefined && { name: String(principal.name) }) },
    ...(mandate && { mandate }),
    action,
    scopes: strings(r.scopes, `${where}.scopes`),
    chain: strings(r.chain, `${where}.chain`),
    now: r.time === undefined ? new Date() : date(r.time, `${where}.time`),
    ...(r.client_address !== undefined && { clientAddress: str(r.client_address, `${where}.client_address`) }),
    binding,
  };
}

/** Reads a test file. @throws MandateError ERR_BAD_REQUEST naming the case and field. */
export function loadPolicyTests(path: string): PolicyTestFile {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new MandateError('ERR_BAD_REQUEST', `${path}: ${(err as Error).message}`);
  }
  const root = obj(doc, path);
  if (!Array.isArray(root.tests) || root.tests.length === 0) fail(path, 'needs a non-empty list "tests"');
  const tests = root.tests.map((raw: unknown, i: number) => {
    const where = `${path}: tests[${i}]`;
    const t = obj(raw, where);
    const expect = t.expect as Decision['decision'];
    if (!DECISIONS.includes(expect)) fail(`${where}.expect`, `must be one of ${DECISIONS.join(', ')}`);
    return {
      name: str(t.name ?? `tests[${i}]`, `${where}.name`) as string,
      request: parseRequest(t.request, `${where}.request`),
      expect,
      ...(t.policies !== undefined && { policies: strings(t.policies, `${where}.policies`) }),
    };
  });
  const policiesDir = root.policies === undefined ? undefined : resolve(dirname(path), str(root.policies, `${path}: policies`) as string);
  return { policiesDir, tests };
}

export function runPolicyTests(set: CompiledPolicySet, tests: PolicyTestCase[]): PolicyTestResult[] {
  return tests.map((t) => {
    const decision = decide(set, t.request);
    const diff: string[] = [];
    if (decision.decision !== t.expect) diff.push(`- decision: ${t.expect}`, `+ decision: ${decision.decision}`);
    if (t.policies !== undefined) {
      const want = [...t.policies].sort();
      const got = [...decision.policies].sort();
      if (want.join('\n') !== got.join('\n')) diff.push(`- policies: [${want.join(', ')}]`, `+ policies: [${got.join(', ')}]`);
    }
    if (diff.length > 0) diff.push(`  reasons: ${decision.reasons.join('; ') || '(none)'}`);
    return { name: t.name, passed: diff.length === 0, decision, diff };
  });
}
