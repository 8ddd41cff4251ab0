import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sdk = resolve(here, '..');

/** Packages the agent SDK may use; everything else it needs lives under src/sdk/. */
const PACKAGES = [/^node:/, /^jose$/, /^undici$/, /^@modelcontextprotocol\/sdk(\/|$)/, /^@grpc\/grpc-js$/, /^@grpc\/proto-loader$/];

function specifiers(file: string): string[] {
  // Comments may show import lines in examples; only code counts.
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

test('the agent SDK imports only src/sdk/ modules and its allowed packages', () => {
  const files = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  assert.ok(files.includes('client.ts') && files.includes('mcp.ts') && files.includes('svid-source.ts') && files.includes('index.ts'), 'found the SDK modules');
  let local = 0;
  for (const name of files) {
    const file = join(here, name);
    for (const s of specifiers(file)) {
      if (s.startsWith('.')) {
        const target = relative(sdk, resolve(dirname(file), s));
        assert.ok(!target.startsWith('..'), `${name} imports ${s}, outside src/sdk/`);
        local += 1;
      } else {
        assert.ok(PACKAGES.some((re) => re.test(s)), `${name} imports the package ${s}`);
      }
    }
  }
  assert.ok(local > files.length, 'the check saw the local imports');
  assert.deepEqual(specifiers(join(here, 'mcp.ts')), ['@modelcontextprotocol/sdk/client/auth.js', '@modelcontextprotocol/sdk/shared/transport.js', './client.ts'], 'type-only imports count too');
});
