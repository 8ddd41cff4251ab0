#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with Node's built-in test runner and the tsx loader.
// Node 20's runner does not expand globs, so the file list is gathered here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

function collect(dir, out) {
  let names;
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
let files = [...collect('src', []), ...collect('test', [])].sort();
if (filters.length > 0) files = files.filter((f) => filters.some((p) => f.includes(p)));
if (!process.env.DATABASE_URL) console.log('# note: DATABASE_URL is unset: PostgreSQL store tests will be skipped');

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
