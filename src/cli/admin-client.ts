/** The CLI's HTTP client for the admin API. Errors carry the server's code and message. */
import { MandateError, type ErrorCode } from '../errors.ts';

export interface ClientOptions {
  server: string;
  adminToken?: string;
}

export class AdminClient {
  constructor(private readonly opts: ClientOptions) {}

  async request<T = unknown>(method: string, path: string, body?: unknown, { admin = true, accept = 'json' }: { admin?: boolean; accept?: 'json' | 'text' } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (admin) {
      if (!this.opts.adminToken) {
        throw new MandateError('ERR_UNAUTHENTICATED', 'no admin token: set MANDATE_ADMIN_TOKEN (printed once when `mandate up` first started) or pass --admin-token');
      }
      headers.authorization = `Bearer ${this.opts.adminToken}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(new URL(path, this.opts.server), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new MandateError('ERR_UNREACHABLE', `cannot reach Mandate at ${this.opts.server}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: { error?: string; message?: string } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch { /* not JSON: report the status */ }
      const err = new MandateError((parsed.error as ErrorCode) ?? 'ERR_INTERNAL', parsed.message ?? `HTTP ${res.status}`);
      throw err;
    }
    return (accept === 'text' ? text : JSON.parse(text)) as T;
  }
}
