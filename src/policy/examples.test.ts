import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { decide, type Decision, type DecisionRequest, type ToolAnnotations } from './decide.ts';
import { compilePolicySet, loadPolicyDirectory } from './policy-set.ts';

const DIR = fileURLToPath(new URL('../../config/policies/', import.meta.url));
const set = compilePolicySet(loadPolicyDirectory(DIR));

const TRIAGE_BOT = 'spiffe://example.org/agent/triage-bot';
const OTHER_BOT = 'spiffe://example.org/agent/helper';
const MONDAY_10 = new Date('2026-11-23T10:00:00Z');
const SATURDAY_10 = new Date('2026-11-28T10:00:00Z');
const MONDAY_20 = new Date('2026-11-23T20:00:00Z');

const READ_ONLY: ToolAnnotations = { readOnlyHint: true };
const DESTRUCTIVE: ToolAnnotations = { destructiveHint: true };
const ANNOTATIONS: Record<string, ToolAnnotations> = { list_issues: READ_ONLY, get_issue: READ_ONLY, add_comment: { destructiveHint: false }, delete_issue: DESTRUCTIVE };

interface Ask {
  agent?: string;
  metadata?: Record<string, string>;
  tool?: string;
  server?: string;
  arguments?: Record<string, unknown>;
  annotations?: ToolAnnotations;
  action?: DecisionRequest['action'];
  scopes?: string[];
  repository?: string | null;
  chain?: string[];
  now?: Date;
}

function ask(a: Ask): Decision {
  const tool = a.tool ?? 'add_comment';
  const repository = a.repository === undefined ? 'acme/api' : a.repository;
  return decide(set, {
    agent: { spiffeId: a.agent ?? TRIAGE_BOT, ...(a.metadata && { metadata: a.metadata }) },
    principal: { issuer: 'https://sso.example', subject: 'alice', groups: ['engineering'] },
    ...(repository !== null && { mandate: { id: 'm1', scopes: ['issues:read', 'issues:comment'], constraints: { repository }, expiresAt: new Date('2026-12-01T00:00:00Z'), maxDepth: 1 } }),
    action: a.action ?? { kind: 'mcp', method: 'tools/call', server: a.server ?? 'issues', tool: { name: tool, annotations: a.annotations ?? ANNOTATIONS[tool] ?? {} }, arguments: a.arguments ?? { repository: 'acme/api', issue: 7, body: 'Duplicate of #3' } },
    scopes: a.scopes ?? ['issues:read', 'issues:comment'],
    chain: a.chain ?? [],
    now: a.now ?? MONDAY_10,
    binding: 'dpop',
  });
}

function expect(d: Decision, decision: Decision['decision'], policies: string[]): void {
  assert.equal(d.decision, decision, JSON.stringify(d));
  assert.deepEqual([...d.policies].sort(), [...policies].sort());
  assert.deepEqual(d.errors, []);
}

const args = (repository: string, extra: Record<string, unknown> = {}) => ({ repository, issue: 7, ...extra });

describe('config/policies', () => {
  it('compiles, and every policy has an @id and a @reason', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.cedar'));
    assert.deepEqual(files.sort(), ['amount-limits.cedar', 'business-hours.cedar', 'demo.cedar', 'per-repository.cedar', 'read-only-agents.cedar', 'sub-agents.cedar']);
    for (const policy of set.policies.values()) {
      assert.ok(policy.reason, `${policy.id} has no @reason`);
      assert.ok(!/\.cedar:\d+$/.test(policy.id), `${policy.file}:${policy.line} has no @id`);
    }
    for (const file of files) {
      const count = (readFileSync(`${DIR}${file}`, 'utf8').match(/^(permit|forbid)\(/gm) ?? []).length;
      assert.equal([...set.policies.values()].filter((p) => p.file.endsWith(file)).length, count, file);
    }
  });

  describe('demo.cedar', () => {
    it('the triage bot may comment on acme/ repositories', () => {
      expect(ask({ tool: 'add_comment', arguments: args('acme/web', { body: 'hi' }) }), 'allow', ['demo-comment']);
    });
    it('the triage bot may read acme/ repositories', () => {
      expect(ask({ tool: 'list_issues', arguments: { repository: 'acme/web' } }), 'allow', ['demo-read']);
      expect(ask({ tool: 'get_issue', arguments: args('acme/api') }), 'allow', ['demo-read', 'repository-mandate-read']);
    });
    it('the triage bot may list the tracker\'s tools', () => {
      expect(ask({ action: { kind: 'mcp', method: 'tools/list', server: 'issues' } }), 'allow', ['demo-list-tools']);
    });
    it('not without a mandate', () => {
      expect(ask({ tool: 'add_comment', repository: null, arguments: args('acme/web', { body: 'hi' }) }), 'deny', []);
    });
    it('not without the token scope', () => {
      expect(ask({ tool: 'add_comment', scopes: ['issues:read'], arguments: args('acme/web', { body: 'hi' }) }), 'deny', []);
    });
    it('never deletes, even with the scope and a mandate naming the repository', () => {
      expect(ask({ tool: 'delete_issue', scopes: ['issues:delete'], arguments: args('acme/api') }), 'deny', ['demo-never-delete']);
    });
    it('another agent gets nothing from the demo policies', () => {
      expect(ask({ agent: OTHER_BOT, tool: 'add_comment', repository: null, arguments: args('acme/web', { body: 'hi' }) }), 'deny', []);
    });
  });

  describe('per-repository.cedar', () => {
    it('any agent may work the repository its mandate names', () => {
      expect(ask({ agent: OTHER_BOT, repository: 'globex/site', tool: 'add_comment', arguments: args('globex/site', { body: 'hi' }) }), 'allow', ['repository-mandate-comment']);
      expect(ask({ agent: OTHER_BOT, repository: 'globex/site', tool: 'delete_issue', scopes: ['issues:delete'], arguments: args('globex/site') }), 'allow', ['repository-mandate-delete']);
    });
    it('no repository outside the mandate and acme/', () => {
      expect(ask({ agent: OTHER_BOT, repository: 'globex/site', tool: 'add_comment', arguments: args('globex/other', { body: 'hi' }) }), 'deny', ['repository-outside-mandate']);
      expect(ask({ repository: 'globex/site', tool: 'get_issue', arguments: args('initech/tps') }), 'deny', ['repository-outside-mandate']);
    });
    it('even for a read-only agent reading', () => {
      expect(ask({ agent: OTHER_BOT, metadata: { access: 'read-only' }, tool: 'list_issues', arguments: { repository: 'initech/tps' } }), 'deny', ['repository-outside-mandate']);
    });
    it('acme/ is not a prefix of acme-evil/', () => {
      expect(ask({ tool: 'add_comment', repository: null, arguments: args('acme-evil/api', { body: 'hi' }) }), 'deny', ['repository-outside-mandate']);
    });
  });

  describe('read-only-agents.cedar', () => {
    const ro = { agent: OTHER_BOT, metadata: { access: 'read-only' } };
    it('a read-only agent may call read-only tools and list', () => {
      expect(ask({ ...ro, server: 'wiki', tool: 'search', arguments: { q: 'x' }, annotations: READ_ONLY }), 'allow', ['read-only-agents-read-tools']);
      expect(ask({ ...ro, action: { kind: 'mcp', method: 'resources/read', server: 'wiki', resourceUri: 'wiki://home' } }), 'allow', ['read-only-agents-list-and-read']);
      expect(ask({ ...ro, action: { kind: 'http', server: 'github', method: 'GET', pathTemplate: '/repos/{owner}/{repo}' } }), 'allow', ['read-only-agents-http-read']);
    });
    it('and nothing else, whatever else permits', () => {
      expect(ask({ ...ro, tool: 'add_comment', arguments: args('acme/api', { body: 'hi' }) }), 'deny', ['read-only-agents-no-writes']);
      expect(ask({ ...ro, server: 'wiki', tool: 'edit', arguments: {}, annotations: {} }), 'deny', ['read-only-agents-no-writes']);
      expect(ask({ ...ro, action: { kind: 'http', server: 'github', method: 'DELETE', pathTemplate: '/repos/{owner}/{repo}' } }), 'deny', ['read-only-agents-http-safe-methods']);
    });
    it('an agent without the tag is not a read-only agent', () => {
      expect(ask({ agent: OTHER_BOT, metadata: { access: 'full' }, server: 'wiki', tool: 'search', arguments: {}, annotations: READ_ONLY }), 'deny', []);
    });
  });

  describe('business-hours.cedar', () => {
    const del = { agent: OTHER_BOT, tool: 'delete_issue', scopes: ['issues:delete'], arguments: args('acme/api') };
    it('destructive tools in business hours', () => {
      expect(ask({ ...del, now: MONDAY_10 }), 'allow', ['repository-mandate-delete']);
    });
    it('not at the weekend nor in the evening', () => {
      expect(ask({ ...del, now: SATURDAY_10 }), 'deny', ['destructive-business-hours', 'delete-issue-business-hours']);
      expect(ask({ ...del, now: MONDAY_20 }), 'deny', ['destructive-business-hours', 'delete-issue-business-hours']);
    });
    it('delete_issue even when the server says it is not destructive', () => {
      expect(ask({ ...del, annotations: { destructiveHint: false }, now: SATURDAY_10 }), 'deny', ['delete-issue-business-hours']);
    });
    it('a tool without MCP hints counts as destructive (the MCP defaults)', () => {
      expect(ask({ ...del, annotations: {}, now: SATURDAY_10 }), 'deny', ['destructive-business-hours', 'delete-issue-business-hours']);
    });
    it('other tools at any time', () => {
      expect(ask({ tool: 'add_comment', arguments: args('acme/api', { body: 'hi' }), now: SATURDAY_10 }), 'allow', ['demo-comment', 'repository-mandate-comment']);
    });
  });

  describe('amount-limits.cedar', () => {
    const refund = (amount: unknown, scopes = ['billing:refund']) => ask({ agent: OTHER_BOT, server: 'billing', tool: 'refund', arguments: { amount, currency: 'EUR' }, scopes });
    it('refunds under 100 are allowed', () => {
      expect(refund(99.99), 'allow', ['refund-under-100']);
      expect(refund(5), 'allow', ['refund-under-100']);
    });
    it('100 and over need approval', () => {
      expect(refund(100), 'approval-required', ['refund-100-and-over']);
      expect(refund(2500.5), 'approval-required', ['refund-100-and-over']);
    });
    it('not without the scope', () => {
      expect(refund(5, []), 'deny', []);
    });
    it('an amount that is not a number is denied', () => {
      const d = refund('a lot');
      assert.equal(d.decision, 'deny');
      assert.ok(d.errors.length > 0);
    });
  });

  describe('sub-agents.cedar', () => {
    const del = { agent: OTHER_BOT, tool: 'delete_issue', scopes: ['issues:delete'], arguments: args('acme/api') };
    it('a sub-agent may not delete, though its mandate would let it', () => {
      expect(ask({ ...del, chain: [OTHER_BOT, TRIAGE_BOT] }), 'deny', ['sub-agents-no-destructive', 'sub-agents-no-delete-issue']);
    });
    it('nor call any destructive tool', () => {
      expect(ask({ agent: OTHER_BOT, metadata: {}, server: 'wiki', tool: 'purge', arguments: {}, annotations: DESTRUCTIVE, chain: [OTHER_BOT, TRIAGE_BOT] }), 'deny', ['sub-agents-no-destructive']);
    });
    it('the agent acting directly may', () => {
      expect(ask({ ...del, chain: [OTHER_BOT] }), 'allow', ['repository-mandate-delete']);
    });
    it('a sub-agent may still comment', () => {
      expect(ask({ agent: OTHER_BOT, tool: 'add_comment', arguments: args('acme/api', { body: 'hi' }), chain: [OTHER_BOT, TRIAGE_BOT] }), 'allow', ['repository-mandate-comment']);
    });
  });
});
