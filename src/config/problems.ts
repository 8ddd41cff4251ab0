/**
 * What is wrong with a configuration file, one problem per line, in the form editors and CI logs
 * understand: `<file>:<line>: <key.path>: <what is wrong>`.
 *
 * @example
 *   try { loadConfigFile('demo.yaml') } catch (err) {
 *     if (err instanceof ConfigError) console.error(err.message);
 *     // demo.yaml:3: server.lisen: unknown key (did you mean "listen"?)
 *   }
 */
import { MandateError } from '../errors.ts';

export interface ConfigProblem {
  /** Dotted key path with list indexes, e.g. `federation.trust_domains[1].bundle_url`; '' for the file. */
  keyPath: string;
  message: string;
  /** 1-based line in the file, when the problem has a place in it. */
  line?: number;
  /** 1-based column, given for YAML syntax errors. */
  column?: number;
}

/** A configuration that must not be started. Carries every problem found, not just the first. */
export class ConfigError extends MandateError {
  /** The configuration file (as given to the loader). */
  readonly file: string;
  /** Key path of the first problem; '' when it concerns the whole file. */
  readonly keyPath: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    super('ERR_CONFIG_INVALID', problems.map((p) => formatProblem(file, p)).join('\n'));
    this.file = file;
    this.problems = problems;
    this.keyPath = problems[0]?.keyPath ?? '';
  }
}

export function formatProblem(file: string, problem: ConfigProblem): string {
  let where = file;
  if (problem.line !== undefined) where += `:${problem.line}`;
  if (problem.line !== undefined && problem.column !== undefined) where += `:${problem.column}`;
  return problem.keyPath === '' ? `${where}: ${problem.message}` : `${where}: ${problem.keyPath}: ${problem.message}`;
}

/** `['federation', 'trust_domains', 1, 'bundle_url']` -> `federation.trust_domains[1].bundle_url`. */
export function formatKeyPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** Problems sorted by line (those without one last), keeping the order of equals. */
export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i)
    .map(({ p }) => p);
}
