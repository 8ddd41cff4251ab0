/**
 * `GET /metrics`: the process's Prometheus metrics in the text format. Unauthenticated, as scrapers
 * expect: the metrics hold operational numbers only (label values are route patterns, codes and
 * outcomes, never identities), see docs/observability.md.
 */
import { collectProcessMetrics, METRICS_CONTENT_TYPE, metricsText } from '../../observability/metrics.ts';
import { sendText } from '../http/context.ts';
import type { Router } from '../http/router.ts';

export function metricsRoutes(router: Router, opts: { enabled: boolean }): void {
  if (!opts.enabled) return;
  collectProcessMetrics();
  router.on('GET', '/metrics', async (ctx) => sendText(ctx.res, 200, await metricsText(), METRICS_CONTENT_TYPE));
}
