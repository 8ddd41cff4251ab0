/**
 * Collects semantic problems while the validated configuration is normalised, so one run reports
 * everything wrong at once. Each helper returns a usable placeholder on failure; the result is
 * thrown away when any problem was recorded.
 *
 * @example
 *   const check = new Checker(yaml, '/etc/mandate', process.env);
 *   const ttl = check.seconds(['identity', 'ca', 'ttl'], '8760h');
 *   if (check.problems.length > 0) throw new ConfigError(file, check.problems);
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { DURATION_HINT, parseDurationMs } from './duration.ts';
import { checkFetchUrl } from './address.ts';
import { formatKeyPath, type ConfigProblem } from './problems.ts';
import type { KeyPath, YamlSource } from './yaml-source.ts';

export class Checker {
  readonly problems: ConfigProblem[] = [];

  constructor(
    private readonly yaml: YamlSource,
    /** Directory relative file paths resolve against. */
    readonly baseDir: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Records a problem at `path`, pointing at the value's line (or the key's, with `which: 'key'`). */
  add(path: KeyPath, message: string, which: 'key' | 'value' = 'value'): void {
    this.problems.push({ keyPath: formatKeyPath(path), message, line: this.yaml.positionOf(path, which)?.line });
  }

  /** Records a problem with a value that came from the environment: it has no line in the file. */
  addFromEnv(path: KeyPath, variable: string, message: string): void {
    this.problems.push({ keyPath: formatKeyPath(path), message: `(from environment variable ${variable}) ${message}` });
  }

  /** A non-empty environment variable, or undefined (an empty one counts as unset). */
  envVar(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  milliseconds(path: KeyPath, value: string | number): number {
    const ms = parseDurationMs(value);
    if (ms === undefined) {
      this.add(path, `must be ${DURATION_HINT}, greater than zero and at most 100 years (got ${JSON.stringify(value)})`);
      return Number.NaN;
    }
    return ms;
  }

  seconds(path: KeyPath, value: string | number): number {
    return this.milliseconds(path, value) / 1000;
  }

  /** Absolute path of a file that must exist and be readable now. */
  inputFile(path: KeyPath, value: string): string {
    const absolute = this.resolvePath(value);
    try {
      if (!statSync(absolute).isFile()) {
        this.add(path, `is not a regular file: ${absolute}`);
        return absolute;
      }
      accessSync(absolute, constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.add(path, code === 'ENOENT' ? `file not found: ${absolute}` : `cannot read ${absolute} (${code ?? 'error'})`);
    }
    return absolute;
  }

  /** Absolute path of a directory that must exist and be readable now. */
  inputDirectory(path: KeyPath, value: string): string {
    const absolute = this.resolvePath(value);
    try {
      if (!statSync(absolute).isDirectory()) {
        this.add(path, `is not a directory: ${absolute}`);
        return absolute;
      }
      accessSync(absolute, constants.R_OK | constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.add(path, code === 'ENOENT' ? `directory not found: ${absolute}` : `cannot read ${absolute} (${code ?? 'error'})`);
    }
    return absolute;
  }

  /** Contents of an input file, or undefined when it cannot be read (the problem is recorded). */
  readInputFile(path: KeyPath, value: string): string | undefined {
    const before = this.problems.length;
    const absolute = this.inputFile(path, value);
    if (this.problems.length > before) return undefined;
    try {
      return readFileSync(absolute, 'utf8');
    } catch (err) {
      this.add(path, `cannot read ${absolute} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  }

  resolvePath(value: string, base: string = this.baseDir): string {
    return isAbsolute(value) ? value : resolve(base, value);
  }

  /** A URL Mandate fetches from: https, or http on loopback. */
  fetchUrl(path: KeyPath, value: string): string {
    const problem = checkFetchUrl(value);
    // The URL is not echoed: it may carry credentials, and the line number already points at it.
    if (problem !== undefined) this.add(path, problem);
    return value;
  }
}
