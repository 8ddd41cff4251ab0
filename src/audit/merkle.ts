/**
 * RFC 9162 (Certificate Transparency v2) Merkle tree hashing, the basis of the tamper-evident audit
 * log: one leaf per audit event. Pure functions, no storage.
 *
 * - `leafHash` / `nodeHash`: the domain-separated hashes of §2.1.1.
 * - `rootOf`: the Merkle Tree Hash (MTH) of a list of leaf hashes, and `MerkleTreeBuilder`, which keeps
 *   only the O(log n) frontier so an appender can compute the new root per batch cheaply, and can
 *   resume from a stored tree by reading the `frontierRanges`.
 * - Inclusion (§2.1.3) and consistency (§2.1.4) proofs. A proof is a list of MTHs of leaf ranges, so
 *   the generators first say which ranges they need (`inclusionProofRanges`, `consistencyProofRanges`,
 *   at most one per tree level) and a store answers them however it can — a sync `HashRange` function
 *   for `inclusionProof` / `consistencyProof`, or one batched (possibly async) query of its own.
 * - `verifyInclusion` / `verifyConsistency`: the §2.1.3.2 and §2.1.4.2 algorithms. They return false,
 *   never throw, on any malformed input.
 *
 * Tree sizes and indices are JS numbers and must be safe integers (< 2^53); all index arithmetic is
 * done with division, not 32-bit bitwise operators.
 */
import { hash } from 'node:crypto';
import { MandateError } from '../errors.ts';

/** Bytes in a SHA-256 hash, the only hash size this tree uses. */
export const HASH_SIZE = 32;

/** Longest proof a verifier accepts: one hash per level of a tree of up to 2^64 leaves. */
export const MAX_PROOF_LENGTH = 64;

/** MTH of the empty tree: SHA-256 of the empty string. */
const EMPTY_ROOT: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

/** The MTH of the leaves with indices in [start, end); 0 <= start < end <= tree size. */
export type HashRange = (start: number, end: number) => Buffer;

/** A half-open range [start, end) of leaf indices whose MTH is one element of a proof. */
export type LeafRange = readonly [start: number, end: number];

/** SHA-256(0x00 || data): the hash of one leaf (§2.1.1). */
export function leafHash(data: Uint8Array): Buffer {
  const input = Buffer.allocUnsafe(1 + data.length);
  input[0] = 0x00;
  input.set(data, 1);
  return hash('sha256', input, 'buffer');
}

/** SHA-256(0x01 || left || right): the hash of an interior node (§2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  const input = Buffer.allocUnsafe(1 + left.length + right.length);
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return hash('sha256', input, 'buffer');
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

function isTreeSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function requireHash(value: unknown, what: string): asserts value is Uint8Array {
  if (!isHash(value)) throw new MandateError('ERR_BAD_REQUEST', `${what} must be a ${HASH_SIZE}-byte hash`);
}

function requireTreeSize(value: unknown, what: string): asserts value is number {
  if (!isTreeSize(value)) throw new MandateError('ERR_BAD_REQUEST', `${what} must be a non-negative safe integer`);
}

/** Largest power of two strictly less than n (n >= 2): the split point k of §2.1.1. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && splitPoint(n + 1) === n;
}

/**
 * The frontier of a tree of `size` leaves: the perfect subtrees, largest first, whose MTHs fold
 * (right to left) into the root — one per set bit of `size`.
 */
export function frontierRanges(size: number): LeafRange[] {
  requireTreeSize(size, 'tree size');
  const ranges: LeafRange[] = [];
  let start = 0;
  for (let width = splitPoint(size + 1); width >= 1; width /= 2) {
    if (size - start >= width) {
      ranges.push([start, start + width]);
      start += width;
    }
  }
  return ranges;
}

/**
 * Appends leaf hashes one at a time and produces the MTH of everything appended so far, keeping only
 * the frontier (one perfect-subtree root per set bit of `size`, so O(log n) memory).
 */
export class MerkleTreeBuilder {
  #size = 0;
  /** Roots of the frontier's perfect subtrees, largest (leftmost) first. */
  readonly #frontier: Buffer[] = [];

  /**
   * A builder positioned after the first `size` leaves of a stored tree, from the MTHs of the ranges
   * `frontierRanges(size)` names, in that order — O(log n) perfect subtrees, not the leaves.
   */
  static fromFrontier(size: number, frontier: readonly Uint8Array[]): MerkleTreeBuilder {
    const ranges = frontierRanges(size);
    if (!Array.isArray(frontier) || frontier.length !== ranges.length) {
      throw new MandateError('ERR_BAD_REQUEST', `a tree of size ${size} has a frontier of ${ranges.length} hashes`);
    }
    const builder = new MerkleTreeBuilder();
    for (let i = 0; i < ranges.length; i++) {
      const node = frontier[i];
      requireHash(node, `frontier hash ${i}`);
      builder.#frontier.push(Buffer.from(node));
    }
    builder.#size = size;
    return builder;
  }

  /** Number of leaves appended. */
  get size(): number {
    return this.#size;
  }

  append(leaf: Uint8Array): void {
    requireHash(leaf, 'leaf hash');
    let node: Buffer = Buffer.from(leaf);
    // Each trailing 1-bit of the old size is a perfect subtree of the same width as `node`: merge them.
    for (let n = this.#size; n % 2 === 1; n = (n - 1) / 2) {
      node = nodeHash(this.#frontier.pop() as Buffer, node);
    }
    this.#frontier.push(node);
    this.#size += 1;
  }

  /** MTH of the leaves appended so far; SHA-256("") for none. */
  root(): Buffer {
    return foldFrontier(this.#frontier);
  }
}

/** Combines perfect-subtree roots (largest first) right to left into the MTH. */
function foldFrontier(frontier: readonly Buffer[]): Buffer {
  let root = frontier.at(-1);
  if (root === undefined) return Buffer.from(EMPTY_ROOT);
  for (let i = frontier.length - 2; i >= 0; i--) root = nodeHash(frontier[i] as Buffer, root);
  return root;
}

/** MTH of leafHashes[start, end): iterative, O(end - start) time, O(log n) memory. */
function rootOfRange(leafHashes: readonly Buffer[], start: number, end: number): Buffer {
  const frontier: Buffer[] = [];
  for (let i = start; i < end; i++) {
    const leaf = leafHashes[i];
    requireHash(leaf, `leaf hash ${i}`);
    let node: Buffer = leaf;
    for (let n = i - start; n % 2 === 1; n = (n - 1) / 2) node = nodeHash(frontier.pop() as Buffer, node);
    frontier.push(node);
  }
  return foldFrontier(frontier);
}

/** The Merkle Tree Hash (§2.1.1) of the given leaf hashes; SHA-256("") for an empty list. */
export function rootOf(leafHashes: readonly Buffer[]): Buffer {
  return rootOfRange(leafHashes, 0, leafHashes.length);
}

/** A `HashRange` over leaf hashes held in memory (each call costs O(end - start)). */
export function memoryHashRange(leafHashes: readonly Buffer[]): HashRange {
  return (start, end) => {
    if (!isTreeSize(start) || !isTreeSize(end) || start >= end || end > leafHashes.length) {
      throw new MandateError('ERR_BAD_REQUEST', `leaf range [${start}, ${end}) is outside a tree of ${leafHashes.length}`);
    }
    return rootOfRange(leafHashes, start, end);
  };
}

/**
 * The leaf ranges whose MTHs make up the inclusion proof of leaf `index` in a tree of `size` leaves,
 * in proof order (bottom up): PATH(index, D[size]) of §2.1.3.1.
 */
export function inclusionProofRanges(index: number, size: number): LeafRange[] {
  requireTreeSize(size, 'tree size');
  requireTreeSize(index, 'leaf index');
  if (index >= size) throw new MandateError('ERR_BAD_REQUEST', `leaf index ${index} is not in a tree of size ${size}`);
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      topDown.push([start + k, end]);
      end = start + k;
    } else {
      topDown.push([start, start + k]);
      start += k;
    }
  }
  return topDown.reverse();
}

/**
 * The leaf ranges whose MTHs make up the consistency proof between the trees of `oldSize` and
 * `newSize` leaves, in proof order: PROOF(oldSize, D[newSize]) of §2.1.4.1. Empty when the sizes are
 * equal. The RFC defines no proof from an empty tree, so `oldSize` must be at least 1.
 */
export function consistencyProofRanges(oldSize: number, newSize: number): LeafRange[] {
  requireTreeSize(oldSize, 'old tree size');
  requireTreeSize(newSize, 'new tree size');
  if (oldSize === 0 || oldSize > newSize) {
    throw new MandateError('ERR_BAD_REQUEST', `no consistency proof from tree size ${oldSize} to ${newSize}`);
  }
  // SUBPROOF(m, D[start:end], complete), unrolled: m is oldSize relative to start.
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = newSize;
  let complete = true;
  while (oldSize - start < end - start) {
    const k = splitPoint(end - start);
    if (oldSize - start <= k) {
      topDown.push([start + k, end]);
      end = start + k;
    } else {
      topDown.push([start, start + k]);
      start += k;
      complete = false;
    }
  }
  if (!complete) topDown.push([start, end]);
  return topDown.reverse();
}

function fetchRanges(ranges: readonly LeafRange[], hashRange: HashRange): Buffer[] {
  return ranges.map(([start, end]) => {
    const node = hashRange(start, end);
    requireHash(node, `hashRange(${start}, ${end})`);
    return Buffer.from(node);
  });
}

/** Inclusion proof of leaf `index` in the tree of `size` leaves, with O(log n) calls to `hashRange`. */
export function inclusionProof(index: number, size: number, hashRange: HashRange): Buffer[] {
  return fetchRanges(inclusionProofRanges(index, size), hashRange);
}

/** Consistency proof from `oldSize` to `newSize`, with O(log n) calls to `hashRange`. */
export function consistencyProof(oldSize: number, newSize: number, hashRange: HashRange): Buffer[] {
  return fetchRanges(consistencyProofRanges(oldSize, newSize), hashRange);
}

function isProof(proof: unknown): proof is readonly Uint8Array[] {
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_LENGTH) return false;
  // An index loop, not every(): every() skips the holes of a sparse array.
  for (let i = 0; i < proof.length; i++) if (!isHash(proof[i])) return false;
  return true;
}

function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Right-shifts fn and sn together until fn is odd or 0 (§2.1.3.2 step 4.b.ii, §2.1.4.2 step 6.b.iii). */
function shiftWhileEven(fn: number, sn: number): [number, number] {
  while (fn % 2 === 0 && fn !== 0) {
    fn /= 2;
    sn = Math.floor(sn / 2);
  }
  return [fn, sn];
}

/**
 * §2.1.3.2: does `proof` show that `leaf` is leaf `index` of the tree of `size` leaves whose MTH is
 * `root`? False (never an exception) on any malformed input.
 *
 * The tree size is authenticated by the signed tree head that carries `root`, not by the proof: a
 * proof also verifies under another size whose path to `index` has the same shape (e.g. index 0 in
 * sizes 6 and 7). Verify against a root whose size you trust.
 */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(leaf) || !isHash(root) || !isTreeSize(index) || !isTreeSize(size) || !isProof(proof)) return false;
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      [fn, sn] = shiftWhileEven(fn, sn);
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/**
 * §2.1.4.2: does `proof` show that the tree of `oldSize` leaves with MTH `oldRoot` is a prefix of the
 * tree of `newSize` leaves with MTH `newRoot`? Equal sizes verify only with an empty proof and equal
 * roots. False (never an exception) on any malformed input, including `oldSize` 0, for which the RFC
 * defines no proof. As with inclusion, the sizes are authenticated by the signed tree heads.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isTreeSize(oldSize) || !isTreeSize(newSize) || !isHash(oldRoot) || !isHash(newRoot) || !isProof(proof)) {
    return false;
  }
  if (oldSize === 0 || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && equalHashes(oldRoot, newRoot);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      [fn, sn] = shiftWhileEven(fn, sn);
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(oldRoot) && sr.equals(newRoot);
}
