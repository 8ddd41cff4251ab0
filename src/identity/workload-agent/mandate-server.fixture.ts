/**
 * TEST FIXTURE, not product code: a small real HTTP server speaking the Mandate identity API contract
 * (POST /v1/attest, POST /v1/svid/x509, POST /v1/svid/jwt, GET /v1/bundles) with a real CA, so the
 * agent-side client and the agent can be tested over real HTTP before and apart from the real server.
 * It checks SVID-PoP strictly (chain, signature, typ, htm, htu, bh, lifetime, jti replay), so a
 * client that gets the proof wrong fails here too.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { MandateError, isMandateError } from '../../errors.ts';
import { generateRootCa } from '../ca/generate.ts';
import { signingCa, type SigningCa } from '../ca/authority-key.ts';
import { parseSpiffeBundle } from '../bundle/parse.ts';
import { toSpiffeBundleJson } from '../bundle/serialize.ts';
import { TrustBundleSet } from '../bundle/set.ts';
import type { Bundle } from '../bundle/bundle.ts';
import { issueJwtSvid } from '../jwt-svid/issue.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe-id/parse.ts';
import { issueX509Svid } from '../x509-svid/issue.ts';
import { verifyX509Svid } from '../x509-svid/verify.ts';
import { certificatesToPem } from '../x509/pem.ts';

export interface MandateServerFixtureOptions {
  trustDomain?: string;
  spiffeId?: string;
  joinToken?: string;
  svidTtlSeconds?: number;
  refreshHintSeconds?: number;
}

interface TrustDomainKeys {
  ca: SigningCa;
  bundle: Bundle;
}

async function trustDomainKeys(name: string, refreshHint: number | undefined): Promise<TrustDomainKeys & { jwt: { kid: string; privateKey: CryptoKey } }> {
  const root = await generateRootCa({ trustDomain: name, keyType: 'ec-p256', ttlSeconds: 3600 });
  const ca = await signingCa(`${name}-root`, root.certificate, [], [root.certificate], root.privateKey);
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `${name}-jwt`;
  const doc = {
    keys: [
      { ...root.certificate.publicKey.export({ format: 'jwk' }), use: 'x509-svid', x5c: [root.certificate.raw.toString('base64')] },
      { ...(await exportJWK(publicKey)), kid, use: 'jwt-svid' },
    ],
    ...(refreshHint !== undefined ? { spiffe_refresh_hint: refreshHint } : {}),
  };
  return { ca, bundle: parseSpiffeBundle(doc, name), jwt: { kid, privateKey } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class MandateServerFixture {
  readonly trustDomain: string;
  readonly spiffeId: SpiffeId;
  readonly joinToken: string;
  svidTtlSeconds: number;
  /** Renewal requests to refuse with 503 before serving again. */
  failRenewals = 0;
  /** Whether the federated trust domain `partner.example` is part of the bundles served. */
  federated = true;
  readonly calls = { attest: 0, renew: 0, renewRefused: 0, jwt: 0, bundles: 0 };
  /** Every request body received, to check that no private key is ever sent. */
  readonly bodies: string[] = [];
  url = '';
  own!: Awaited<ReturnType<typeof trustDomainKeys>>;
  partner!: TrustDomainKeys;
  readonly #server: Server;
  readonly #seenJti = new Set<string>();
  #joinTokenUsed = false;

  private constructor(opts: MandateServerFixtureOptions) {
    this.trustDomain = opts.trustDomain ?? 'example.org';
    this.spiffeId = parseSpiffeId(opts.spiffeId ?? `spiffe://${this.trustDomain}/agent/triage-bot`);
    this.joinToken = opts.joinToken ?? 'join-token-1';
    this.svidTtlSeconds = opts.svidTtlSeconds ?? 600;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(opts: MandateServerFixtureOptions = {}): Promise<MandateServerFixture> {
    const fixture = new MandateServerFixture(opts);
    fixture.own = await trustDomainKeys(fixture.trustDomain, opts.refreshHintSeconds);
    fixture.partner = await trustDomainKeys('partner.example', undefined);
    await new Promise<void>((resolve) => fixture.#server.listen(0, '127.0.0.1', resolve));
    fixture.url = `http://127.0.0.1:${(fixture.#server.address() as AddressInfo).port}`;
    return fixture;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #federatedBundles(): Record<string, unknown> {
    return this.federated ? { 'partner.example': toSpiffeBundleJson(this.partner.bundle) } : {};
  }

  async #issue(csr: string, spiffeId: SpiffeId): Promise<unknown> {
    const svid = await issueX509Svid(this.own.ca, { csr, spiffeId, ttlSeconds: this.svidTtlSeconds });
    return {
      spiffe_id: spiffeId.toString(),
      x509_svid: certificatesToPem(svid.chain),
      expires_at: svid.notAfter.toISOString(),
      bundle: toSpiffeBundleJson(this.own.bundle),
      federated_bundles: this.#federatedBundles(),
    };
  }

  /** Checks `Authorization: SVID-PoP <jws>` against the body and path; returns the caller's SPIFFE ID. */
  async #verifyPop(req: IncomingMessage, body: Buffer, path: string): Promise<SpiffeId> {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('SVID-PoP ')) throw new MandateError('ERR_UNAUTHENTICATED', 'SVID-PoP authorization is required');
    const jws = auth.slice('SVID-PoP '.length);
    const header = decodeProtectedHeader(jws);
    if (header.typ !== 'svid-pop+jwt') throw new MandateError('ERR_UNAUTHENTICATED', 'typ is not svid-pop+jwt');
    if (!Array.isArray(header.x5c) || header.x5c.length === 0) throw new MandateError('ERR_UNAUTHENTICATED', 'x5c is missing');
    const chain = header.x5c.map((b64) => new X509Certificate(Buffer.from(b64, 'base64')));
    const bundles = new TrustBundleSet();
    bundles.set(this.own.bundle);
    const { spiffeId } = verifyX509Svid(chain, bundles);
    const { payload } = await jwtVerify(jws, (chain[0] as X509Certificate).publicKey, { typ: 'svid-pop+jwt', maxTokenAge: 60, algorithms: ['ES256', 'ES384', 'ES512', 'RS256', 'EdDSA'] });
    if (payload.htm !== 'POST' || payload.htu !== path) throw new MandateError('ERR_UNAUTHENTICATED', 'htm/htu do not match the request');
    if (payload.bh !== createHash('sha256').update(body).digest('base64url')) throw new MandateError('ERR_UNAUTHENTICATED', 'bh does not match the body');
    if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number' || payload.exp - payload.iat > 60) throw new MandateError('ERR_UNAUTHENTICATED', 'lifetime too long');
    if (typeof payload.jti !== 'string' || this.#seenJti.has(payload.jti)) throw new MandateError('ERR_UNAUTHENTICATED', 'jti replayed');
    this.#seenJti.add(payload.jti);
    return spiffeId;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '';
    try {
      const body = await readBody(req);
      this.bodies.push(body.toString('utf8'));
      const doc = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
      if (req.method === 'POST' && path === '/v1/attest') {
        this.calls.attest++;
        const attestation = doc.attestation as { type?: string; token?: string } | undefined;
        if (attestation?.type !== 'join_token' || attestation.token !== this.joinToken) throw new MandateError('ERR_JOIN_TOKEN_INVALID', 'join token is not valid');
        if (this.#joinTokenUsed) throw new MandateError('ERR_JOIN_TOKEN_USED', 'join token was already used');
        this.#joinTokenUsed = true;
        return send(res, 200, await this.#issue(doc.csr as string, this.spiffeId));
      }
      if (req.method === 'POST' && path === '/v1/svid/x509') {
        const caller = await this.#verifyPop(req, body, path);
        if (this.failRenewals > 0) {
          this.failRenewals--;
          this.calls.renewRefused++;
          throw new MandateError('ERR_CA_UNAVAILABLE', 'the CA is unavailable (fixture)');
        }
        this.calls.renew++;
        return send(res, 200, await this.#issue(doc.csr as string, caller));
      }
      if (req.method === 'POST' && path === '/v1/svid/jwt') {
        const caller = await this.#verifyPop(req, body, path);
        this.calls.jwt++;
        const jwt = await issueJwtSvid({ spiffeId: caller.toString(), audience: doc.audience as string[], ttlSeconds: 300, key: { kid: this.own.jwt.kid, alg: 'ES256', privateKey: this.own.jwt.privateKey } });
        return send(res, 200, { spiffe_id: caller.toString(), token: jwt.token, expires_at: jwt.expiresAt.toISOString() });
      }
      if (req.method === 'GET' && path === '/v1/bundles') {
        this.calls.bundles++;
        return send(res, 200, { trust_domain: this.trustDomain, bundles: { [this.trustDomain]: toSpiffeBundleJson(this.own.bundle), ...this.#federatedBundles() } });
      }
      throw new MandateError('ERR_NOT_FOUND', `no route ${req.method} ${path}`);
    } catch (err) {
      if (isMandateError(err)) return send(res, err.status, err.toJSON());
      return send(res, 401, { error: 'ERR_UNAUTHENTICATED', message: (err as Error).message });
    }
  }
}
