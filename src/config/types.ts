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
  /** Absolute path of the database file. */
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
