/**
 * The agent's X.509-SVID as a TLS client identity: an undici Dispatcher that presents the current
 * SVID (chain and key) on every connection it opens. When the SVID rotates, update() moves new
 * requests to fresh connections with the new certificate and closes the old ones once their requests
 * are done — a certificate-bound token issued after the rotation is bound to the new certificate, so
 * a pooled connection still showing the old one must not carry it.
 *
 * The dispatcher object itself stays the same across rotations: hand it to a fetch once.
 *
 * @example
 *   const dispatcher = new SvidDispatcher(await svids.x509(), caPem);
 *   await undiciFetch('https://tools.example/mcp', { dispatcher });
 */
import { createHash } from 'node:crypto';
import { Agent, Dispatcher } from 'undici';
import type { X509SvidPem } from './svid-source.ts';

function materialOf(svid: X509SvidPem): string {
  return createHash('sha256').update(svid.certPem).update('\0').update(svid.keyPem).digest('base64url');
}

export class SvidDispatcher extends Dispatcher {
  readonly #ca: string | undefined;
  #current: Agent;
  #material: string;
  /** Agents of earlier SVIDs, closing once their requests are done. */
  readonly #retiring = new Map<Agent, Promise<void>>();

  /** @param ca PEM trust anchors for the servers' certificates; default the system roots. */
  constructor(svid: X509SvidPem, ca?: string) {
    super();
    this.#ca = ca;
    this.#material = materialOf(svid);
    this.#current = this.#agentFor(svid);
  }

  #agentFor(svid: X509SvidPem): Agent {
    return new Agent({ connect: { cert: svid.certPem, key: svid.keyPem, ...(this.#ca !== undefined && { ca: this.#ca }) } });
  }

  /** Presents `svid` from now on; returns whether it differs from the SVID presented so far. */
  update(svid: X509SvidPem): boolean {
    const material = materialOf(svid);
    if (material === this.#material) return false;
    const old = this.#current;
    this.#current = this.#agentFor(svid);
    this.#material = material;
    this.#retiring.set(old, old.close().finally(() => this.#retiring.delete(old)));
    return true;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#current.dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = Promise.all([this.#current.close(), ...this.#retiring.values()]).then(() => undefined);
    if (!callback) return done;
    void done.then(callback, callback);
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : errOrCallback ?? null;
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = Promise.all([this.#current, ...this.#retiring.keys()].map((agent) => agent.destroy(err))).then(() => undefined);
    if (!cb) return done;
    void done.then(cb, cb);
  }
}
