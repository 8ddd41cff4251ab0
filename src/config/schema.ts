/**
 * Structural validation against the published JSON Schema (config/mandate.schema.json), which is also
 * the single source of defaults: validation fills them in (`useDefaults`). Ajv's errors are rewritten
 * into problems an operator can act on, with the key path and line.
 *
 * @example
 *   const problems = validateShape(data, source); // data now carries every default
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { DURATION_HINT } from './duration.ts';
import { formatKeyPath, type ConfigProblem } from './problems.ts';
import { closestKey } from './suggest.ts';
import type { KeyPath, YamlSource } from './yaml-source.ts';

/** Location of the published schema. */
export const CONFIG_SCHEMA_URL = new URL('../../config/mandate.schema.json', import.meta.url);

let schema: Record<string, unknown> | undefined;
let validator: ValidateFunction | undefined;

/** The published configuration schema, parsed. */
export function configSchema(): Record<string, unknown> {
  schema ??= JSON.parse(readFileSync(CONFIG_SCHEMA_URL, 'utf8')) as Record<string, unknown>;
  return schema;
}

function compiledValidator(): ValidateFunction {
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true });
    validator = ajv.compile(configSchema());
  }
  return validator;
}

/**
 * Validates `data` in place (filling defaults) and returns its problems; empty when the shape is right.
 */
export function validateShape(data: unknown, source: YamlSource): ConfigProblem[] {
  const validate = compiledValidator();
  if (validate(data)) return [];
  return (validate.errors ?? []).map((err) => toProblem(err, data, source));
}

function toProblem(err: ErrorObject, data: unknown, source: YamlSource): ConfigProblem {
  const path = pointerToPath(err.instancePath, data);
  const secret = (err.parentSchema as { writeOnly?: boolean } | undefined)?.writeOnly === true;
  const got = (value: unknown): string => (secret ? '' : ` (got ${describe(value)})`);
  const place = (p: KeyPath, which: 'key' | 'value') => source.positionOf(p, which)?.line;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String((err.params as { additionalProperty: string }).additionalProperty);
      const known = Object.keys((err.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const suggestion = closestKey(key, known);
      const full = [...path, key];
      return {
        keyPath: formatKeyPath(full),
        message: suggestion === undefined ? 'unknown key' : `unknown key (did you mean "${suggestion}"?)`,
        line: place(full, 'key'),
      };
    }
    case 'required': {
      const missing = String((err.params as { missingProperty: string }).missingProperty);
      return { keyPath: formatKeyPath([...path, missing]), message: 'is required', line: place(path, 'key') };
    }
    default:
      return { keyPath: formatKeyPath(path), message: valueMessage(err, got), line: place(path, 'value') };
  }
}

function valueMessage(err: ErrorObject, got: (value: unknown) => string): string {
  const params = err.params as Record<string, unknown>;
  if (err.schemaPath.startsWith('#/$defs/duration/')) return `must be ${DURATION_HINT}${got(err.data)}`;
  switch (err.keyword) {
    case 'type': {
      const types = ([] as string[]).concat(params.type as string | string[]);
      return `must be ${types.map(typeName).join(' or ')}${got(err.data)}`;
    }
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}${got(err.data)}`;
    case 'minLength':
      return 'must not be empty';
    case 'pattern':
      return `must match ${String(params.pattern)}${got(err.data)}`;
    case 'minimum':
      return `must be at least ${String(params.limit)}${got(err.data)}`;
    case 'maximum':
      return `must be at most ${String(params.limit)}${got(err.data)}`;
    case 'exclusiveMinimum':
      return `must be greater than ${String(params.limit)}${got(err.data)}`;
    case 'exclusiveMaximum':
      return `must be less than ${String(params.limit)}${got(err.data)}`;
    case 'uniqueItems':
      return `must not repeat an item (items ${String(params.j)} and ${String(params.i)} are the same)`;
    default:
      return err.message ?? `fails ${err.keyword}`;
  }
}

function typeName(type: string): string {
  switch (type) {
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    case 'integer':
      return 'a whole number';
    case 'boolean':
      return 'true or false';
    default:
      return `a ${type}`;
  }
}

/** A short, safe description of a value for "got ..." (strings quoted and cut short). */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  return 'a mapping';
}

/** JSON pointer -> key path, using the data to tell list indexes from keys that look like numbers. */
function pointerToPath(pointer: string, data: unknown): Array<string | number> {
  if (pointer === '') return [];
  const path: Array<string | number> = [];
  let current: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = current[index];
    } else {
      path.push(segment);
      current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}
