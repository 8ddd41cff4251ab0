/**
 * The HTML a principal sees: sign-in, consent, their mandates, their vault secrets, and errors. Plain server-rendered
 * pages with no script; every value is escaped. Security headers (CSP with `frame-ancestors 'none'`,
 * no referrer, no caching) are set by the routes.
 */
import type { MandateRecord } from '../../store/store.ts';

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}code{background:#f3f4f6;padding:.1rem .3rem;border-radius:3px;word-break:break-all}
li{margin:.3rem 0}form.inline{display:inline}button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}
.error{color:#a40e26}.muted{color:#57606a}label{display:block;margin:.6rem 0}input{font-size:1rem;padding:.3rem;width:16rem}`;

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} · Mandate</title><style>${STYLE}</style></head><body>${body}</body></html>`;
}

function hidden(fields: Record<string, string>): string {
  return Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`).join('');
}

export function signInPage(opts: { request: string; csrf: string; error?: string; providers: Array<{ id: string; name: string }>; directory: boolean }): string {
  const providers = opts.providers.map((p) =>
    `<li><a href="/signin/${encodeURIComponent(p.id)}?request=${encodeURIComponent(opts.request)}">Sign in with ${escapeHtml(p.name)}</a></li>`).join('');
  return page('Sign in', `<h1>Sign in</h1>
${opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : ''}
${opts.directory ? `<form method="post" action="/signin">${hidden({ request: opts.request, csrf: opts.csrf })}
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>` : ''}
${providers ? `<ul>${providers}</ul>` : ''}`);
}

export interface ConsentView {
  request: string;
  csrf: string;
  principalName: string;
  clientName: string;
  agent: string;
  scopes: Array<{ scope: string; description: string }>;
  resources: Array<{ uri: string; name: string }>;
  durationText: string;
  maxDepth: number;
}

export function consentPage(v: ConsentView): string {
  const scopes = v.scopes.map((s) => `<li><strong>${escapeHtml(s.description)}</strong> <span class="muted">(<code>${escapeHtml(s.scope)}</code>)</span></li>`).join('');
  const resources = v.resources.map((r) => `<li>${escapeHtml(r.name)} <span class="muted"><code>${escapeHtml(r.uri)}</code></span></li>`).join('');
  return page('Grant a mandate', `<h1>Grant a mandate</h1>
<p>Signed in as <strong>${escapeHtml(v.principalName)}</strong>. <em>${escapeHtml(v.clientName)}</em> asks you to let this agent act for you:</p>
<p>Agent: <code id="agent">${escapeHtml(v.agent)}</code></p>
<p>It may:</p><ul id="scopes">${scopes}</ul>
<p>At:</p><ul id="resources">${resources}</ul>
<p>For <strong id="duration">${escapeHtml(v.durationText)}</strong>${v.maxDepth > 0 ? `, and hand this on to sub-agents up to ${v.maxDepth} level(s) deep` : ', without handing it on to other agents'}. You can revoke it at any time under <a href="/account/mandates">your mandates</a>.</p>
<form method="post" action="/consent">${hidden({ request: v.request, csrf: v.csrf })}
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></form>`);
}

export function mandatesPage(opts: { principalName: string; csrf: string; mandates: MandateRecord[]; describe: (scope: string) => string; now: Date }): string {
  const rows = opts.mandates.map((m) => {
    const live = m.status === 'active' && m.expiresAt > opts.now;
    const state = m.status === 'revoked' ? 'revoked' : live ? `until ${m.expiresAt.toISOString()}` : 'expired';
    return `<li data-mandate="${escapeHtml(m.id)}"><code>${escapeHtml(m.agent)}</code>: ${m.scopes.map((s) => escapeHtml(opts.describe(s))).join('; ')}
at ${m.resources.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')} <span class="muted">(${escapeHtml(state)})</span>
${live ? `<form class="inline" method="post" action="/account/mandates/${encodeURIComponent(m.id)}/revoke">${hidden({ csrf: opts.csrf })}<button type="submit">Revoke</button></form>` : ''}</li>`;
  }).join('');
  return page('Your mandates', `<h1>Your mandates</h1><p>Signed in as <strong>${escapeHtml(opts.principalName)}</strong>.</p>
${rows ? `<ul id="mandates">${rows}</ul>` : '<p id="mandates">You have granted no mandates.</p>'}
<form method="post" action="/signout">${hidden({ csrf: opts.csrf })}<button type="submit">Sign out</button></form>`);
}

/** One secret a principal may keep, and whether it is set (never its value). */
export interface SecretView {
  name: string;
  /** The tool servers that send it upstream. */
  servers: string[];
  set?: { fingerprint: string; updatedAt: Date };
}

/**
 * The principal's vault secrets for the tool servers that take one: each one's state and a form to
 * set or replace it (a password field: the value is never shown again) and to delete it.
 */
export function secretsPage(opts: { principalName: string; csrf: string; secrets: SecretView[] }): string {
  const rows = opts.secrets.map((s) => {
    const action = `/account/secrets/${encodeURIComponent(s.name)}`;
    const state = s.set
      ? `set, fingerprint <code>${escapeHtml(s.set.fingerprint)}</code>, updated ${escapeHtml(s.set.updatedAt.toISOString())}`
      : 'not set';
    return `<li data-secret="${escapeHtml(s.name)}"><strong>${escapeHtml(s.name)}</strong> <span class="muted">for ${s.servers.map((n) => `<code>${escapeHtml(n)}</code>`).join(', ')} (${state})</span>
<form method="post" action="${escapeHtml(action)}">${hidden({ csrf: opts.csrf })}<label>New value <input name="value" type="password" autocomplete="off" maxlength="16384" required></label>
<button type="submit">${s.set ? 'Replace' : 'Save'}</button></form>
${s.set ? `<form class="inline" method="post" action="${escapeHtml(`${action}/delete`)}">${hidden({ csrf: opts.csrf })}<button type="submit">Delete</button></form>` : ''}</li>`;
  }).join('');
  return page('Your secrets', `<h1>Your secrets</h1><p>Signed in as <strong>${escapeHtml(opts.principalName)}</strong>.
Mandate sends these to the tool servers named when your agents call them; agents never see them, and neither can you once saved.</p>
${rows ? `<ul id="secrets">${rows}</ul>` : '<p id="secrets">No tool server here takes a secret of yours.</p>'}
<p><a href="/account/mandates">Your mandates</a></p>`);
}

export function errorPage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1><p class="error" role="alert">${escapeHtml(message)}</p>`);
}

/** "8 hours", "30 days", "90 minutes". */
export function describeDuration(seconds: number): string {
  const units: Array<[number, string]> = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, name] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}
