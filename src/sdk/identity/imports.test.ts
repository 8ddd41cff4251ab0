import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = resolve(here, '../..');

/** What the agent SDK may reach: errors and pure SPIFFE protocol code, never server code. */
const ALLOWED = [/^errors\.ts$/, /^sdk\/identity\//, /^identity\/(spiffe-id|bundle|x509|x509-svid|jwt-svid)\//];

function localImports(file: string): string[] {
  // Comments may show import lines in examples; only code counts.
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers = [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\s+'([^']+)'/g)].map((m) => m[1] ?? m[2] ?? '');
  return specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s));
}

test('the identity SDK reaches only errors.ts and SPIFFE protocol modules', () => {
  const roots = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => join(here, f));
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = relative(src, file);
    assert.ok(ALLOWED.some((re) => re.test(rel)), `the SDK imports ${rel}`);
    queue.push(...localImports(file));
  }
  assert.ok(seen.size > roots.length, 'the walk followed imports');
});
