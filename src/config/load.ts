/**
 * Loading the one configuration file of a deployment. Everything is checked before anything starts:
 * YAML syntax, then the shape against config/mandate.schema.json (which also supplies defaults), then
 * what a schema cannot say. Every problem found is reported at once, one line each, as
 * `<file>:<line>: <key.path>: <what is wrong>`; secret values never appear in them.
 *
 * Only secrets may come from the environment: MANDATE_KEK and MANDATE_STORE_URL override keys.kek and
 * store.url.
 *
 * @example
 *   const config = loadConfigFile('config/demo.yaml');
 *   config.server.listen // { host: '127.0.0.1', port: 8420 }
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Checker } from './checker.ts';
import { normalise } from './normalise.ts';
import { ConfigError, sortProblems } from './problems.ts';
import type { RawConfig } from './raw.ts';
import { validateShape } from './schema.ts';
import type { MandateConfig } from './types.ts';
import { readYaml } from './yaml-source.ts';

export { ConfigError, type ConfigProblem } from './problems.ts';
export { ENV_KEK, ENV_STORE_URL } from './normalise.ts';

/**
 * Read, validate and normalise a configuration file. Relative paths in it resolve against its directory.
 *
 * @example
 *   try {
 *     const config = loadConfigFile('/etc/mandate/mandate.yaml');
 *   } catch (err) {
 *     if (err instanceof ConfigError) { console.error(err.message); process.exit(78); }
 *     throw err;
 *   }
 */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): MandateConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(path, [{ keyPath: '', message: `cannot read the configuration file (${code})` }]);
  }
  return parseConfig(text, path, env);
}

/**
 * Validate and normalise configuration text. `source` names it in errors and, as a path, is where
 * relative file paths resolve from (its directory; the working directory for a label like `<stdin>`).
 *
 * @example
 *   const config = parseConfig('trust_domain: example.org\n', 'inline.yaml', {});
 *   config.store // { driver: 'sqlite', path: '<cwd>/.mandate/mandate.db' }
 */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): MandateConfig {
  const { source: yaml, problems } = readYaml(text);
  if (yaml === undefined) throw new ConfigError(source, problems);
  // An empty file is an empty mapping, so the error is "trust_domain: is required".
  const data = yaml.data ?? {};
  const shapeProblems = validateShape(data, yaml);
  if (shapeProblems.length > 0) throw new ConfigError(source, sortProblems(shapeProblems));
  const check = new Checker(yaml, dirname(resolve(source)), env);
  const config = normalise(data as RawConfig, source, check);
  if (check.problems.length > 0) throw new ConfigError(source, sortProblems(check.problems));
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  // Typed arrays cannot be frozen, and Secret keeps its value private anyway.
  if (ArrayBuffer.isView(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}
