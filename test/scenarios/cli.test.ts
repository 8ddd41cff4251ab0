/** The `mandate` program: help, and a configuration error that stops everything before it starts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const BIN = join(process.cwd(), 'bin/mandate.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });

describe('mandate CLI', () => {
  it('has help with examples for the program and each subcommand', () => {
    const top = run(['--help']);
    assert.equal(top.status, 0);
    for (const cmd of ['up', 'entry', 'token', 'svid', 'agent', 'ca', 'key', 'bundle', 'federation']) assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    const entry = run(['entry', 'create', '--help']);
    assert.match(entry.stdout, /Examples:/);
    assert.match(entry.stdout, /--spiffe-id/);
  });

  it('refuses to start with an invalid configuration, naming file, line and key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'trust_domain: example.org\nserver:\n  lisen: 127.0.0.1:9\nidentity:\n  jwt_svid:\n    algorithm: HS256\n');
    const res = run(['up', '--config', file, '--data-dir', join(dir, 'data')]);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /bad\.yaml:3: server\.lisen: unknown key \(did you mean "listen"\?\)/);
    assert.match(res.stderr, /bad\.yaml:6: identity\.jwt_svid\.algorithm: must be one of/);
    assert.equal(existsSync(join(dir, 'data')), false, 'nothing started: no data directory was created');
  });

  it('says how to get an admin token when none is set', () => {
    const res = run(['entry', 'list', '--server', 'http://127.0.0.1:9'], { MANDATE_ADMIN_TOKEN: '' });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /MANDATE_ADMIN_TOKEN/);
  });
});
