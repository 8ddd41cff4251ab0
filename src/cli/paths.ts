import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MandateConfig } from '../config/types.ts';
import { MandateError } from '../errors.ts';

/** --config, else $MANDATE_CONFIG, else ./mandate.yaml. */
export function resolveConfigPath(flag: string | undefined): string {
  const path = flag ?? process.env.MANDATE_CONFIG ?? 'mandate.yaml';
  if (!existsSync(path)) {
    throw new MandateError('ERR_CONFIG_INVALID', `configuration file ${resolve(path)} does not exist (pass --config FILE or set MANDATE_CONFIG; config/example.yaml documents every key)`);
  }
  return path;
}

/** --data-dir, else $MANDATE_HOME, else the configuration's data_dir (default ./.mandate). */
export function resolveDataDir(flag: string | undefined, config: MandateConfig): string {
  return resolve(flag ?? process.env.MANDATE_HOME ?? config.dataDir);
}
