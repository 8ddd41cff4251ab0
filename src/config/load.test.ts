import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { inspect } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfigFile, parseConfig } from './load.ts';
import { CONFIG_SCHEMA_URL } from './schema.ts';

const REPO = resolve(import.meta.dirname, '../..');
const KEK_B64 = Buffer.alloc(32, 7).toString('base64');
const KEK_B64URL = Buffer.alloc(32, 0xfb).toString('base64url');

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'mandate-config-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A fresh directory under the test root holding `files` (relative path -> content). */
function dirWith(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(root, 'case-'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** The message lines of parsing `text` as `c.yaml` in the current directory. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  return configError(() => parseConfig(text, 'c.yaml', env)).message.split('\n');
}

describe('loadConfigFile: valid files', () => {
  it('fills every default for the minimal config and resolves paths against the file', () => {
    const dir = dirWith({ 'mandate.yaml': 'trust_domain: example.org\n' });
    const config = loadConfigFile(join(dir, 'mandate.yaml'), {});
    assert.equal(config.trustDomain, 'example.org');
    assert.equal(config.source, join(dir, 'mandate.yaml'));
    assert.equal(config.dataDir, join(dir, '.mandate'));
    assert.deepEqual(config.server.listen, { host: '127.0.0.1', port: 8420 });
    assert.equal(config.server.publicUrl, 'http://127.0.0.1:8420');
    assert.equal(config.server.publicUrlFromListen, true);
    assert.equal(config.server.tls, undefined);
    assert.equal(config.server.maxBodyBytes, 65536);
    assert.equal(config.server.requestTimeout, 10_000);
    assert.equal(config.server.allowNonLoopbackHttp, false);
    assert.deepEqual(config.store, { driver: 'sqlite', path: 'mandate.db' }, 'relative to the data directory in use, known at start');
    assert.deepEqual(config.keys, { kek: undefined, kekFile: undefined });
    assert.deepEqual(config.identity, {
      ca: { keyType: 'ec-p256', ttl: 8760 * 3600, commonName: 'Mandate CA', import: undefined },
      x509Svid: { defaultTtl: 3600 },
      jwtSvid: { algorithm: 'ES256', defaultTtl: 300, keyTtl: 86400 },
      bundle: { refreshHint: 300 },
      rotation: { checkInterval: 30, prepareAhead: 0.5 },
    });
    assert.deepEqual(config.attestation, {
      joinToken: { enabled: true, defaultTtl: 3600 },
      k8s: { clusters: [] },
      static: { enabled: false, allowedSelectors: [] },
    });
    assert.deepEqual(config.federation, { trustDomains: [] });
    assert.deepEqual(config.log, { level: 'info' });
  });

  it('returns a frozen object', () => {
    const config = parseConfig('trust_domain: example.org\n', 'c.yaml', {});
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.server.listen));
    assert.throws(() => {
      (config as { trustDomain: string }).trustDomain = 'evil.org';
    }, TypeError);
  });

  it('accepts the spiffe:// form of the trust domain and normalises it', () => {
    assert.equal(parseConfig('trust_domain: spiffe://example.org\n', 'c.yaml', {}).trustDomain, 'example.org');
  });

  it('loads config/example.yaml (every key) once the files it names exist', () => {
    const dir = dirWith({
      'mandate.yaml': readFileSync(join(REPO, 'config/example.yaml'), 'utf8'),
      'tls/server.crt': 'cert',
      'tls/server.key': 'key',
      'secrets/kek.b64': `${KEK_B64}\n`,
      'k8s/prod-ca.crt': 'ca',
      'k8s/edge-jwks.json': '{"keys":[]}',
      'federation/partner.example.json': '{"keys":[]}',
      'federation/cluster-local-ca.crt': 'ca',
      'tls/mandate-mtls.crt': 'cert',
      'tls/mandate-mtls.key': 'key',
      'policies/example.cedar': '',
    });
    const config = loadConfigFile(join(dir, 'mandate.yaml'), {});
    assert.deepEqual(config.policy, { dir: join(dir, 'policies'), watch: true });
    const delegation = config.delegation;
    assert.equal(delegation.token.maxTtl, 300);
    assert.equal(delegation.mandates.maxTtl, 90 * 86400);
    assert.deepEqual(delegation.providers.map((p) => [p.id, p.issuer, p.accessTokenAudience, p.clientSecret]), [['acme-sso', 'https://sso.acme.example/realms/acme', 'mandate', undefined]]);
    assert.deepEqual(delegation.clients[0], {
      clientId: 'triage-bot',
      name: 'Triage bot',
      redirectUris: [],
      authMethod: 'private_key_jwt',
      secretHash: undefined,
      spiffeId: 'spiffe://example.org/agent/triage-bot',
      grantTypes: ['urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    assert.deepEqual(delegation.mtls, {
      listen: { host: '127.0.0.1', port: 8443 },
      tls: { certFile: join(dir, 'tls/mandate-mtls.crt'), keyFile: join(dir, 'tls/mandate-mtls.key') },
      publicUrl: 'https://127.0.0.1:8443',
    });
    assert.deepEqual(delegation.resources.map((r) => r.uri), ['https://mandate.example.org/mcp/issues', 'https://mandate.example.org/mcp/notes', 'https://mandate.example.org/api/github']);
    assert.deepEqual(delegation.resources[0], { uri: 'https://mandate.example.org/mcp/issues', name: 'Issue tracker', scopes: ['issues:read', 'issues:comment'] });
    const [issues, notes, github] = config.gateway.toolServers;
    assert.equal(issues?.resource, 'https://mandate.example.org/mcp/issues');
    assert.deepEqual(issues?.credential, { type: 'obo_token', audience: 'http://127.0.0.1:8421', header: 'authorization', prefix: 'Bearer ' });
    assert.equal(issues?.timeout, 10_000);
    assert.equal(notes?.resource, 'https://mandate.example.org/mcp/notes', 'default: the public URL and the path');
    assert.deepEqual(notes?.command, ['node', 'notes-server.js']);
    assert.deepEqual(github?.routes, [{ method: 'GET', path: '/repos/{owner}/{repo}/issues', scopes: ['issues:read'] }]);
    assert.deepEqual(config.gateway.rateLimits.tool, { rate: 5, burst: 10 });
    assert.deepEqual(config.server.listen, { host: '0.0.0.0', port: 8443 });
    assert.equal(config.server.publicUrl, 'https://mandate.example.org');
    assert.equal(config.server.publicUrlFromListen, false);
    assert.deepEqual(config.server.tls, { certFile: join(dir, 'tls/server.crt'), keyFile: join(dir, 'tls/server.key') });
    assert.deepEqual(config.keys.kek?.reveal(), new Uint8Array(Buffer.alloc(32, 7)));
    assert.equal(config.keys.kek?.origin, 'keys.kek_file');
    assert.equal(config.keys.kekFile, join(dir, 'secrets/kek.b64'));
    assert.deepEqual(config.attestation.k8s.clusters, [
      {
        name: 'prod',
        issuer: 'https://oidc.prod.example.org',
        audience: 'mandate',
        jwksUrl: undefined,
        jwksFile: undefined,
        caFile: join(dir, 'k8s/prod-ca.crt'),
      },
      {
        name: 'edge',
        issuer: 'https://kubernetes.default.svc.cluster.local',
        audience: 'mandate',
        jwksUrl: undefined,
        jwksFile: join(dir, 'k8s/edge-jwks.json'),
        caFile: undefined,
      },
    ]);
    assert.deepEqual(config.attestation.static, { enabled: false, allowedSelectors: ['static:demo-agent'] });
    assert.deepEqual(config.federation.trustDomains, [
      { kind: 'file', trustDomain: 'partner.example', bundleFile: join(dir, 'federation/partner.example.json') },
      {
        kind: 'url',
        trustDomain: 'cluster.local',
        bundleUrl: 'https://spire.cluster.local:8443/bundle',
        caFile: join(dir, 'federation/cluster-local-ca.crt'),
        defaultRefresh: 300,
      },
    ]);
  });

  it('normalises durations: units, combinations, plain seconds, milliseconds for request_timeout', () => {
    const config = parseConfig(
      [
        'trust_domain: example.org',
        'server: { request_timeout: 500ms }',
        'identity:',
        '  ca: { ttl: 7d }',
        '  x509_svid: { default_ttl: 1h30m }',
        '  jwt_svid: { default_ttl: 90, key_ttl: 2h }',
        '  rotation: { check_interval: 1500ms }',
      ].join('\n'),
      'c.yaml',
      {},
    );
    assert.equal(config.server.requestTimeout, 500);
    assert.equal(config.identity.ca.ttl, 7 * 86400);
    assert.equal(config.identity.x509Svid.defaultTtl, 5400);
    assert.equal(config.identity.jwtSvid.defaultTtl, 90);
    assert.equal(config.identity.jwtSvid.keyTtl, 7200);
    assert.equal(config.identity.rotation.checkInterval, 1.5);
  });

  it('derives public_url from listen and tls, bracketing IPv6 and replacing wildcards', () => {
    const dir = dirWith({ 'a.crt': 'c', 'a.key': 'k' });
    const v6 = parseConfig('trust_domain: td\nserver: { listen: "[::1]:9000" }\n', 'c.yaml', {});
    assert.deepEqual(v6.server.listen, { host: '::1', port: 9000 });
    assert.equal(v6.server.publicUrl, 'http://[::1]:9000');
    const tls = parseConfig(
      'trust_domain: td\nserver:\n  listen: 0.0.0.0:0\n  tls: { cert_file: a.crt, key_file: a.key }\n',
      join(dir, 'c.yaml'),
      {},
    );
    assert.equal(tls.server.publicUrl, 'https://127.0.0.1:0');
    const explicit = parseConfig('trust_domain: td\nserver: { public_url: "https://m.example.org/base/" }\n', 'c.yaml', {});
    assert.equal(explicit.server.publicUrl, 'https://m.example.org/base');
  });

  it('accepts plain HTTP on a non-loopback address only when allowed', () => {
    const allowed = parseConfig(
      'trust_domain: td\nserver: { listen: "0.0.0.0:8420", allow_non_loopback_http: true }\n',
      'c.yaml',
      {},
    );
    assert.equal(allowed.server.allowNonLoopbackHttp, true);
    assert.deepEqual(problems('trust_domain: td\nserver:\n  listen: 10.1.2.3:8420\n'), [
      'c.yaml:3: server.listen: plain HTTP on the non-loopback address 10.1.2.3 is refused: set server.tls, ' +
        'or set server.allow_non_loopback_http: true when TLS ends in front of Mandate',
    ]);
    assert.equal(parseConfig('trust_domain: td\nserver: { listen: "localhost:1" }\n', 'c.yaml', {}).server.listen.host, 'localhost');
  });

  it('reads postgres settings, with the URL as a secret', () => {
    const config = parseConfig('trust_domain: td\nstore:\n  driver: postgres\n  url: postgres://u:pw@db/m\n', 'c.yaml', {});
    assert.equal(config.store.driver, 'postgres');
    assert.ok(config.store.driver === 'postgres');
    assert.equal(config.store.url.reveal(), 'postgres://u:pw@db/m');
    assert.equal(config.store.url.origin, 'store.url');
  });
});

describe('parseConfig: each kind of error', () => {
  it('unknown key, with a suggestion when one is close', () => {
    assert.deepEqual(problems('trust_domain: td\nserver:\n  lisen: 127.0.0.1:1\n'), [
      'c.yaml:3: server.lisen: unknown key (did you mean "listen"?)',
    ]);
    assert.deepEqual(problems('trustDomain: td\n'), [
      'c.yaml:1: trustDomain: unknown key (did you mean "trust_domain"?)',
      'c.yaml: trust_domain: is required',
    ]);
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  jwt_svid:\n    algoritm: ES256\n'), [
      'c.yaml:4: identity.jwt_svid.algoritm: unknown key (did you mean "algorithm"?)',
    ]);
    assert.deepEqual(problems('trust_domain: td\ncolour: blue\n'), ['c.yaml:2: colour: unknown key']);
  });

  it('wrong type', () => {
    assert.deepEqual(problems('trust_domain: td\nserver:\n  max_body_bytes: lots\n'), [
      'c.yaml:3: server.max_body_bytes: must be a whole number (got "lots")',
    ]);
    assert.deepEqual(problems('trust_domain: td\nserver: yes\n'), ['c.yaml:2: server: must be a mapping (got "yes")']);
    assert.deepEqual(problems('trust_domain: td\nserver:\n  allow_non_loopback_http: "true"\n'), [
      'c.yaml:3: server.allow_non_loopback_http: must be true or false (got "true")',
    ]);
    assert.deepEqual(problems('trust_domain: [a]\n'), ['c.yaml:1: trust_domain: must be a string (got a list)']);
    assert.deepEqual(problems('- trust_domain: td\n'), ['c.yaml: must be a mapping (got a list)']);
  });

  it('bad enum', () => {
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  jwt_svid:\n    algorithm: HS256\n'), [
      'c.yaml:4: identity.jwt_svid.algorithm: must be one of ES256, ES384, ES512, RS256, PS256 (got "HS256")',
    ]);
    assert.deepEqual(problems('trust_domain: td\nlog: { level: verbose }\n'), [
      'c.yaml:2: log.level: must be one of trace, debug, info, warn, error, fatal, silent (got "verbose")',
    ]);
  });

  it('bad duration', () => {
    const hint = 'must be a duration such as 500ms, 90s, 5m, 1h30m or 7d, or a whole number of seconds';
    assert.deepEqual(problems('trust_domain: td\nserver:\n  request_timeout: 10 seconds\n'), [
      `c.yaml:3: server.request_timeout: ${hint} (got "10 seconds")`,
    ]);
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  ca:\n    ttl: 1.5h\n'), [`c.yaml:4: identity.ca.ttl: ${hint} (got "1.5h")`]);
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  ca:\n    ttl: 0\n'), [`c.yaml:4: identity.ca.ttl: ${hint} (got 0)`]);
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  ca:\n    ttl: 0s\n'), [
      `c.yaml:4: identity.ca.ttl: ${hint}, greater than zero and at most 100 years (got "0s")`,
    ]);
    assert.deepEqual(problems('trust_domain: td\nidentity:\n  ca:\n    ttl: 99999999d\n'), [
      `c.yaml:4: identity.ca.ttl: ${hint}, greater than zero and at most 100 years (got "99999999d")`,
    ]);
  });

  it('bad trust domain, naming the SPIFFE rule', () => {
    assert.deepEqual(problems('trust_domain: Example.org\n'), [
      'c.yaml:1: trust_domain: invalid trust domain "Example.org": trust domain must be lowercase (SPIFFE-ID §2.1); found "E" at offset 0',
    ]);
    assert.deepEqual(problems('# comment\ntrust_domain: example.org:8443\n'), [
      'c.yaml:2: trust_domain: invalid trust domain "example.org:8443": trust domain must not include a port (SPIFFE-ID §2.1)',
    ]);
    assert.deepEqual(problems('trust_domain: ""\n'), ['c.yaml:1: trust_domain: must not be empty']);
  });

  it('bad listen address', () => {
    assert.deepEqual(problems('trust_domain: td\nserver:\n  listen: localhost\n'), [
      'c.yaml:3: server.listen: must be host:port, e.g. 127.0.0.1:8420 (got "localhost")',
    ]);
    assert.deepEqual(problems('trust_domain: td\nserver: { listen: "127.0.0.1:70000" }\n'), [
      'c.yaml:2: server.listen: port must be a number from 0 to 65535 (got "127.0.0.1:70000")',
    ]);
    assert.deepEqual(problems('trust_domain: td\nserver: { listen: "::1:80" }\n'), [
      'c.yaml:2: server.listen: an IPv6 host must be in brackets, e.g. [::1]:8420 (got "::1:80")',
    ]);
    assert.deepEqual(problems('trust_domain: td\nserver: { listen: ":80" }\n'), [
      'c.yaml:2: server.listen: host is required (use 0.0.0.0:<port> to listen on all interfaces) (got ":80")',
    ]);
  });

  it('YAML syntax errors, with line and column', () => {
    assert.deepEqual(problems('trust_domain: td\nserver:\n  listen: [1\n'), [
      'c.yaml:4:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    assert.deepEqual(problems('trust_domain: td\ntrust_domain: td2\n'), ['c.yaml:2:1: YAML: Map keys must be unique']);
    assert.deepEqual(problems('trust_domain: a\n---\ntrust_domain: b\n'), [
      'c.yaml:2:1: YAML: the file must contain exactly one YAML document',
    ]);
  });

  it('federation: exactly one of bundle_file and bundle_url, no duplicates, not ourselves', () => {
    const dir = dirWith({ 'b.json': '{}' });
    const text = [
      'trust_domain: example.org',
      'federation:',
      '  trust_domains:',
      '    - trust_domain: a.example',
      '      bundle_file: b.json',
      '      bundle_url: https://a.example/bundle',
      '    - trust_domain: b.example',
      '    - trust_domain: spiffe://c.example',
      '      bundle_file: b.json',
      '      ca_file: b.json',
      '    - trust_domain: c.example',
      '      bundle_url: https://c.example/b',
      '    - trust_domain: example.org',
      '      bundle_url: https://example.org/b',
      '    - trust_domain: D.example',
      '      bundle_url: http://d.example/b',
    ].join('\n');
    assert.deepEqual(configError(() => parseConfig(text, join(dir, 'f.yaml'), {})).message.split('\n'), [
      `${join(dir, 'f.yaml')}:4: federation.trust_domains[0]: set exactly one of bundle_file and bundle_url (both are set)`,
      `${join(dir, 'f.yaml')}:7: federation.trust_domains[1]: set exactly one of bundle_file and bundle_url (neither is set)`,
      `${join(dir, 'f.yaml')}:10: federation.trust_domains[2].ca_file: is only used with bundle_url`,
      `${join(dir, 'f.yaml')}:11: federation.trust_domains[3].trust_domain: duplicate: c.example is already federated at federation.trust_domains[2]`,
      `${join(dir, 'f.yaml')}:13: federation.trust_domains[4].trust_domain: must not be our own trust domain (example.org): its bundle is ours`,
      `${join(dir, 'f.yaml')}:15: federation.trust_domains[5].trust_domain: invalid trust domain "D.example": trust domain must be lowercase (SPIFFE-ID §2.1); found "D" at offset 0`,
      `${join(dir, 'f.yaml')}:16: federation.trust_domains[5].bundle_url: must use https (http is allowed only on a loopback address)`,
    ]);
  });

  it('files that must exist', () => {
    const dir = dirWith({ 'server.crt': 'c', sub: '' });
    rmSync(join(dir, 'sub'));
    mkdirSync(join(dir, 'sub'));
    const err = configError(() =>
      parseConfig(
        'trust_domain: td\nserver:\n  tls:\n    cert_file: server.crt\n    key_file: server.key\nidentity:\n  ca:\n    import: { cert_file: sub, key_file: /nonexistent/ca.key }\n',
        join(dir, 'm.yaml'),
        {},
      ),
    );
    assert.deepEqual(err.problems, [
      { keyPath: 'server.tls.key_file', message: `file not found: ${join(dir, 'server.key')}`, line: 5 },
      { keyPath: 'identity.ca.import.cert_file', message: `is not a regular file: ${join(dir, 'sub')}`, line: 8 },
      { keyPath: 'identity.ca.import.key_file', message: 'file not found: /nonexistent/ca.key', line: 8 },
    ]);
    assert.equal(err.file, join(dir, 'm.yaml'));
    assert.equal(err.keyPath, 'server.tls.key_file');
  });

  it('required keys inside optional sections', () => {
    assert.deepEqual(problems('trust_domain: td\nserver:\n  tls:\n    cert_file: a.crt\n'), ['c.yaml:3: server.tls.key_file: is required']);
    assert.deepEqual(problems('trust_domain: td\nattestation:\n  k8s:\n    clusters:\n      - name: prod\n'), [
      'c.yaml:5: attestation.k8s.clusters[0].issuer: is required',
    ]);
  });

  it('lifetimes, kubernetes clusters and static attestation', () => {
    assert.deepEqual(
      problems(
        [
          'trust_domain: td',
          'server: { listen: "0.0.0.0:1", allow_non_loopback_http: true }',
          'identity:',
          '  x509_svid: { default_ttl: 9000h }',
          '  jwt_svid: { default_ttl: 1d, key_ttl: 24h }',
          'attestation:',
          '  k8s:',
          '    clusters:',
          '      - { name: a, issuer: "http://10.0.0.1" }',
          '      - { name: a, issuer: "https://x", jwks_url: "https://x/jwks", jwks_file: /nonexistent }',
          '  static: { enabled: true }',
        ].join('\n'),
      ),
      [
        'c.yaml:4: identity.x509_svid.default_ttl: must be shorter than identity.ca.ttl (8760h)',
        'c.yaml:5: identity.jwt_svid.default_ttl: must be shorter than identity.jwt_svid.key_ttl (24h)',
        'c.yaml:9: attestation.k8s.clusters[0].issuer: must use https (http is allowed only on a loopback address)',
        'c.yaml:10: attestation.k8s.clusters[1].name: duplicate cluster name "a" (first used at attestation.k8s.clusters[0])',
        'c.yaml:10: attestation.k8s.clusters[1].jwks_file: set only one of jwks_url and jwks_file',
        'c.yaml:10: attestation.k8s.clusters[1].jwks_file: file not found: /nonexistent',
        'c.yaml:11: attestation.static.enabled: static attestation is for development only and is refused while server.listen (0.0.0.0) is not a loopback address',
        'c.yaml:11: attestation.static.allowed_selectors: must list at least one selector when static attestation is enabled',
      ],
    );
  });

  it('reports every problem at once, in line order, with structured problems', () => {
    const err = configError(() =>
      parseConfig('trust_domain: td\nlog:\n  level: loud\nserver:\n  lisen: x\n', 'c.yaml', {}),
    );
    assert.deepEqual(err.problems, [
      { keyPath: 'log.level', message: 'must be one of trace, debug, info, warn, error, fatal, silent (got "loud")', line: 3 },
      { keyPath: 'server.lisen', message: 'unknown key (did you mean "listen"?)', line: 5 },
    ]);
    assert.equal(err.keyPath, 'log.level');
    assert.equal(err.file, 'c.yaml');
    assert.equal(err.status, 500);
  });

  it('an empty file and a missing file', () => {
    assert.deepEqual(problems(''), ['c.yaml: trust_domain: is required']);
    assert.deepEqual(problems('# nothing\n'), ['c.yaml: trust_domain: is required']);
    const missing = join(root, 'no-such.yaml');
    assert.deepEqual(configError(() => loadConfigFile(missing, {})).message, `${missing}: cannot read the configuration file (ENOENT)`);
  });

  it('store: url required for postgres, refused for sqlite, must be a postgres URL', () => {
    assert.deepEqual(problems('trust_domain: td\nstore:\n  driver: postgres\n'), [
      'c.yaml:3: store.driver: postgres needs store.url (or the environment variable MANDATE_STORE_URL)',
    ]);
    assert.deepEqual(problems('trust_domain: td\nstore:\n  url: postgres://db/m\n'), ['c.yaml:3: store.url: is only used with store.driver: postgres']);
    assert.deepEqual(problems('trust_domain: td\nstore:\n  driver: postgres\n  url: mysql://db/m\n'), [
      'c.yaml:4: store.url: must be a postgres:// or postgresql:// URL',
    ]);
  });

  it('gateway: cross-field checks name the key and the fix', () => {
    const head = 'trust_domain: td\nserver: { public_url: "https://m.example" }\ndelegation:\n  scopes: { "a:read": Read a }\n  resources:\n    - { uri: "https://m.example/mcp/a" }\n';
    const g = (servers: string, extra = '') => problems(`${head}policy: { dir: . }\ngateway:\n${extra}  tool_servers:\n${servers}`);
    const mcp = (over = '') => {
      const fields = { name: 'a', path: '/mcp/a', type: 'mcp', url: '"http://127.0.0.1:9/mcp"', ...Object.fromEntries(over.split(/,\s*(?![^[{]*[\]}])/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf(':')).trim(), kv.slice(kv.indexOf(':') + 1).trim()])) };
      return `    - { ${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join(', ')} }\n`;
    };
    const valid = parseConfig(`${head}policy: { dir: . }\ngateway:\n  tool_servers:\n${mcp('')}`, 'c.yaml', {});
    assert.equal(valid.gateway.toolServers[0]?.resource, 'https://m.example/mcp/a');
    assert.deepEqual(valid.gateway.toolServers[0]?.credential, { type: 'none' });
    assert.deepEqual(g(mcp(', scopes: ["b:write"]')), ['c.yaml:10: gateway.tool_servers[0].scopes[0]: unknown scope "b:write": list it under delegation.scopes']);
    assert.deepEqual(g(mcp(', path: /mcp/b')), [
      'c.yaml:10: gateway.tool_servers[0].path: resource https://m.example/mcp/b is not among delegation.resources: list it there so tokens can be minted for it',
    ]);
    assert.match(g(mcp('') + mcp(', resource: "https://m.example/mcp/a", path: /mcp/a/x')).join('\n'), /tool_servers\[1\]\.name: "a" is already the name[\s\S]*tool_servers\[1\]\.path: \/mcp\/a\/x overlaps \/mcp\/a/);
    assert.match(g(mcp(', path: /admin/x, resource: "https://m.example/mcp/a"')).join('\n'), /path: overlaps Mandate's own \/admin/);
    assert.match(g(mcp(', path: /mcp/../a, resource: "https://m.example/mcp/a"')).join('\n'), /must not contain empty, "\." or "\.\." segments/);
    assert.match(g('    - { name: a, path: /mcp/a, type: mcp }\n').join('\n'), /url: a tool server of type mcp needs url/);
    assert.match(g('    - { name: a, path: /mcp/a, type: mcp_stdio, url: "http://127.0.0.1:9" }\n').join('\n'), /type mcp_stdio is started with command/);
    assert.match(g(mcp(', url: "http://tools.example/mcp"')).join('\n'), /url: /);
    assert.match(g(mcp(', credential: { type: secret }')).join('\n'), /credential.secret: type secret needs the vault secret's name/);
    assert.match(g(mcp(', routes: []')).join('\n'), /routes: only for type http/);
    assert.match(g(mcp(''), '  rate_limits: { store: redis }\n').join('\n'), /rate_limits.store: store redis needs gateway.rate_limits.redis_url or MANDATE_REDIS_URL/);
    assert.deepEqual(g(mcp(''), '  rate_limits: { store: redis }\n').length, 1);
    assert.deepEqual(problems(`${head}gateway:\n  tool_servers:\n${mcp('')}`), ['c.yaml:9: gateway.tool_servers: the gateway decides every call with the policy engine: set policy.dir']);
  });

  it('delegation: cross-field checks name the key and the fix', () => {
    const d = (body: string) => problems(`trust_domain: td\ndelegation:\n${body}`);
    assert.deepEqual(d('  clients:\n    - client_id: a\n      auth_method: client_secret_basic\n      grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]\n'), [
      'c.yaml:5: delegation.clients[0].auth_method: client_secret_basic needs secret_sha256',
    ]);
    assert.deepEqual(d('  clients:\n    - client_id: a\n      auth_method: private_key_jwt\n      spiffe_id: spiffe://td/a/../b\n      grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]\n')[0]?.slice(0, 43), 'c.yaml:6: delegation.clients[0].spiffe_id: ');
    assert.deepEqual(d('  clients:\n    - client_id: a\n'), ['c.yaml:4: delegation.clients[0].redirect_uris: the authorization_code grant needs at least one redirect URI']);
    assert.deepEqual(d('  clients:\n    - client_id: a\n      redirect_uris: ["http://app.example/cb"]\n'), [
      'c.yaml:5: delegation.clients[0].redirect_uris[0]: http redirect URIs are only allowed on loopback addresses',
    ]);
    assert.deepEqual(d('  clients:\n    - { client_id: a, redirect_uris: ["http://127.0.0.1/cb"] }\n    - { client_id: a, redirect_uris: ["http://127.0.0.1/cb"] }\n'), [
      'c.yaml:5: delegation.clients[1].client_id: duplicate: "a" is already used at delegation.clients[0]',
    ]);
    assert.deepEqual(d('  providers:\n    - { id: x, issuer: "http://sso.example", client_id: m }\n'), [
      'c.yaml:4: delegation.providers[0].issuer: the issuer must use https (http is only allowed on loopback addresses)',
    ]);
    assert.deepEqual(d('  providers:\n    - { id: x, issuer: "https://sso.example", client_id: m, scopes: [profile] }\n'), [
      'c.yaml:4: delegation.providers[0].scopes: must include "openid"',
    ]);
    assert.deepEqual(d('  scopes: { "a:read": Read a }\n  resources:\n    - { uri: "https://t.example/mcp", scopes: ["a:write"] }\n'), [
      'c.yaml:5: delegation.resources[0].scopes[0]: unknown scope "a:write": list it under delegation.scopes with a description',
    ]);
    assert.deepEqual(d('  mandates: { default_ttl: 2d, max_ttl: 1d }\n'), ['c.yaml:3: delegation.mandates.default_ttl: must not exceed delegation.mandates.max_ttl (1d)']);
    assert.deepEqual(d('  token: { max_ttl: 1h, key_ttl: 2h }\n'), ['c.yaml:3: delegation.token.key_ttl: must be at least four times delegation.token.max_ttl (1h) so rotation overlaps']);
  });

  it('delegation: a provider secret comes from the environment first and never shows in errors', () => {
    const text = 'trust_domain: td\ndelegation:\n  providers:\n    - { id: acme-sso, issuer: "https://sso.example", client_id: m, client_secret: from-file }\n';
    const config = parseConfig(text, 'c.yaml', { MANDATE_OIDC_ACME_SSO_CLIENT_SECRET: 'from-env' });
    assert.equal(config.delegation.providers[0]?.clientSecret?.reveal(), 'from-env');
    assert.equal(parseConfig(text, 'c.yaml', {}).delegation.providers[0]?.clientSecret?.reveal(), 'from-file');
    assert.doesNotMatch(JSON.stringify(config), /from-env|from-file/);
  });

  it('keys: kek must decode to 32 bytes, and only one of kek and kek_file', () => {
    assert.deepEqual(problems(`trust_domain: td\nkeys:\n  kek: ${Buffer.alloc(16).toString('base64')}\n`), [
      'c.yaml:3: keys.kek: must be base64 of 32 bytes, but it decodes to 16 bytes',
    ]);
    assert.deepEqual(problems('trust_domain: td\nkeys:\n  kek: "not base64!"\n'), ['c.yaml:3: keys.kek: must be base64 of 32 bytes, but it is not base64']);
    assert.deepEqual(problems(`trust_domain: td\nkeys:\n  kek: ${KEK_B64.slice(1)}\n`), [
      'c.yaml:3: keys.kek: must be base64 of 32 bytes, but it is not valid base64 (wrong length)',
    ]);
    const dir = dirWith({ kek: 'c2hvcnQ=' });
    const err = configError(() => parseConfig(`trust_domain: td\nkeys:\n  kek: ${KEK_B64}\n  kek_file: kek\n`, join(dir, 'c.yaml'), {}));
    assert.deepEqual(err.message.split('\n'), [`${join(dir, 'c.yaml')}:4: keys.kek_file: set only one of keys.kek and keys.kek_file`]);
    const fromFile = configError(() => parseConfig('trust_domain: td\nkeys:\n  kek_file: kek\n', join(dir, 'c.yaml'), {}));
    assert.deepEqual(fromFile.problems.map((p) => p.message), ["the file's content must be base64 of 32 bytes, but it decodes to 5 bytes"]);
  });

  it('accepts standard and URL-safe base64 KEKs, padded or not', () => {
    for (const kek of [KEK_B64, KEK_B64.replace(/=+$/, ''), KEK_B64URL]) {
      const config = parseConfig(`trust_domain: td\nkeys:\n  kek: "${kek}"\n`, 'c.yaml', {});
      assert.equal(config.keys.kek?.reveal().length, 32);
      assert.equal(config.keys.kek?.origin, 'keys.kek');
    }
  });
});

describe('parseConfig: environment overrides and secrets', () => {
  it('MANDATE_KEK overrides keys.kek and keys.kek_file', () => {
    const fileKek = Buffer.alloc(32, 1).toString('base64');
    const config = parseConfig(`trust_domain: td\nkeys:\n  kek: ${fileKek}\n`, 'c.yaml', { MANDATE_KEK: KEK_B64 });
    assert.deepEqual(config.keys.kek?.reveal(), new Uint8Array(Buffer.alloc(32, 7)));
    assert.equal(config.keys.kek?.origin, 'env MANDATE_KEK');
    const withFile = parseConfig('trust_domain: td\nkeys:\n  kek_file: /nonexistent/kek\n', 'c.yaml', { MANDATE_KEK: KEK_B64 });
    assert.equal(withFile.keys.kek?.origin, 'env MANDATE_KEK');
    assert.equal(withFile.keys.kekFile, '/nonexistent/kek');
  });

  it('MANDATE_STORE_URL overrides store.url', () => {
    const config = parseConfig('trust_domain: td\nstore:\n  driver: postgres\n  url: postgres://file/m\n', 'c.yaml', {
      MANDATE_STORE_URL: 'postgresql://env/m',
    });
    assert.ok(config.store.driver === 'postgres');
    assert.equal(config.store.url.reveal(), 'postgresql://env/m');
    assert.equal(config.store.url.origin, 'env MANDATE_STORE_URL');
    const envOnly = parseConfig('trust_domain: td\nstore: { driver: postgres }\n', 'c.yaml', { MANDATE_STORE_URL: 'postgres://env/m' });
    assert.ok(envOnly.store.driver === 'postgres');
    assert.equal(envOnly.store.url.reveal(), 'postgres://env/m');
  });

  it('an empty variable counts as unset, and non-secret variables are ignored', () => {
    const config = parseConfig('trust_domain: td\n', 'c.yaml', { MANDATE_KEK: '', MANDATE_TRUST_DOMAIN: 'other.org', MANDATE_LOG_LEVEL: 'debug' });
    assert.equal(config.keys.kek, undefined);
    assert.equal(config.trustDomain, 'td');
    assert.equal(config.log.level, 'info');
  });

  it('never echoes a secret value in an error', () => {
    const badKek = 'c3VwZXItc2VjcmV0LWtleQ=='; // base64 of "super-secret-key" (16 bytes)
    const badUrl = 'mysql://admin:hunter2@db.internal/m';
    const cases: Array<[string, NodeJS.ProcessEnv, string[]]> = [
      [`trust_domain: td\nkeys:\n  kek: ${badKek}\n`, {}, [badKek]],
      ['trust_domain: td\n', { MANDATE_KEK: badKek }, [badKek]],
      ['trust_domain: td\nkeys:\n  kek: 12345678901234\n', {}, ['12345678901234']],
      [`trust_domain: td\nkeys:\n  kek: [${badKek}]\n`, {}, [badKek]],
      [`trust_domain: td\nstore:\n  driver: postgres\n  url: ${badUrl}\n`, {}, ['hunter2', 'admin']],
      ['trust_domain: td\nstore: { driver: postgres }\n', { MANDATE_STORE_URL: badUrl }, ['hunter2', 'admin']],
      [`trust_domain: td\nkeys:\n  kek: "${badKek}\n`, {}, [badKek]], // YAML syntax error on the secret's line
      [`trust_domain: td\nkeys:\n  kek: ${badKek}: x\n`, {}, [badKek]],
      [
        `trust_domain: td\nfederation:\n  trust_domains:\n    - { trust_domain: p, bundle_url: "https://user:hunter2@p/b" }\n`,
        {},
        ['hunter2'],
      ],
    ];
    for (const [text, env, secrets] of cases) {
      const err = configError(() => parseConfig(text, 'c.yaml', env));
      for (const secret of secrets) {
        assert.ok(!err.message.includes(secret), `secret echoed: ${err.message}`);
        assert.ok(!JSON.stringify(err.problems).includes(secret));
      }
    }
    const env = { MANDATE_KEK: 'c2VjcmV0' };
    assert.match(configError(() => parseConfig('trust_domain: td\n', 'c.yaml', env)).message, /^c\.yaml: keys\.kek: \(from environment variable MANDATE_KEK\) must be base64 of 32 bytes, but it decodes to 6 bytes$/);
  });

  it('keeps secrets out of JSON and inspect output of the config', () => {
    const config = parseConfig('trust_domain: td\nstore: { driver: postgres }\n', 'c.yaml', {
      MANDATE_KEK: KEK_B64,
      MANDATE_STORE_URL: 'postgres://admin:hunter2@db/m',
    });
    for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config.keys.kek)]) {
      assert.ok(!text.includes('hunter2'), text);
      assert.ok(!text.includes(KEK_B64), text);
      assert.ok(!text.includes('7, 7, 7'), text);
    }
    assert.match(JSON.stringify(config.store), /\[secret from env MANDATE_STORE_URL\]/);
  });
});

describe('config/mandate.schema.json', () => {
  const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, 'utf8')) as Record<string, unknown>;

  it('lives at config/mandate.schema.json', () => {
    assert.equal(CONFIG_SCHEMA_URL.pathname, join(REPO, 'config/mandate.schema.json'));
  });

  it('is a valid draft 2020-12 JSON Schema that compiles in strict mode', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
    assert.equal(ajv.validateSchema(schema), true, JSON.stringify(ajv.errors));
    assert.doesNotThrow(() => ajv.compile(schema));
  });

  it('closes every object and describes every property', () => {
    const missing: string[] = [];
    walkObjects(schema, '', (node, where) => {
      if (node.additionalProperties !== false) missing.push(`${where}: additionalProperties is not false`);
      for (const [key, prop] of Object.entries(node.properties as Record<string, Record<string, unknown>>)) {
        if (typeof prop.description !== 'string' || prop.description.length < 10) missing.push(`${where}.${key}: no description`);
      }
    });
    assert.deepEqual(missing, []);
  });

  it('accepts every example configuration in config/ and rejects a typo', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    const validate = ajv.compile(schema);
    const files = readdirSync(join(REPO, 'config')).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.includes('example.yaml'));
    for (const file of files) {
      const data: unknown = parseYaml(readFileSync(join(REPO, 'config', file), 'utf8'));
      assert.equal(validate(data), true, `${file}: ${JSON.stringify(validate.errors)}`);
    }
    assert.equal(validate({ trust_domain: 'td', server: { lisen: '127.0.0.1:1' } }), false);
    assert.equal(validate({}), false);
  });

  it('every key is in config/example.yaml and in docs/configuration.md', () => {
    const example = readFileSync(join(REPO, 'config/example.yaml'), 'utf8');
    const docs = readFileSync(join(REPO, 'docs/configuration.md'), 'utf8');
    const paths: string[] = [];
    walkObjects(schema, '', (node, where) => {
      for (const key of Object.keys(node.properties as object)) paths.push(where === '' ? key : `${where}.${key}`);
    });
    assert.ok(paths.length > 50);
    for (const path of paths) {
      const leaf = path.split('.').pop()!.replace('[]', '');
      assert.match(example, new RegExp(`^\\s*(#\\s*)?(- )?${leaf}:`, 'm'), `example.yaml lacks ${path}`);
      assert.ok(docs.includes(`\`${path}\``) || docs.includes(`\`${path}.`), `docs/configuration.md lacks ${path}`);
    }
  });
});

/** Calls `visit` for every object schema with `properties`, with its key path (`a.b[]` for list items). */
function walkObjects(
  node: Record<string, unknown>,
  where: string,
  visit: (node: Record<string, unknown>, where: string) => void,
): void {
  if (node.properties !== undefined) {
    visit(node, where);
    for (const [key, child] of Object.entries(node.properties as Record<string, Record<string, unknown>>)) {
      walkObjects(child, where === '' ? key : `${where}.${key}`, visit);
    }
  }
  if (node.items !== undefined) walkObjects(node.items as Record<string, unknown>, `${where}[]`, visit);
}
