import { MandateError } from '../errors.ts';
import type { VaultOwner, VaultSecretFilter } from './store.ts';

/**
 * How both stores lay a vault secret's owner into the `vault_secrets` key columns (owner_kind,
 * owner_issuer, owner) and read it back, and the owner filter of a listing as SQL conditions, so the
 * two stores key and order secrets identically. A server's owner_issuer is '' (a principal's never is:
 * the table's CHECK holds both to it).
 *
 * @example
 *   ownerColumns({ kind: 'principal', issuer: 'https://login.example.com', subject: 'u1' })
 *   // -> ['principal', 'https://login.example.com', 'u1']
 */

export type OwnerColumns = [kind: VaultOwner['kind'], issuer: string, owner: string];

export function ownerColumns(owner: VaultOwner): OwnerColumns {
  if (owner.kind === 'server') {
    if (typeof owner.server !== 'string' || owner.server === '') throw new MandateError('ERR_INTERNAL', 'vault owner server must be a non-empty string');
    return ['server', '', owner.server];
  }
  if (owner.kind === 'principal') {
    if (typeof owner.issuer !== 'string' || owner.issuer === '' || typeof owner.subject !== 'string' || owner.subject === '') {
      throw new MandateError('ERR_INTERNAL', 'vault owner principal needs a non-empty issuer and subject');
    }
    return ['principal', owner.issuer, owner.subject];
  }
  throw new MandateError('ERR_INTERNAL', `vault owner kind ${JSON.stringify((owner as { kind: unknown }).kind)} is unknown`);
}

export function ownerOf(kind: string, issuer: string, owner: string): VaultOwner {
  return kind === 'server' ? { kind: 'server', server: owner } : { kind: 'principal', issuer, subject: owner };
}

/**
 * The filter as conditions on the key columns, in key order so the primary key serves every form;
 * `placeholder(n)` writes the dialect's n-th parameter (from 1).
 */
export function vaultFilter(filter: VaultSecretFilter, placeholder: (n: number) => string): { where: string; values: string[] } {
  const match = (columns: string[], values: string[]) => ({
    where: ` WHERE ${columns.map((c, i) => `${c} = ${placeholder(i + 1)}`).join(' AND ')}`,
    values,
  });
  if ('owner' in filter && filter.owner !== undefined) return match(['owner_kind', 'owner_issuer', 'owner'], ownerColumns(filter.owner));
  if ('kind' in filter && filter.kind !== undefined) {
    if (filter.kind !== 'server' && filter.kind !== 'principal') throw new MandateError('ERR_INTERNAL', `vault owner kind ${JSON.stringify(filter.kind)} is unknown`);
    return match(['owner_kind'], [filter.kind]);
  }
  return { where: '', values: [] };
}

/** The columns of a listing: everything but the sealed value. */
export const VAULT_INFO_COLUMNS = 'owner_kind, owner_issuer, owner, name, fingerprint, created_at, updated_at';
export const VAULT_ORDER = 'ORDER BY owner_kind, owner_issuer, owner, name';
