/**
 * From the schema-checked file to MandateConfig: the checks a schema cannot express (a valid trust
 * domain, a parsable listen address, files that exist, a KEK of the right size, federation without
 * duplicates or ourselves...), secrets from the environment, paths made absolute, durations in numbers.
 *
 * @example
 *   const check = new Checker(yaml, baseDir, env);
 *   const config = normalise(raw, 'demo.yaml', check);
 *   if (check.problems.length > 0) throw new ConfigError('demo.yaml', check.problems);
 */
import { hostname } from 'node:os';
import { isMandateError } from '../errors.ts';
import { parseTrustDomain } from '../identity/spiffe-id/parse.ts';
import { isLoopbackHost, parseListen, parseUrl, urlHost } from './address.ts';
import type { Checker } from './checker.ts';
import { normaliseDelegation } from './normalise-delegation.ts';
import { normaliseGateway } from './normalise-gateway.ts';
import { normaliseAttestation, normaliseFederation, normaliseIdentity } from './normalise-identity.ts';
import type { RawConfig } from './raw.ts';
import { Secret } from './secret.ts';
import type { AuditConfig, KeysConfig, ListenAddress, MandateConfig, ObservabilityConfig, ServerConfig, StoreConfig } from './types.ts';

/** Secret overrides from the environment. Only secrets may come from there. */
export const ENV_KEK = 'MANDATE_KEK';
export const ENV_STORE_URL = 'MANDATE_STORE_URL';

const KEK_BYTES = 32;

export function normalise(raw: RawConfig, source: string, check: Checker): MandateConfig {
  const trustDomain = normaliseTrustDomain(raw.trust_domain, check);
  const dataDir = check.resolvePath(raw.data_dir);
  const server = normaliseServer(raw.server, check);
  const delegation = normaliseDelegation(raw.delegation, check);
  const policyDir = raw.policy.dir === undefined ? undefined : check.inputDirectory(['policy', 'dir'], raw.policy.dir);
  return {
    source,
    trustDomain,
    dataDir,
    server,
    store: normaliseStore(raw.store, check),
    keys: normaliseKeys(raw.keys, check),
    identity: normaliseIdentity(raw.identity, check),
    attestation: normaliseAttestation(raw.attestation, server.listen, check),
    federation: normaliseFederation(raw.federation, trustDomain, check),
    delegation,
    policy: { dir: policyDir, watch: raw.policy.watch },
    gateway: normaliseGateway(raw.gateway, { delegation, policyDir, publicUrl: server.publicUrlFromListen ? undefined : server.publicUrl }, check),
    audit: normaliseAudit(raw.audit, trustDomain, check),
    observability: normaliseObservability(raw.observability, check),
    log: { level: raw.log.level },
  };
}

function normaliseAudit(raw: RawConfig['audit'], trustDomain: string, check: Checker): AuditConfig {
  const origin = raw.origin ?? `${trustDomain}/mandate/audit`;
  // The origin is the first line of every checkpoint note: one line of printable text.
  if (!/^[\x21-\x7e][\x20-\x7e]*$/.test(origin)) check.add(['audit', 'origin'], 'must be one line of printable ASCII, not starting with a space');
  return {
    origin,
    checkpointIntervalSeconds: check.seconds(['audit', 'checkpoint_interval'], raw.checkpoint_interval),
    maxBatch: raw.max_batch,
    redact: raw.redact,
    replica: raw.replica ?? hostname(),
  };
}

function normaliseObservability(raw: RawConfig['observability'], check: Checker): ObservabilityConfig {
  const endpoint = raw.traces.otlp_endpoint;
  return {
    metrics: { enabled: raw.metrics.enabled },
    traces: {
      otlpEndpoint: endpoint === undefined ? undefined : check.fetchUrl(['observability', 'traces', 'otlp_endpoint'], endpoint),
      serviceName: raw.traces.service_name,
      sampleRatio: raw.traces.sample_ratio,
    },
  };
}

function normaliseTrustDomain(value: string, check: Checker): string {
  try {
    return parseTrustDomain(value);
  } catch (err) {
    if (!isMandateError(err)) throw err;
    check.add(['trust_domain'], err.message);
    return value;
  }
}

function normaliseServer(raw: RawConfig['server'], check: Checker): ServerConfig {
  let listen: ListenAddress = { host: '127.0.0.1', port: 0 };
  const parsed = parseListen(raw.listen);
  if (typeof parsed === 'string') check.add(['server', 'listen'], `${parsed} (got ${JSON.stringify(raw.listen)})`);
  else listen = parsed;

  const tls = raw.tls && {
    certFile: check.inputFile(['server', 'tls', 'cert_file'], raw.tls.cert_file),
    keyFile: check.inputFile(['server', 'tls', 'key_file'], raw.tls.key_file),
  };
  if (!tls && !raw.allow_non_loopback_http && typeof parsed !== 'string' && !isLoopbackHost(listen.host)) {
    check.add(
      ['server', 'listen'],
      `plain HTTP on the non-loopback address ${listen.host} is refused: set server.tls, or set ` +
        'server.allow_non_loopback_http: true when TLS ends in front of Mandate',
    );
  }
  const derivedUrl = `${tls ? 'https' : 'http'}://${urlHost(listen.host)}:${listen.port}`;
  return {
    listen,
    publicUrl: raw.public_url === undefined ? derivedUrl : normalisePublicUrl(raw.public_url, check),
    publicUrlFromListen: raw.public_url === undefined,
    tls,
    maxBodyBytes: raw.max_body_bytes,
    requestTimeout: check.milliseconds(['server', 'request_timeout'], raw.request_timeout),
    allowNonLoopbackHttp: raw.allow_non_loopback_http,
  };
}

/** An http(s) origin with an optional base path; returned without a trailing `/`. */
function normalisePublicUrl(value: string, check: Checker): string {
  const path = ['server', 'public_url'];
  const url = parseUrl(value);
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    check.add(path, `must be an absolute http or https URL (got ${JSON.stringify(value)})`);
    return value;
  }
  if (url.username !== '' || url.password !== '') check.add(path, 'must not contain a user name or password');
  else if (url.search !== '' || url.hash !== '') check.add(path, 'must not contain a query or fragment');
  return url.href.replace(/\/+$/, '');
}

function normaliseStore(raw: RawConfig['store'], check: Checker): StoreConfig {
  if (raw.driver === 'sqlite') {
    if (raw.url !== undefined) check.add(['store', 'url'], 'is only used with store.driver: postgres', 'key');
    return { driver: 'sqlite', path: raw.path };
  }
  const fromEnv = check.envVar(ENV_STORE_URL);
  const url = fromEnv ?? raw.url;
  if (url === undefined) {
    check.add(['store', 'driver'], `postgres needs store.url (or the environment variable ${ENV_STORE_URL})`);
    return { driver: 'postgres', url: new Secret('', 'store.url') };
  }
  const protocol = parseUrl(url)?.protocol;
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    // Never echo the value: it usually holds a password.
    const message = 'must be a postgres:// or postgresql:// URL';
    if (fromEnv !== undefined) check.addFromEnv(['store', 'url'], ENV_STORE_URL, message);
    else check.add(['store', 'url'], message);
  }
  return { driver: 'postgres', url: new Secret(url, fromEnv !== undefined ? `env ${ENV_STORE_URL}` : 'store.url') };
}

function normaliseKeys(raw: RawConfig['keys'], check: Checker): KeysConfig {
  const kekFile = raw.kek_file === undefined ? undefined : check.resolvePath(raw.kek_file);
  if (raw.kek !== undefined && raw.kek_file !== undefined) {
    check.add(['keys', 'kek_file'], 'set only one of keys.kek and keys.kek_file', 'key');
  }
  const fromEnv = check.envVar(ENV_KEK);
  if (fromEnv !== undefined) {
    const bytes = decodeKek(fromEnv);
    if (typeof bytes === 'string') check.addFromEnv(['keys', 'kek'], ENV_KEK, bytes);
    return { kek: new Secret(toBytes(bytes), `env ${ENV_KEK}`), kekFile };
  }
  if (raw.kek !== undefined) {
    const bytes = decodeKek(raw.kek);
    if (typeof bytes === 'string') check.add(['keys', 'kek'], bytes);
    return { kek: new Secret(toBytes(bytes), 'keys.kek'), kekFile };
  }
  if (raw.kek_file !== undefined) {
    const text = check.readInputFile(['keys', 'kek_file'], raw.kek_file);
    if (text === undefined) return { kek: undefined, kekFile };
    const bytes = decodeKek(text.trim());
    if (typeof bytes === 'string') check.add(['keys', 'kek_file'], `the file's content ${bytes}`);
    return { kek: new Secret(toBytes(bytes), 'keys.kek_file'), kekFile };
  }
  return { kek: undefined, kekFile: undefined };
}

/**
 * Decodes base64 (standard or URL-safe, padding optional) strictly: Buffer.from alone skips junk
 * characters, which would accept a mistyped key. Returns a sentence (without the value) on failure.
 */
function decodeKek(text: string): Uint8Array | string {
  const normalised = text.replace(/-/g, '+').replace(/_/g, '/').replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(normalised)) return `must be base64 of ${KEK_BYTES} bytes, but it is not base64`;
  const bytes = Buffer.from(normalised, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== normalised) {
    return `must be base64 of ${KEK_BYTES} bytes, but it is not valid base64 (wrong length)`;
  }
  if (bytes.length !== KEK_BYTES) return `must be base64 of ${KEK_BYTES} bytes, but it decodes to ${bytes.length} bytes`;
  return new Uint8Array(bytes);
}

function toBytes(decoded: Uint8Array | string): Uint8Array {
  return typeof decoded === 'string' ? new Uint8Array(0) : decoded;
}
