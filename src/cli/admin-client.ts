/** The CLI's client for the admin API: the SDK's JSON client plus the admin bearer token. */
import { MandateError } from '../errors.ts';
import { JsonHttp, type JsonRequest } from '../sdk/identity/http.ts';

export interface ClientOptions {
  server: string;
  adminToken?: string;
}

export class AdminClient {
  readonly #server: string;
  readonly #adminToken: string | undefined;

  constructor(opts: ClientOptions) {
    this.#server = opts.server;
    this.#adminToken = opts.adminToken || undefined;
  }

  /** One request on its own connection pool, closed afterwards so the CLI exits at once. */
  async request<T = unknown>(method: JsonRequest['method'], path: string, body?: unknown, { admin = true, accept = 'json' }: { admin?: boolean; accept?: 'json' | 'text' } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (admin) {
      if (!this.#adminToken) {
        throw new MandateError('ERR_UNAUTHENTICATED', 'no admin token: set MANDATE_ADMIN_TOKEN (printed once when `mandate up` first started) or pass --admin-token');
      }
      headers.authorization = `Bearer ${this.#adminToken}`;
    }
    const http = new JsonHttp({ serverUrl: this.#server, timeoutMs: 30_000 });
    try {
      return (await http.send({ method, path, headers, accept, body: body === undefined ? undefined : JSON.stringify(body) })) as T;
    } finally {
      await http.close();
    }
  }
}
