/**
 * The validated, normalised configuration of a Mandate deployment: camelCase, defaults filled in, file
 * paths absolute, durations in seconds (except `server.requestTimeout`, in milliseconds), secrets
 * wrapped so they never reach a log line. Produced only by `loadConfigFile` / `parseConfig`.
 *
 * @example
 *   const config = loadConfigFile('config/demo.yaml');
 *   config.trustDomain                 // 'example.org'
 *   config.identity.jwtSvid.defaultTtl // 300 (seconds)
 */
import type { Secret } from './secret.ts';

export type CaKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072';
export type JwtSvidAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'PS256';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface MandateConfig {
  /** Where this configuration came from (the file path as given, or the source label). */
  readonly source: string;
  /** Bare trust domain name, e.g. `example.org`. */
  readonly trustDomain: string;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  readonly server: ServerConfig;
  readonly store: StoreConfig;
  readonly keys: KeysConfig;
  readonly identity: IdentityConfig;
  readonly attestation: AttestationConfig;
  readonly federation: FederationConfig;
  readonly delegation: DelegationConfig;
  readonly policy: PolicyConfig;
  readonly gateway: GatewayConfig;
  readonly audit: AuditConfig;
  readonly observability: ObservabilityConfig;
  readonly log: { readonly level: LogLevel };
}

export interface ListenAddress {
  /** Host as `net.Server.listen` takes it: IPv6 without brackets. */
  readonly host: string;
  /** 0 means "any free port". */
  readonly port: number;
}

export interface TlsFiles {
  /** Absolute path. */
  readonly certFile: string;
  /** Absolute path. */
  readonly keyFile: string;
}

export interface ServerConfig {
  readonly listen: ListenAddress;
  /** Origin (and optional base path) clients use, without a trailing `/`, e.g. `https://mandate.example.org`. */
  readonly publicUrl: string;
  /**
   * True when `publicUrl` was derived from `listen` rather than configured; the server may then replace
   * it once it knows the bound port (listen port 0).
   */
  readonly publicUrlFromListen: boolean;
  /** HTTPS when set, plain HTTP otherwise. */
  readonly tls: TlsFiles | undefined;
  readonly maxBodyBytes: number;
  /** Milliseconds. */
  readonly requestTimeout: number;
  readonly allowNonLoopbackHttp: boolean;
}

export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig;

export interface SqliteStoreConfig {
  readonly driver: 'sqlite';
  /**
   * The database file: absolute, or relative to the data directory in use (`data_dir`, or the
   * `--data-dir` / MANDATE_HOME that overrides it), which is only known at start.
   */
  readonly path: string;
}

export interface PostgresStoreConfig {
  readonly driver: 'postgres';
  /** Connection URL; from MANDATE_STORE_URL when that is set, else from `store.url`. */
  readonly url: Secret<string>;
}

export interface KeysConfig {
  /**
   * The 32-byte key-encryption key, from MANDATE_KEK, `keys.kek` or the content of `keys.kek_file`
   * (in that order). Undefined when none is configured: `mandate up` then generates one in the data dir.
   */
  readonly kek: Secret<Uint8Array> | undefined;
  /** Absolute path of `keys.kek_file`, when configured. */
  readonly kekFile: string | undefined;
}

export interface IdentityConfig {
  readonly ca: CaConfig;
  readonly x509Svid: { /** Seconds. */ readonly defaultTtl: number };
  readonly jwtSvid: {
    readonly algorithm: JwtSvidAlgorithm;
    /** Seconds. */
    readonly defaultTtl: number;
    /** Seconds. */
    readonly keyTtl: number;
  };
  readonly bundle: { /** Seconds. */ readonly refreshHint: number };
  readonly rotation: {
    /** Seconds. */
    readonly checkInterval: number;
    /** Fraction of key lifetime left when the next key is prepared, in (0, 1). */
    readonly prepareAhead: number;
  };
}

export interface CaConfig {
  readonly keyType: CaKeyType;
  /** Seconds. */
  readonly ttl: number;
  readonly commonName: string;
  /** Set when an existing CA is imported instead of generated. */
  readonly import: CaImportConfig | undefined;
}

export interface CaImportConfig {
  /** Absolute path. */
  readonly certFile: string;
  /** Absolute path. */
  readonly keyFile: string;
  /** Absolute path of the trust anchors to publish, when the imported CA is an intermediate. */
  readonly bundleFile: string | undefined;
}

export interface AttestationConfig {
  readonly joinToken: {
    readonly enabled: boolean;
    /** Seconds. */
    readonly defaultTtl: number;
  };
  readonly k8s: { readonly clusters: readonly K8sClusterConfig[] };
  readonly static: {
    readonly enabled: boolean;
    readonly allowedSelectors: readonly string[];
  };
}

export interface K8sClusterConfig {
  readonly name: string;
  readonly issuer: string;
  readonly audience: string;
  /** Undefined: use `jwksFile`, or OIDC discovery at the issuer. */
  readonly jwksUrl: string | undefined;
  /** Absolute path. */
  readonly jwksFile: string | undefined;
  /** Absolute path of PEM trust anchors for HTTPS fetches. */
  readonly caFile: string | undefined;
}

export interface FederationConfig {
  readonly trustDomains: readonly FederatedTrustDomain[];
}

/** A federated trust domain: its bundle comes either from a file or from a bundle endpoint. */
export type FederatedTrustDomain = FederatedFromFile | FederatedFromUrl;

export interface FederatedFromFile {
  readonly kind: 'file';
  readonly trustDomain: string;
  /** Absolute path. */
  readonly bundleFile: string;
}

export interface FederatedFromUrl {
  readonly kind: 'url';
  readonly trustDomain: string;
  readonly bundleUrl: string;
  /** Absolute path of PEM trust anchors for the endpoint's TLS certificate. */
  readonly caFile: string | undefined;
  /** Seconds between fetches when the bundle carries no refresh hint. */
  readonly defaultRefresh: number;
}

export type TokenSigningAlgorithm = 'ES256' | 'ES384' | 'PS256' | 'RS256' | 'EdDSA';

/** The delegation authority: principals, mandates, consent and the token endpoint. */
export interface DelegationConfig {
  readonly token: {
    readonly algorithm: TokenSigningAlgorithm;
    /** Seconds: the longest an OBO or access token may live (default 300). */
    readonly maxTtl: number;
    /** Seconds a token-signing key signs before it is rotated. */
    readonly keyTtl: number;
  };
  readonly mandates: {
    /** Seconds: lifetime of a consented mandate when the request names none. */
    readonly defaultTtl: number;
    /** Seconds: the longest a mandate may be granted for. */
    readonly maxTtl: number;
    /** Delegation hops below the agent when a request names none (0 = no sub-agents). */
    readonly defaultMaxDepth: number;
  };
  /** Seconds. */
  readonly authorizationCodeTtl: number;
  /** Seconds. */
  readonly refreshTokenTtl: number;
  /** Seconds a browser sign-in lasts. */
  readonly sessionTtl: number;
  readonly directory: {
    readonly enabled: boolean;
    /** Failed sign-ins in a row before the account is locked. */
    readonly maxFailures: number;
    /** Seconds the account stays locked. */
    readonly lockout: number;
  };
  readonly providers: readonly OidcProviderConfig[];
  readonly clients: readonly OAuthClientConfig[];
  readonly clientIdMetadataDocuments: {
    readonly enabled: boolean;
    /** Allow metadata documents on loopback/private addresses (tests, labs). Never in production. */
    readonly allowPrivateAddresses: boolean;
    readonly maxBytes: number;
    /** Milliseconds. */
    readonly timeout: number;
    /** Seconds a fetched document is reused. */
    readonly cacheTtl: number;
  };
  readonly dynamicRegistration: { readonly enabled: boolean };
  readonly dpop: {
    readonly algorithms: readonly string[];
    /** Seconds a proof is accepted after its `iat`. */
    readonly proofMaxAge: number;
    /** Require a server nonce in proofs (RFC 9449 §8). */
    readonly requireNonce: boolean;
    /** Proof ids remembered per process to refuse replays; when full, new proofs are refused. */
    readonly replayCacheSize: number;
  };
  /** A second, mutual-TLS listener for tls_client_auth and certificate-bound tokens (RFC 8705 endpoint aliases). */
  readonly mtls: MtlsListenerConfig | undefined;
  /** Scope -> what it allows, in words, for the consent page. Only these scopes can be granted. */
  readonly scopes: Readonly<Record<string, string>>;
  /** The resources (tool servers) mandates can name. */
  readonly resources: readonly ResourceConfig[];
}

export interface MtlsListenerConfig {
  readonly listen: ListenAddress;
  readonly tls: TlsFiles;
  /** Base URL of the listener as clients reach it, without a trailing `/`. */
  readonly publicUrl: string;
}

export interface ResourceConfig {
  /** Resource indicator (RFC 8707): absolute URI without fragment, e.g. `http://127.0.0.1:8420/mcp/issues`. */
  readonly uri: string;
  readonly name: string;
  /** Scopes that make sense for this resource (shown and offered on the consent page). */
  readonly scopes: readonly string[];
}

export interface OidcProviderConfig {
  /** Short name used in URLs (`/signin/<id>`). */
  readonly id: string;
  /** Shown on the sign-in page. */
  readonly name: string;
  /** The provider's issuer identifier; discovery at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: Secret<string> | undefined;
  readonly scopes: readonly string[];
  /**
   * Audience Mandate requires in this provider's access tokens presented as subject tokens; undefined
   * means only its ID tokens (audience = clientId) are accepted.
   */
  readonly accessTokenAudience: string | undefined;
  /** Absolute path of PEM trust anchors for the provider's HTTPS endpoints. */
  readonly caFile: string | undefined;
}

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'tls_client_auth';

/** A pre-registered OAuth client. */
export interface OAuthClientConfig {
  readonly clientId: string;
  readonly name: string;
  readonly redirectUris: readonly string[];
  readonly authMethod: ClientAuthMethod;
  /** SHA-256 (hex) of the client secret, for client_secret_* methods. */
  readonly secretHash: string | undefined;
  /** For private_key_jwt (a JWT-SVID of this ID) and tls_client_auth (an X.509-SVID with this URI SAN). */
  readonly spiffeId: string | undefined;
  readonly grantTypes: readonly string[];
}

export interface PolicyConfig {
  /** Absolute path of the policy directory; undefined: no policy engine. */
  readonly dir: string | undefined;
  /** Reload when a file in the directory changes. */
  readonly watch: boolean;
}

export interface AuditConfig {
  /** The log's name in its checkpoints (C2SP origin). */
  readonly origin: string;
  readonly checkpointIntervalSeconds: number;
  readonly maxBatch: number;
  /** Argument paths redacted in events. */
  readonly redact: readonly string[];
  /** This process's name in its events. */
  readonly replica: string;
}

export interface ObservabilityConfig {
  readonly metrics: { readonly enabled: boolean };
  readonly traces: {
    /** OTLP/HTTP traces endpoint; undefined: spans are not exported. */
    readonly otlpEndpoint: string | undefined;
    readonly serviceName: string;
    readonly sampleRatio: number;
  };
}

export interface RateLimitConfig {
  /** Tokens added per second. */
  readonly rate: number;
  /** Bucket size. */
  readonly burst: number;
}

export interface GatewayConfig {
  /** A separate gateway listener; undefined: tool servers are served on server.listen only. */
  readonly listen: ListenAddress | undefined;
  readonly tls: TlsFiles | undefined;
  /** An HTTPS listener asking for X.509-SVIDs (certificate-bound tokens). */
  readonly mtls: { readonly listen: ListenAddress; readonly tls: TlsFiles } | undefined;
  readonly limits: {
    readonly maxBodyBytes: number;
    readonly maxBatch: number;
    readonly maxDepth: number;
    /** Milliseconds. */
    readonly requestTimeout: number;
    /** Milliseconds. */
    readonly upstreamTimeout: number;
    readonly maxListBytes: number;
  };
  readonly rateLimits: {
    readonly store: 'memory' | 'redis';
    readonly redisUrl: Secret<string> | undefined;
    readonly maxBuckets: number;
    readonly agent: RateLimitConfig | undefined;
    readonly principal: RateLimitConfig | undefined;
    readonly tool: RateLimitConfig | undefined;
  };
  readonly txnToken: { readonly enabled: boolean; readonly ttlSeconds: number };
  readonly toolServers: readonly ToolServerConfig[];
}

export type UpstreamCredentialConfig =
  | { readonly type: 'none' }
  | { readonly type: 'obo_token'; readonly audience: string; readonly header: string; readonly prefix: string }
  | { readonly type: 'secret'; readonly secret: string; readonly owner: 'principal' | 'server'; readonly header: string; readonly prefix: string };

export interface HttpRouteConfig {
  readonly method: string;
  /** Template under the tool server's path, e.g. `/repos/{owner}/{repo}/issues`. */
  readonly path: string;
  readonly scopes: readonly string[];
}

export interface ToolServerConfig {
  readonly name: string;
  /** Where the gateway serves it, e.g. `/mcp/issues` (no trailing slash). */
  readonly path: string;
  readonly type: 'mcp' | 'mcp_stdio' | 'http';
  /** mcp: the MCP endpoint; http: the base URL. */
  readonly url: string | undefined;
  /** mcp_stdio: program and arguments, environment, working directory. */
  readonly command: readonly string[] | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
  /** The OAuth resource tokens must be for; undefined: `<issuer><path>`, resolved at start. */
  readonly resource: string | undefined;
  /** At least one of these is needed; undefined: the resource's scopes. */
  readonly scopes: readonly string[] | undefined;
  readonly toolScopes: Readonly<Record<string, readonly string[]>>;
  readonly routes: readonly HttpRouteConfig[];
  readonly credential: UpstreamCredentialConfig;
  /** Milliseconds. */
  readonly timeout: number;
}
