/**
 * A decision request the policy scenarios share: the demo triage bot commenting on an acme/api issue
 * for alice, in the shape `POST /v1/decide` takes.
 */
export const ADD_COMMENT_DECISION = {
  agent: 'spiffe://example.org/agent/triage-bot',
  principal: { issuer: 'https://sso.example', subject: 'alice' },
  mandate: { scopes: ['issues:comment'] },
  server: 'issues',
  tool: 'add_comment',
  annotations: { destructiveHint: false },
  arguments: { repository: 'acme/api', issue: 7, body: 'Duplicate of #3' },
  scopes: ['issues:comment'],
  time: '2026-11-24T10:00:00Z',
};
