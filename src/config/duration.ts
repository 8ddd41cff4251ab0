/**
 * Durations as operators write them: `500ms`, `90s`, `5m`, `1h30m`, `7d`, or a whole number of seconds.
 *
 * @example
 *   parseDurationMs('1h30m') // 5_400_000
 *   parseDurationMs(90)      // 90_000
 *   parseDurationMs('1.5h')  // undefined
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Longer than any sane lifetime, and far inside Number.MAX_SAFE_INTEGER milliseconds. */
export const MAX_DURATION_MS = 100 * 365 * 86_400_000;

export const DURATION_HINT = 'a duration such as 500ms, 90s, 5m, 1h30m or 7d, or a whole number of seconds';

/** Milliseconds, or undefined when `value` is not a duration or is out of range (0 < d <= 100 years). */
export function parseDurationMs(value: string | number): number | undefined {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0 || value * 1000 > MAX_DURATION_MS) return undefined;
    return value * 1000;
  }
  let total = 0;
  let i = 0;
  if (value.length === 0) return undefined;
  while (i < value.length) {
    const digitsStart = i;
    while (i < value.length && isDigit(value.charCodeAt(i))) i++;
    if (i === digitsStart) return undefined;
    const amount = Number(value.slice(digitsStart, i));
    // `ms` before `m`: the longest unit that matches wins.
    const unit = value.startsWith('ms', i) ? 'ms' : value.charAt(i);
    const scale = UNIT_MS[unit];
    if (scale === undefined) return undefined;
    i += unit.length;
    total += amount * scale;
    if (total > MAX_DURATION_MS) return undefined;
  }
  return total > 0 ? total : undefined;
}

/** Seconds (possibly fractional, e.g. 0.5 for `500ms`), or undefined as for parseDurationMs. */
export function parseDurationSeconds(value: string | number): number | undefined {
  const ms = parseDurationMs(value);
  return ms === undefined ? undefined : ms / 1000;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
