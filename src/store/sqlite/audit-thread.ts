/**
 * The audit writer thread: a worker thread with its own connection to the SQLite file, which commits
 * the audit log's batches and writes their search entries. better-sqlite3 is synchronous, so on the
 * main thread every commit (an fsync) and every indexing batch would stop the event loop that serves
 * requests; here they only stop this thread, and while one batch commits the next one fills up.
 *
 * The protocol is one request at a time per batch, answered after the commit: an append resolves
 * only once its records are durable, as the Store interface promises. If the thread dies, what was
 * in flight is rejected with ERR_STORE (its batch may or may not have committed: the audit log finds
 * out on its next append, which conflicts and catches up) and the next append starts a new thread.
 *
 * @example
 *   const thread = await AuditWriterThread.start('/var/lib/mandate/mandate.db');
 *   await thread.append(records); // durable
 *   await thread.close();
 */
import { Worker } from 'node:worker_threads';
import { MandateError, type ErrorCode } from '../../errors.ts';
import type { AuditRecord } from '../store.ts';

/** What the main thread asks of the writer thread. */
export type AuditThreadRequest = { id: number; op: 'append'; records: readonly AuditRecord[] } | { id: number; op: 'close' };
/** What the writer thread answers: `ready` once its connection is open, then one reply per request. */
export type AuditThreadReply =
  | { ready: true }
  | { ready: false; error: { code: ErrorCode; message: string } }
  | { id: number; ok: true }
  | { id: number; ok: false; error: { code: ErrorCode; message: string } };

/** The thread's entry module. */
const ENTRY = new URL('./audit-thread-boot.mjs', import.meta.url);

interface Waiting {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriterThread {
  readonly #path: string;
  readonly #entry: URL;
  #worker: Promise<Worker> | undefined;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #closed = false;

  private constructor(path: string, entry: URL) {
    this.#path = path;
    this.#entry = entry;
  }

  /**
   * Starts the thread and waits until its connection to `path` is open. `entry` replaces the
   * thread's entry module (tests run one that dies on cue).
   */
  static async start(path: string, opts: { entry?: URL } = {}): Promise<AuditWriterThread> {
    const thread = new AuditWriterThread(path, opts.entry ?? ENTRY);
    await thread.#ready();
    return thread;
  }

  /** Commits the records in one transaction on the thread; resolves once they are durable. */
  append(records: readonly AuditRecord[]): Promise<void> {
    if (this.#closed) return Promise.reject(new MandateError('ERR_STORE', 'sqlite store: the audit writer is closed'));
    return this.#ready().then((worker) => this.#ask(worker, { op: 'append', records }));
  }

  /** Waits for the batches in flight, then closes the thread's connection and ends the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = await this.#worker?.catch(() => undefined);
    if (!worker) return;
    await this.#ask(worker, { op: 'close' }).catch(() => undefined);
    await worker.terminate();
  }

  #ready(): Promise<Worker> {
    this.#worker ??= this.#spawn();
    return this.#worker;
  }

  #spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      const worker = new Worker(this.#entry, { workerData: { path: this.#path } });
      let started = false;
      worker.on('message', (reply: AuditThreadReply) => {
        if ('ready' in reply) {
          started = reply.ready;
          if (reply.ready) resolve(worker);
          else reject(new MandateError(reply.error.code, reply.error.message));
          return;
        }
        const waiting = this.#waiting.get(reply.id);
        this.#waiting.delete(reply.id);
        if (reply.ok) waiting?.resolve();
        else waiting?.reject(new MandateError(reply.error.code, reply.error.message));
      });
      worker.on('error', (err) => this.#stopped(worker, `failed: ${err.message}`));
      worker.on('exit', (code) => {
        if (!started) reject(new MandateError('ERR_STORE', `sqlite store: the audit writer thread did not start (exit code ${code})`));
        this.#stopped(worker, `exited with code ${code}`);
      });
    }).catch((err: unknown) => {
      this.#worker = undefined;
      throw err;
    });
  }

  #ask(worker: Worker, request: { op: 'append'; records: readonly AuditRecord[] } | { op: 'close' }): Promise<void> {
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...request } satisfies AuditThreadRequest);
    });
  }

  /** The thread is gone: everything in flight fails, and the next append starts a new thread. */
  #stopped(worker: Worker, how: string): void {
    void this.#worker?.then((current) => {
      if (current === worker) this.#worker = undefined;
    }, () => undefined);
    if (this.#closed && this.#waiting.size === 0) return;
    const error = new MandateError('ERR_STORE', `sqlite store: the audit writer thread ${how}; the batch in flight may not be durable`);
    for (const w of this.#waiting.values()) w.reject(error);
    this.#waiting.clear();
  }
}
