import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metadataUrl, protectedResourceMetadata, unauthorizedChallenge } from './resource-metadata.ts';

describe('RFC 9728 protected-resource metadata', () => {
  it('builds the document for a DPoP resource', () => {
    const doc = protectedResourceMetadata({ resource: 'https://gw.example/mcp/issues', issuer: 'https://mandate.example', scopes: ['issues:read'], name: 'Issues' });
    assert.deepEqual(doc, {
      resource: 'https://gw.example/mcp/issues',
      authorization_servers: ['https://mandate.example'],
      scopes_supported: ['issues:read'],
      bearer_methods_supported: ['header'],
      dpop_signing_alg_values_supported: ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'],
      dpop_bound_access_tokens_required: true,
      tls_client_certificate_bound_access_tokens: false,
      resource_name: 'Issues',
    });
  });

  it('marks mTLS resources', () => {
    const doc = protectedResourceMetadata({ resource: 'https://gw.example/api', issuer: ['https://a', 'https://b'], scopes: [], mtls: true });
    assert.equal(doc.tls_client_certificate_bound_access_tokens, true);
    assert.equal(doc.dpop_bound_access_tokens_required, false);
    assert.deepEqual(doc.authorization_servers, ['https://a', 'https://b']);
  });

  it('refuses a resource with a fragment or that is not a URL', () => {
    assert.throws(() => protectedResourceMetadata({ resource: 'https://gw.example/mcp#x', issuer: 'https://m', scopes: [] }), /fragment/);
    assert.throws(() => protectedResourceMetadata({ resource: 'mcp/issues', issuer: 'https://m', scopes: [] }));
  });

  it('places the well-known suffix between origin and path (RFC 9728 §3.1)', () => {
    assert.equal(metadataUrl('https://gw.example/mcp/issues'), 'https://gw.example/.well-known/oauth-protected-resource/mcp/issues');
    assert.equal(metadataUrl('https://gw.example/'), 'https://gw.example/.well-known/oauth-protected-resource');
    assert.equal(metadataUrl('https://gw.example'), 'https://gw.example/.well-known/oauth-protected-resource');
    assert.equal(metadataUrl('http://127.0.0.1:8420/mcp/issues/'), 'http://127.0.0.1:8420/.well-known/oauth-protected-resource/mcp/issues');
  });

  it('builds the 401 and 403 challenges, quoting safely', () => {
    const url = 'https://gw.example/.well-known/oauth-protected-resource/mcp';
    assert.equal(unauthorizedChallenge(url, { dpopAlgorithms: ['ES256'] }), `DPoP resource_metadata="${url}", algs="ES256", Bearer resource_metadata="${url}"`);
    const forbidden = unauthorizedChallenge(url, { error: 'insufficient_scope', scope: ['issues:comment'], description: 'needs "comment"' });
    assert.match(forbidden, /error="insufficient_scope"/);
    assert.match(forbidden, /scope="issues:comment"/);
    assert.match(forbidden, /error_description="needs \\"comment\\""/);
  });
});
