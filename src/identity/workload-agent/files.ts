/**
 * The agent's identity on disk, for workloads that read files instead of calling the Workload API:
 *
 *   svid.pem            X.509-SVID chain, leaf first
 *   svid.key            its private key, PKCS#8 PEM, mode 0600
 *   bundle.pem          trust anchors of the own trust domain
 *   federated/<td>.pem  trust anchors of each federated trust domain
 *
 * Each file is replaced atomically (temp file + rename), so a reader never sees half a file. The key is
 * written before the chain: watchers usually reload on the certificate, and by then the key is new.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MandateError, messageOf } from '../../errors.ts';
import { certificatesToPem, encodePem } from '../x509/pem.ts';
import type { WorkloadIdentity } from '../workload-api/source.ts';

export const SVID_FILE = 'svid.pem';
export const KEY_FILE = 'svid.key';
export const BUNDLE_FILE = 'bundle.pem';
export const FEDERATED_DIR = 'federated';

const KEY_MODE = 0o600;
const PUBLIC_MODE = 0o644;

/**
 * Writes `data` to `path` atomically with `mode`. The temp file is created exclusively beside the
 * target (same file system, so rename is atomic) and removed if anything fails.
 *
 * @example await writeFileAtomic('/var/run/mandate/svid.key', pem, 0o600);
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(temp, data, { mode, flag: 'wx' });
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw new MandateError('ERR_CONFIG_INVALID', `cannot write ${path}: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * Writes the identity's files under `outDir` and removes federated bundle files of trust domains the
 * identity no longer trusts (a bundle absent from an update is withdrawn, Workload API §4.4).
 *
 * @example await writeIdentityFiles('/var/run/mandate', agent.current()!);
 */
export async function writeIdentityFiles(outDir: string, id: WorkloadIdentity): Promise<void> {
  const federatedDir = join(outDir, FEDERATED_DIR);
  await mkdir(federatedDir, { recursive: true });
  const own = id.bundles.get(id.trustDomain);
  if (!own) throw new MandateError('ERR_BUNDLE_UNKNOWN_TRUST_DOMAIN', `no bundle for the agent's own trust domain ${id.trustDomain}`);
  await writeFileAtomic(join(outDir, BUNDLE_FILE), certificatesToPem(own.x509Authorities), PUBLIC_MODE);

  const keep = new Set<string>();
  for (const bundle of id.bundles.all()) {
    if (bundle.trustDomain === id.trustDomain) continue;
    // Trust domain names are [a-z0-9._-] (SPIFFE-ID §2.1): safe as file names, no separators.
    const name = `${bundle.trustDomain}.pem`;
    keep.add(name);
    await writeFileAtomic(join(federatedDir, name), certificatesToPem(bundle.x509Authorities), PUBLIC_MODE);
  }
  for (const name of await readdir(federatedDir)) {
    if (name.endsWith('.pem') && !keep.has(name)) await unlink(join(federatedDir, name)).catch(() => undefined);
  }

  await writeFileAtomic(join(outDir, KEY_FILE), encodePem('PRIVATE KEY', id.privateKey.export({ type: 'pkcs8', format: 'der' })), KEY_MODE);
  await writeFileAtomic(join(outDir, SVID_FILE), certificatesToPem(id.chain), PUBLIC_MODE);
}
