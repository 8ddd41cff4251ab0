/**
 * A browser made of `fetch` and a cookie jar, for Mandate's own pages (sign-in, consent, account):
 * no redirects followed, Mandate's Origin on form POSTs, and only Mandate's origin visited. The demo
 * agent drives a person's consent and revocation with it; the scenario tests drive the pages with it
 * too, optionally with a public URL that differs from the listening address (as behind a proxy).
 */
import { MandateError } from '../errors.ts';

/** What the browser got back for one request. */
export interface BrowserReply {
  status: number;
  headers: Headers;
  text: string;
  /** The Location header resolved against the URL the browser asked for. */
  location: URL | undefined;
}

export class PageBrowser {
  /** Where the browser believes Mandate lives: sent as Origin, and what relative redirects resolve against. */
  readonly publicOrigin: string;
  readonly #serverUrl: string;
  readonly #jar = new Map<string, string>();

  /** `serverUrl`: the address Mandate actually listens on, when it differs from the public one. */
  constructor(publicOrigin: string, serverUrl: string = publicOrigin) {
    this.publicOrigin = new URL(publicOrigin).origin;
    this.#serverUrl = new URL(serverUrl).origin;
  }

  /** True when the jar holds a cookie of that name. */
  has(cookie: string): boolean {
    return this.#jar.has(cookie);
  }

  get(url: string | URL): Promise<BrowserReply> {
    return this.#send(url, { method: 'GET' });
  }

  /** A form POST as Mandate's own pages send it: urlencoded, with the Origin of Mandate's pages. */
  post(url: string | URL, form: Record<string, string>, origin = this.publicOrigin): Promise<BrowserReply> {
    return this.#send(url, { method: 'POST', body: new URLSearchParams(form).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', origin } });
  }

  async #send(url: string | URL, init: { method: string; body?: string; headers?: Record<string, string> }): Promise<BrowserReply> {
    const addressed = new URL(url, this.publicOrigin);
    if (addressed.origin !== this.publicOrigin) {
      throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `this browser only visits Mandate (${this.publicOrigin}), not ${addressed.origin}`);
    }
    const target = new URL(addressed.pathname + addressed.search, this.#serverUrl);
    const headers: Record<string, string> = { ...init.headers };
    if (this.#jar.size > 0) headers.cookie = [...this.#jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(target, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/;\s*max-age=0\b/i.test(line) || value === '') this.#jar.delete(name);
      else this.#jar.set(name, value);
    }
    const location = res.headers.get('location');
    return { status: res.status, headers: res.headers, text: await res.text(), location: location === null ? undefined : new URL(location, addressed) };
  }
}

/** The value of a hidden form field, HTML entities undone. */
export function hiddenField(html: string, name: string): string {
  const found = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!found) throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `the page has no hidden field "${name}"`);
  return (found[1] as string).replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
