/**
 * "Did you mean" for misspelt configuration keys.
 *
 * @example
 *   closestKey('lisen', ['listen', 'public_url', 'tls']) // 'listen'
 *   closestKey('trustDomain', ['trust_domain'])         // 'trust_domain'
 *   closestKey('colour', ['listen'])                     // undefined
 */

export function closestKey(key: string, candidates: readonly string[]): string | undefined {
  const folded = fold(key);
  // camelCase or dashed spellings of a snake_case key are the commonest slip: match them first.
  const sameWord = candidates.find((c) => fold(c) === folded);
  if (sameWord !== undefined) return sameWord;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 3));
  for (const candidate of candidates) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function fold(s: string): string {
  return s.toLowerCase().replace(/[_-]/g, '');
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("lsiten"). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}
