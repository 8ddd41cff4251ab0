/**
 * The configuration as written (snake_case), after the schema has checked its shape and filled its
 * defaults. Only normalise.ts reads it; everything else uses MandateConfig.
 */
import type { CaKeyType, ClientAuthMethod, JwtSvidAlgorithm, LogLevel, TokenSigningAlgorithm } from './types.ts';

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
  delegation: RawDelegation;
  policy: { dir?: string; watch: boolean };
  gateway: RawGateway;
  audit: { origin?: string; checkpoint_interval: RawDuration; max_batch: number; redact: string[]; replica?: string };
  observability: {
    metrics: { enabled: boolean };
    traces: { otlp_endpoint?: string; service_name: string; sample_ratio: number };
  };
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

export interface RawDelegation {
  token: { algorithm: TokenSigningAlgorithm; max_ttl: RawDuration; key_ttl: RawDuration };
  mandates: { default_ttl: RawDuration; max_ttl: RawDuration; default_max_depth: number };
  authorization_code_ttl: RawDuration;
  refresh_token_ttl: RawDuration;
  session_ttl: RawDuration;
  directory: { enabled: boolean; max_failures: number; lockout: RawDuration };
  providers: RawOidcProvider[];
  clients: RawOAuthClient[];
  client_id_metadata_documents: { enabled: boolean; allow_private_addresses: boolean; max_bytes: number; timeout: RawDuration; cache_ttl: RawDuration };
  dynamic_registration: { enabled: boolean };
  dpop: { algorithms: string[]; proof_max_age: RawDuration; require_nonce: boolean; replay_cache_size: number };
  mtls?: { listen: string; cert_file: string; key_file: string; public_url?: string };
  scopes: Record<string, string>;
  resources: Array<{ uri: string; name?: string; scopes?: string[] }>;
}

export interface RawOidcProvider {
  id: string;
  name?: string;
  issuer: string;
  client_id: string;
  client_secret?: string;
  scopes: string[];
  access_token_audience?: string;
  ca_file?: string;
}

export interface RawOAuthClient {
  client_id: string;
  name?: string;
  redirect_uris: string[];
  auth_method: ClientAuthMethod;
  secret_sha256?: string;
  spiffe_id?: string;
  grant_types: string[];
}

export interface RawRateLimit { rate: number; burst: number }

export interface RawGateway {
  listen?: string;
  tls?: RawTls;
  mtls?: { listen: string; cert_file: string; key_file: string };
  limits: {
    max_body_bytes: number;
    max_batch: number;
    max_depth: number;
    request_timeout: RawDuration;
    upstream_timeout: RawDuration;
    max_list_bytes: number;
  };
  rate_limits: {
    store: 'memory' | 'redis';
    redis_url?: string;
    max_buckets: number;
    agent?: RawRateLimit;
    principal?: RawRateLimit;
    tool?: RawRateLimit;
  };
  txn_token: { enabled: boolean; ttl: RawDuration };
  tool_servers: RawToolServer[];
}

export interface RawToolServer {
  name: string;
  path: string;
  type: 'mcp' | 'mcp_stdio' | 'http';
  url?: string;
  command?: string[];
  env?: Record<string, string>;
  cwd?: string;
  resource?: string;
  scopes?: string[];
  tool_scopes?: Record<string, string[]>;
  routes?: Array<{ method: string; path: string; scopes?: string[] }>;
  credential: {
    type: 'obo_token' | 'secret' | 'none';
    audience?: string;
    secret?: string;
    owner?: 'principal' | 'server';
    header?: string;
    prefix?: string;
  };
  timeout?: RawDuration;
}
