/**
 * Cedar's WebAssembly engine (`@cedar-policy/cedar-wasm`, its Node.js build), loaded once. Everything
 * that talks to Cedar goes through here, so the rest of the policy engine works with plain data.
 */
import { createRequire } from 'node:module';
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';

export type { AuthorizationAnswer, DetailedError, EntityJson, PolicyJson, ValidationAnswer } from '@cedar-policy/cedar-wasm/nodejs';

const require = createRequire(import.meta.url);

/** The Cedar engine's functions. */
export const cedar: typeof CedarWasm = require('@cedar-policy/cedar-wasm/nodejs') as typeof CedarWasm;
