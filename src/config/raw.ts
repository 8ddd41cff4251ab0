/**
 * The configuration as written (snake_case), after the schema has checked its shape and filled its
 * defaults. Only normalise.ts reads it; everything else uses MandateConfig.
 */
import type { CaKeyType, JwtSvidAlgorithm, LogLevel } from './types.ts';

export type RawDuration = string | number;

export interface RawConfig {
  trust_domain: string;
  data_dir: string;
  server: {
    listen: string;
    public_url?: string;
    tls?: RawTls;
    max_body_bytes: number;
    request_timeout: RawDuration;
    allow_non_loopback_http: boolean;
  };
  store: { driver: 'sqlite' | 'postgres'; path: string; url?: string };
  keys: { kek?: string; kek_file?: string };
  identity: {
    ca: {
      key_type: CaKeyType;
      ttl: RawDuration;
      common_name: string;
      import?: { cert_file: string; key_file: string; bundle_file?: string };
    };
    x509_svid: { default_ttl: RawDuration };
    jwt_svid: { algorithm: JwtSvidAlgorithm; default_ttl: RawDuration; key_ttl: RawDuration };
    bundle: { refresh_hint: RawDuration };
    rotation: { check_interval: RawDuration; prepare_ahead: number };
  };
  attestation: {
    join_token: { enabled: boolean; default_ttl: RawDuration };
    k8s: { clusters: RawK8sCluster[] };
    static: { enabled: boolean; allowed_selectors: string[] };
  };
  federation: { trust_domains: RawFederatedTrustDomain[] };
  log: { level: LogLevel };
}

export interface RawTls {
  cert_file: string;
  key_file: string;
}

export interface RawK8sCluster {
  name: string;
  issuer: string;
  audience: string;
  jwks_url?: string;
  jwks_file?: string;
  ca_file?: string;
}

export interface RawFederatedTrustDomain {
  trust_domain: string;
  bundle_file?: string;
  bundle_url?: string;
  ca_file?: string;
  default_refresh?: RawDuration;
}
