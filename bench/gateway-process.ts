/**
 * The process plumbing of the gateway benchmark. Every server of that benchmark (upstream, bare
 * proxy, Mandate) runs in a process of its own, so that the load generator's and the benchmark's
 * own CPU never count toward it and its memory can be read from /proc. The parent forks a child
 * script under tsx with an IPC channel; the child reports what the parent needs (its URL, ...)
 * once it is ready, answers named queries (counters, fresh credentials), and closes cleanly when
 * told to or when the parent goes away (so `--cpu-prof` profiles get written).
 */
import { fork, type ChildProcess } from 'node:child_process';

type ToParent = { type: 'ready'; info: unknown } | { type: 'answer'; id: number; value?: unknown; error?: string } | { type: 'failed'; error: string };
type ToChild = { type: 'query'; id: number; name: string } | { type: 'close' };

export interface ChildServer<Info> {
  pid: number;
  info: Info;
  /** Asks the child one of its named queries. */
  query<T>(name: string): Promise<T>;
  /** Tells the child to close and waits until it has exited. */
  close(): Promise<void>;
}

/** Forks `script` (a path relative to bench/) with `args` and waits until it reports ready. */
export function startChild<Info>(script: string, args: string[], opts: { execArgv?: string[]; readyTimeoutMs?: number } = {}): Promise<ChildServer<Info>> {
  const child = fork(new URL(script, import.meta.url).pathname, args, {
    execArgv: ['--import', 'tsx', ...(opts.execArgv ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start within ${opts.readyTimeoutMs ?? 60_000} ms`));
    }, opts.readyTimeoutMs ?? 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with code ${code} before it was ready`));
      for (const p of pending.values()) p.reject(new Error(`${script} exited`));
    });
    child.on('message', (msg: ToParent) => {
      if (msg.type === 'failed') return reject(new Error(`${script}: ${msg.error}`));
      if (msg.type === 'answer') {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error !== undefined) p?.reject(new Error(`${script}: ${msg.error}`));
        else p?.resolve(msg.value);
        return;
      }
      clearTimeout(timer);
      resolve({
        pid: child.pid as number,
        info: msg.info as Info,
        query: <T>(name: string) => new Promise<T>((res, rej) => {
          const id = nextId++;
          pending.set(id, { resolve: res as (v: unknown) => void, reject: rej });
          send(child, { type: 'query', id, name });
        }),
        close: async () => {
          if (child.exitCode === null && child.signalCode === null) send(child, { type: 'close' });
          const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(killer);
        },
      });
    });
  });
}

function send(child: ChildProcess, msg: ToChild): void {
  if (child.connected) child.send(msg);
}

/**
 * The child's side: runs `start`, reports its `info`, answers `queries`, and on `close` (or when the
 * parent disconnects) runs `close` and exits with code 0.
 */
export async function serveChild<Info>(
  start: () => Promise<{ info: Info; close: () => Promise<void>; queries?: Record<string, () => unknown> }>,
): Promise<void> {
  let started: Awaited<ReturnType<typeof start>>;
  try {
    started = await start();
  } catch (err) {
    process.send?.({ type: 'failed', error: (err as Error).message } satisfies ToParent);
    process.exit(1);
  }
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await started.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('disconnect', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
  process.on('message', (msg: ToChild) => {
    if (msg.type === 'close') return void shutdown();
    const q = started.queries?.[msg.name];
    if (!q) return process.send?.({ type: 'answer', id: msg.id, error: `no query ${msg.name}` } satisfies ToParent);
    Promise.resolve().then(q).then(
      (value) => process.send?.({ type: 'answer', id: msg.id, value } satisfies ToParent),
      (err: Error) => process.send?.({ type: 'answer', id: msg.id, error: err.message } satisfies ToParent),
    );
  });
  process.send?.({ type: 'ready', info: started.info } satisfies ToParent);
}
