/**
 * The audit log's checkpoint-signing key: one Ed25519 C2SP note key per deployment, named after the
 * log's origin, kept with the other signing keys in the store (sealed with the KEK) so every replica
 * signs with the same key. Created on the first start; its verifier key is what auditors pin.
 */
import { randomUUID } from 'node:crypto';
import type { KeyEncryptionKey } from '../identity/keys/kek.ts';
import type { SigningKeyRecord, Store } from '../store/store.ts';
import { generateNoteKey, parseSignerKey, type NoteSigner } from './note.ts';

const KIND = 'audit';
/** The key does not expire: checkpoints stay verifiable as long as the log is kept. */
const NO_EXPIRY = new Date('9999-12-31T00:00:00Z');

export interface AuditSigningKey {
  signer: NoteSigner;
  /** `<name>+<key id>+<base64 public key>`, for `mandate audit verify --key`. */
  verifierKey: string;
}

/** The oldest active key wins, so two replicas that created one at the same moment agree. */
function current(records: SigningKeyRecord[]): SigningKeyRecord | undefined {
  return records
    .filter((r) => r.state === 'active')
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1))[0];
}

/** Loads the deployment's audit signing key, creating it (named `origin`) on first use. */
export async function loadAuditSigningKey(store: Store, kek: KeyEncryptionKey, origin: string): Promise<AuditSigningKey> {
  let record = current(await store.listSigningKeys(KIND));
  if (!record) {
    const { signerKey, verifierKey } = generateNoteKey(origin);
    const id = `audit-${randomUUID()}`;
    const now = new Date();
    await store.putSigningKey({
      id, kind: KIND, state: 'active', publicData: verifierKey,
      privateKeyEnc: kek.seal(id, Buffer.from(signerKey, 'utf8')),
      trustAnchors: '', notAfter: NO_EXPIRY, createdAt: now, publishUntil: null,
    });
    record = current(await store.listSigningKeys(KIND));
    if (!record) throw new Error('the audit signing key just stored cannot be read back');
  }
  return { signer: parseSignerKey(kek.open(record.id, record.privateKeyEnc).toString('utf8')), verifierKey: record.publicData };
}
