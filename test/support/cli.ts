/**
 * Runs the real `mandate` program as a child process against a test server. Asynchronous on purpose:
 * the server answers from the test's own process, which must keep running meanwhile.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { TestMandate } from './mandate.ts';

const BIN = join(process.cwd(), 'bin/mandate.js');

export interface CliRun { status: number | null; stdout: string; stderr: string }

/** What a child process printed, and its exit status, once it has closed. */
export function outputOf(child: ChildProcess): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Where the program talks to: a test Mandate, or any admin API with its token. */
export type CliTarget = Pick<TestMandate, 'url' | 'adminToken'>;

/** A runner bound to a server (MANDATE_SERVER and MANDATE_ADMIN_TOKEN set from it). */
export function cliFor(server: () => CliTarget): { run(args: string[], input?: string): Promise<CliRun>; ok(args: string[], input?: string): Promise<string> } {
  const run = (args: string[], input = ''): Promise<CliRun> => {
    const m = server();
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MANDATE_SERVER: m.url, MANDATE_ADMIN_TOKEN: m.adminToken ?? '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const output = outputOf(child);
    child.stdin.end(input);
    return output;
  };
  const ok = async (args: string[], input = ''): Promise<string> => {
    const res = await run(args, input);
    assert.equal(res.status, 0, `mandate ${args.join(' ')} failed: ${res.stderr}`);
    return res.stdout;
  };
  return { run, ok };
}
