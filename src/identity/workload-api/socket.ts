/**
 * The Unix socket of the Workload Endpoint. Who can open the socket is who gets the SVID and its key,
 * so it is created owner-only (0600) and never replaces anything but a dead socket.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { MandateError, messageOf } from '../../errors.ts';

export const SOCKET_MODE = 0o600;
const PROBE_TIMEOUT_MS = 1000;

/** True when some process accepts connections on the socket. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (listening: boolean): void => {
      socket.destroy();
      resolve(listening);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    // No answer either way: assume someone owns it rather than pull the socket from under them.
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(true));
  });
}

/**
 * Makes `path` free for a new socket: nothing there, or a stale socket (no process listening), which
 * is removed. Anything else is refused.
 *
 * @throws MandateError ERR_CONFIG_INVALID when the path exists and is not a socket;
 *   ERR_CONFLICT when another process is serving on it.
 * @example await prepareSocketPath('/run/mandate/agent.sock');
 */
export async function prepareSocketPath(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new MandateError('ERR_CONFIG_INVALID', `socket path ${path} cannot be inspected: ${messageOf(err)}`);
  }
  if (!stat.isSocket()) throw new MandateError('ERR_CONFIG_INVALID', `socket path ${path} exists and is not a socket; refusing to replace it`);
  if (await isListening(path)) throw new MandateError('ERR_CONFLICT', `socket path ${path} is in use by another process`);
  await unlink(path);
}

/**
 * Runs `bind` with a umask that makes new sockets owner-only, then sets mode 0600 explicitly (the
 * umask closes the window between creation and chmod; chmod covers runtimes where umask cannot be
 * changed, such as worker threads).
 *
 * @example await bindOwnerOnly(socketPath, () => bindGrpc(server, socketPath));
 */
export async function bindOwnerOnly<T>(path: string, bind: () => Promise<T>): Promise<T> {
  let previous: number | undefined;
  try {
    previous = process.umask(0o177);
  } catch {
    previous = undefined;
  }
  let result: T;
  try {
    result = await bind();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  await chmod(path, SOCKET_MODE);
  return result;
}

/** Removes the socket file if it is still there (grpc-js does not always unlink it on shutdown). */
export async function removeSocket(path: string): Promise<void> {
  try {
    const stat = await lstat(path);
    if (stat.isSocket()) await unlink(path);
  } catch {
    // already gone
  }
}
