/**
 * Normalisation of the identity-side sections: `identity`, `attestation` and `federation`.
 *
 * @example
 *   const identity = normaliseIdentity(raw.identity, check); // durations in seconds, files absolute
 */
import { isMandateError } from '../errors.ts';
import { parseTrustDomain } from '../identity/spiffe-id/parse.ts';
import { isLoopbackHost } from './address.ts';
import type { Checker } from './checker.ts';
import { formatKeyPath } from './problems.ts';
import type { RawConfig, RawFederatedTrustDomain, RawK8sCluster } from './raw.ts';
import type {
  AttestationConfig,
  FederatedTrustDomain,
  FederationConfig,
  IdentityConfig,
  K8sClusterConfig,
  ListenAddress,
} from './types.ts';

const DEFAULT_FEDERATION_REFRESH = '5m';

export function normaliseIdentity(raw: RawConfig['identity'], check: Checker): IdentityConfig {
  const ca = raw.ca;
  const caImport = ca.import && {
    certFile: check.inputFile(['identity', 'ca', 'import', 'cert_file'], ca.import.cert_file),
    keyFile: check.inputFile(['identity', 'ca', 'import', 'key_file'], ca.import.key_file),
    bundleFile:
      ca.import.bundle_file === undefined
        ? undefined
        : check.inputFile(['identity', 'ca', 'import', 'bundle_file'], ca.import.bundle_file),
  };
  const caTtl = check.seconds(['identity', 'ca', 'ttl'], ca.ttl);
  const x509DefaultTtl = check.seconds(['identity', 'x509_svid', 'default_ttl'], raw.x509_svid.default_ttl);
  // An imported CA's remaining life is only known once its certificate is read, so only a generated
  // CA's lifetime is compared here.
  if (!caImport && x509DefaultTtl >= caTtl) {
    check.add(['identity', 'x509_svid', 'default_ttl'], `must be shorter than identity.ca.ttl (${String(ca.ttl)})`);
  }
  const jwt = raw.jwt_svid;
  const jwtDefaultTtl = check.seconds(['identity', 'jwt_svid', 'default_ttl'], jwt.default_ttl);
  const jwtKeyTtl = check.seconds(['identity', 'jwt_svid', 'key_ttl'], jwt.key_ttl);
  if (jwtDefaultTtl >= jwtKeyTtl) {
    const message = `must be shorter than identity.jwt_svid.key_ttl (${String(jwt.key_ttl)})`;
    check.add(['identity', 'jwt_svid', 'default_ttl'], message);
  }
  return {
    ca: { keyType: ca.key_type, ttl: caTtl, commonName: ca.common_name, import: caImport },
    x509Svid: { defaultTtl: x509DefaultTtl },
    jwtSvid: { algorithm: jwt.algorithm, defaultTtl: jwtDefaultTtl, keyTtl: jwtKeyTtl },
    bundle: { refreshHint: check.seconds(['identity', 'bundle', 'refresh_hint'], raw.bundle.refresh_hint) },
    rotation: {
      checkInterval: check.seconds(['identity', 'rotation', 'check_interval'], raw.rotation.check_interval),
      prepareAhead: raw.rotation.prepare_ahead,
    },
  };
}

export function normaliseAttestation(
  raw: RawConfig['attestation'],
  listen: ListenAddress,
  check: Checker,
): AttestationConfig {
  const staticPath = ['attestation', 'static'];
  if (raw.static.enabled) {
    // A workload that merely states its selectors is believed: only tolerable on a developer machine.
    if (!isLoopbackHost(listen.host)) {
      check.add(
        [...staticPath, 'enabled'],
        `static attestation is for development only and is refused while server.listen (${listen.host}) is not a loopback address`,
      );
    }
    if (raw.static.allowed_selectors.length === 0) {
      check.add([...staticPath, 'allowed_selectors'], 'must list at least one selector when static attestation is enabled', 'key');
    }
  }
  return {
    joinToken: {
      enabled: raw.join_token.enabled,
      defaultTtl: check.seconds(['attestation', 'join_token', 'default_ttl'], raw.join_token.default_ttl),
    },
    k8s: { clusters: raw.k8s.clusters.map((cluster, i) => normaliseCluster(cluster, i, raw.k8s.clusters, check)) },
    static: { enabled: raw.static.enabled, allowedSelectors: [...raw.static.allowed_selectors] },
  };
}

function normaliseCluster(raw: RawK8sCluster, index: number, all: RawK8sCluster[], check: Checker): K8sClusterConfig {
  const path = ['attestation', 'k8s', 'clusters', index];
  const first = all.findIndex((c) => c.name === raw.name);
  if (first < index) {
    const firstPath = formatKeyPath(['attestation', 'k8s', 'clusters', first]);
    check.add([...path, 'name'], `duplicate cluster name "${raw.name}" (first used at ${firstPath})`);
  }
  if (raw.jwks_url !== undefined && raw.jwks_file !== undefined) {
    check.add([...path, 'jwks_file'], 'set only one of jwks_url and jwks_file', 'key');
  }
  // Without a JWKS source the keys are found by OIDC discovery at the issuer, which is then fetched.
  if (raw.jwks_url === undefined && raw.jwks_file === undefined) check.fetchUrl([...path, 'issuer'], raw.issuer);
  return {
    name: raw.name,
    issuer: raw.issuer,
    audience: raw.audience,
    jwksUrl: raw.jwks_url === undefined ? undefined : check.fetchUrl([...path, 'jwks_url'], raw.jwks_url),
    jwksFile: raw.jwks_file === undefined ? undefined : check.inputFile([...path, 'jwks_file'], raw.jwks_file),
    caFile: raw.ca_file === undefined ? undefined : check.inputFile([...path, 'ca_file'], raw.ca_file),
  };
}

export function normaliseFederation(raw: RawConfig['federation'], ownTrustDomain: string, check: Checker): FederationConfig {
  const seen = new Map<string, number>();
  const trustDomains = raw.trust_domains.map((entry, index) => {
    const federated = normaliseFederated(entry, index, check);
    const path = ['federation', 'trust_domains', index, 'trust_domain'];
    const earlier = seen.get(federated.trustDomain);
    if (federated.trustDomain === ownTrustDomain) {
      check.add(path, `must not be our own trust domain (${ownTrustDomain}): its bundle is ours`);
    } else if (earlier !== undefined) {
      const earlierPath = formatKeyPath(['federation', 'trust_domains', earlier]);
      check.add(path, `duplicate: ${federated.trustDomain} is already federated at ${earlierPath}`);
    } else {
      seen.set(federated.trustDomain, index);
    }
    return federated;
  });
  return { trustDomains };
}

function normaliseFederated(raw: RawFederatedTrustDomain, index: number, check: Checker): FederatedTrustDomain {
  const path = ['federation', 'trust_domains', index];
  let trustDomain = raw.trust_domain;
  try {
    trustDomain = parseTrustDomain(raw.trust_domain);
  } catch (err) {
    if (!isMandateError(err)) throw err;
    check.add([...path, 'trust_domain'], err.message);
  }
  const hasFile = raw.bundle_file !== undefined;
  const hasUrl = raw.bundle_url !== undefined;
  if (hasFile === hasUrl) {
    check.add(path, `set exactly one of bundle_file and bundle_url (${hasFile ? 'both are set' : 'neither is set'})`, 'key');
  }
  if (raw.bundle_file !== undefined) {
    for (const key of ['ca_file', 'default_refresh'] as const) {
      if (raw[key] !== undefined && !hasUrl) check.add([...path, key], 'is only used with bundle_url', 'key');
    }
    return { kind: 'file', trustDomain, bundleFile: check.inputFile([...path, 'bundle_file'], raw.bundle_file) };
  }
  return {
    kind: 'url',
    trustDomain,
    bundleUrl: raw.bundle_url === undefined ? '' : check.fetchUrl([...path, 'bundle_url'], raw.bundle_url),
    caFile: raw.ca_file === undefined ? undefined : check.inputFile([...path, 'ca_file'], raw.ca_file),
    defaultRefresh: check.seconds([...path, 'default_refresh'], raw.default_refresh ?? DEFAULT_FEDERATION_REFRESH),
  };
}
