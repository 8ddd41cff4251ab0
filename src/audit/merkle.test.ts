import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { isMandateError } from '../errors.ts';
import {
  HASH_SIZE,
  MAX_PROOF_LENGTH,
  MerkleTreeBuilder,
  consistencyProof,
  consistencyProofRanges,
  frontierRanges,
  inclusionProof,
  inclusionProofRanges,
  leafHash,
  memoryHashRange,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/**
 * Reference data from the Certificate Transparency reference implementation, as published in
 * transparency-dev/merkle proof/verify_test.go (the `leaves`, `roots`, `inclusionProofs` and
 * `consistencyProofs` tables; there `leaf` is 1-based, here `index` is 0-based).
 */
const KAT_LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);
const KAT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const KAT_EMPTY_ROOT = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const KAT_INCLUSION = [
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  { index: 0, size: 1, proof: [] },
];
const KAT_CONSISTENCY = [
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    oldSize: 6,
    newSize: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

const katLeafHashes = KAT_LEAVES.map(leafHash);

/** MTH straight from the recursive definition of RFC 9162 §2.1.1, independent of merkle.ts. */
function referenceMth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return sha256(Buffer.alloc(0));
  if (leaves.length === 1) return leaves[0] as Buffer;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(Buffer.concat([Buffer.from([1]), referenceMth(leaves.slice(0, k)), referenceMth(leaves.slice(k))]));
}

/** n distinct leaf hashes (distinct so that no two subtrees share a hash by construction). */
function distinctLeaves(n: number, seed: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${seed}/${i}`)));
}

function flipBit(bytes: Uint8Array, bit: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
  return copy;
}

/** n with bit `bit` inverted, exact for safe integers (the ^ operator is 32-bit). */
function flipNumberBit(n: number, bit: number): number {
  const weight = 2 ** bit;
  return Math.floor(n / weight) % 2 === 1 ? n - weight : n + weight;
}

/**
 * The shape of an inclusion proof: for each element, whether its subtree lies left or right of the
 * leaf. A verifier sees nothing else of (index, size), so a proof verifies under a tampered
 * (index, size) exactly when the tampered pair has the same shape.
 */
function inclusionShape(index: number, size: number): string | null {
  if (index >= size) return null;
  return inclusionProofRanges(index, size)
    .map(([start]) => (start < index ? 'L' : 'R'))
    .join('');
}

/**
 * The shape of a consistency proof: 'P' when the verifier prepends the old root (old size a power of
 * two), then per element 'S' (the subtree ending at the old size), 'L' (left of it) or 'R' (right).
 */
function consistencyShape(oldSize: number, newSize: number): string | null {
  if (oldSize === 0 || oldSize > newSize) return null;
  const prepended = Number.isInteger(Math.log2(oldSize)) ? 'P' : '';
  return (
    prepended +
    consistencyProofRanges(oldSize, newSize)
      .map(([start, end]) => (end === oldSize ? 'S' : end < oldSize ? 'L' : start >= oldSize ? 'R' : '?'))
      .join('')
  );
}

test('leafHash and nodeHash domain-separate with 0x00 and 0x01 (RFC 9162 §2.1.1)', () => {
  const data = Buffer.from('event');
  assert.deepEqual(leafHash(data), sha256(Buffer.concat([Buffer.from([0]), data])));
  const [a, b] = [katLeafHashes[0] as Buffer, katLeafHashes[1] as Buffer];
  assert.deepEqual(nodeHash(a, b), sha256(Buffer.concat([Buffer.from([1]), a, b])));
  assert.notDeepEqual(nodeHash(a, b), nodeHash(b, a));
});

test('known answers: roots of the CT reference leaves for sizes 0..8', () => {
  assert.equal(rootOf([]).toString('hex'), KAT_EMPTY_ROOT);
  assert.equal(new MerkleTreeBuilder().root().toString('hex'), KAT_EMPTY_ROOT);
  const builder = new MerkleTreeBuilder();
  for (let n = 1; n <= 8; n++) {
    const prefix = katLeafHashes.slice(0, n);
    assert.equal(rootOf(prefix).toString('hex'), KAT_ROOTS[n - 1], `rootOf size ${n}`);
    assert.equal(referenceMth(prefix).toString('hex'), KAT_ROOTS[n - 1], `reference size ${n}`);
    builder.append(katLeafHashes[n - 1] as Buffer);
    assert.equal(builder.size, n);
    assert.equal(builder.root().toString('hex'), KAT_ROOTS[n - 1], `builder size ${n}`);
  }
});

test('known answers: inclusion proofs of the CT reference tree', () => {
  for (const { index, size, proof } of KAT_INCLUSION) {
    const leaves = katLeafHashes.slice(0, size);
    const generated = inclusionProof(index, size, memoryHashRange(leaves));
    assert.deepEqual(generated.map((h) => h.toString('hex')), proof, `proof ${index}/${size}`);
    const root = hex(KAT_ROOTS[size - 1] as string);
    assert.equal(verifyInclusion(leaves[index] as Buffer, index, size, proof.map(hex), root), true);
  }
});

test('known answers: consistency proofs of the CT reference tree', () => {
  for (const { oldSize, newSize, proof } of KAT_CONSISTENCY) {
    const generated = consistencyProof(oldSize, newSize, memoryHashRange(katLeafHashes.slice(0, newSize)));
    assert.deepEqual(generated.map((h) => h.toString('hex')), proof, `proof ${oldSize}->${newSize}`);
    const [oldRoot, newRoot] = [hex(KAT_ROOTS[oldSize - 1] as string), hex(KAT_ROOTS[newSize - 1] as string)];
    assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.map(hex)), true);
  }
});

test('rootOf agrees with the recursive definition for every size up to 130', () => {
  const leaves = distinctLeaves(130, 0);
  for (let n = 0; n <= leaves.length; n++) {
    assert.deepEqual(rootOf(leaves.slice(0, n)), referenceMth(leaves.slice(0, n)), `size ${n}`);
  }
});

test('property: the incremental builder has the root of rootOf after every append', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (n, seed) => {
      const leaves = distinctLeaves(n, seed);
      const builder = new MerkleTreeBuilder();
      for (let i = 0; i < n; i++) {
        builder.append(leaves[i] as Buffer);
        assert.deepEqual(builder.root(), rootOf(leaves.slice(0, i + 1)));
      }
      assert.equal(builder.size, n);
    }),
    { numRuns: 25 },
  );
});

test('property: a builder resumed from the frontier of a stored prefix continues the same tree', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.integer(), (a, b, seed) => {
      const [size, total] = a <= b ? [a, b] : [b, a];
      const leaves = distinctLeaves(total, seed);
      const hashRange = memoryHashRange(leaves.slice(0, size));
      const ranges = frontierRanges(size);
      assert.equal(ranges.length, size.toString(2).replaceAll('0', '').length);
      const builder = MerkleTreeBuilder.fromFrontier(size, ranges.map(([s, e]) => hashRange(s, e)));
      assert.deepEqual(builder.root(), rootOf(leaves.slice(0, size)));
      for (const leaf of leaves.slice(size)) builder.append(leaf);
      assert.equal(builder.size, total);
      assert.deepEqual(builder.root(), rootOf(leaves));
    }),
    { numRuns: 100 },
  );
});

test('property: every inclusion proof verifies and every single-bit tampering fails', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }).chain((size) =>
        fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }), fc.integer(), fc.nat(255), fc.nat(52)),
      ),
      ([size, index, seed, bit, numberBit]) => {
        const leaves = distinctLeaves(size, seed);
        const leaf = leaves[index] as Buffer;
        const root = rootOf(leaves);
        const proof = inclusionProof(index, size, memoryHashRange(leaves));
        assert.ok(proof.length <= Math.ceil(Math.log2(size)));
        assert.equal(verifyInclusion(leaf, index, size, proof, root), true);

        assert.equal(verifyInclusion(flipBit(leaf, bit), index, size, proof, root), false, 'leaf');
        assert.equal(verifyInclusion(leaf, index, size, proof, flipBit(root, bit)), false, 'root');
        proof.forEach((_, i) => {
          const tampered = proof.map((h, j) => (j === i ? flipBit(h, bit) : h));
          assert.equal(verifyInclusion(leaf, index, size, tampered, root), false, `proof[${i}]`);
        });
        assert.equal(verifyInclusion(leaf, index, size, [...proof, root], root), false, 'extra element');
        if (proof.length > 0) {
          assert.equal(verifyInclusion(leaf, index, size, proof.slice(1), root), false, 'dropped element');
        }
        // Index and size reach the verifier only through the shape of the path, so a tampered pair
        // verifies exactly when its shape is unchanged (always so for index 0 in sizes 6 and 7).
        const shape = inclusionShape(index, size);
        const otherIndex = flipNumberBit(index, numberBit);
        assert.equal(
          verifyInclusion(leaf, otherIndex, size, proof, root),
          inclusionShape(otherIndex, size) === shape,
          `index ${index} -> ${otherIndex}`,
        );
        assert.equal(inclusionShape(otherIndex, size) === shape, false, 'no two leaves share a path');
        const otherSize = flipNumberBit(size, numberBit);
        assert.equal(
          verifyInclusion(leaf, index, otherSize, proof, root),
          inclusionShape(index, otherSize) === shape,
          `size ${size} -> ${otherSize}`,
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('the tree size is bound by the tree head, not by an inclusion proof', () => {
  const leaves = distinctLeaves(6, 1);
  const proof = inclusionProof(0, 6, memoryHashRange(leaves));
  assert.equal(verifyInclusion(leaves[0] as Buffer, 0, 7, proof, rootOf(leaves)), true);
  assert.equal(verifyInclusion(leaves[0] as Buffer, 0, 4, proof, rootOf(leaves)), false);
});

test('property: every consistency proof verifies and every single-bit tampering fails', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 1, max: 300 }),
      fc.integer(),
      fc.nat(255),
      fc.nat(52),
      (a, b, seed, bit, numberBit) => {
        const [oldSize, newSize] = a <= b ? [a, b] : [b, a];
        const leaves = distinctLeaves(newSize, seed);
        const oldRoot = rootOf(leaves.slice(0, oldSize));
        const newRoot = rootOf(leaves);
        const proof = consistencyProof(oldSize, newSize, memoryHashRange(leaves));
        assert.ok(proof.length <= Math.ceil(Math.log2(newSize)) + 1);
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof), true);
        assert.equal(proof.length === 0, oldSize === newSize);

        assert.equal(verifyConsistency(oldSize, newSize, flipBit(oldRoot, bit), newRoot, proof), false, 'old root');
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, flipBit(newRoot, bit), proof), false, 'new root');
        proof.forEach((_, i) => {
          const tampered = proof.map((h, j) => (j === i ? flipBit(h, bit) : h));
          assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, tampered), false, `proof[${i}]`);
        });
        assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, [...proof, newRoot]), false, 'extra');
        if (proof.length > 0) {
          assert.equal(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.slice(0, -1)), false, 'dropped');
        }
        // As with inclusion, the sizes reach the verifier only through the shape of the proof.
        const shape = consistencyShape(oldSize, newSize);
        const otherOld = flipNumberBit(oldSize, numberBit);
        assert.equal(
          verifyConsistency(otherOld, newSize, oldRoot, newRoot, proof),
          consistencyShape(otherOld, newSize) === shape,
          `old size ${oldSize} -> ${otherOld} (new ${newSize})`,
        );
        const otherNew = flipNumberBit(newSize, numberBit);
        assert.equal(
          verifyConsistency(oldSize, otherNew, oldRoot, newRoot, proof),
          consistencyShape(oldSize, otherNew) === shape,
          `new size ${newSize} -> ${otherNew} (old ${oldSize})`,
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('hostile input: verifyInclusion returns false and never throws', () => {
  const leaves = distinctLeaves(5, 2);
  const root = rootOf(leaves);
  const leaf = leaves[1] as Buffer;
  const proof = inclusionProof(1, 5, memoryHashRange(leaves));
  assert.equal(verifyInclusion(leaf, 1, 5, proof, root), true);
  const sparse: Buffer[] = [];
  sparse.length = proof.length;
  const cases: [string, unknown[]][] = [
    ['size 0', [leaf, 0, 0, [], root]],
    ['index == size', [leaf, 5, 5, proof, root]],
    ['index > size', [leaf, 6, 5, proof, root]],
    ['negative index', [leaf, -1, 5, proof, root]],
    ['fractional index', [leaf, 1.5, 5, proof, root]],
    ['NaN size', [leaf, 1, Number.NaN, proof, root]],
    ['Infinity size', [leaf, 1, Number.POSITIVE_INFINITY, proof, root]],
    ['unsafe size', [leaf, 1, 2 ** 53, proof, root]],
    ['string index', [leaf, '1', 5, proof, root]],
    ['bigint size', [leaf, 1, 5n, proof, root]],
    ['31-byte leaf', [leaf.subarray(1), 1, 5, proof, root]],
    ['33-byte leaf', [Buffer.concat([leaf, Buffer.alloc(1)]), 1, 5, proof, root]],
    ['empty leaf', [Buffer.alloc(0), 1, 5, proof, root]],
    ['leaf as hex string', [leaf.toString('hex'), 1, 5, proof, root]],
    ['null leaf', [null, 1, 5, proof, root]],
    ['31-byte root', [leaf, 1, 5, proof, root.subarray(0, 31)]],
    ['root as array', [leaf, 1, 5, proof, [...root]]],
    ['undefined root', [leaf, 1, 5, proof, undefined]],
    ['proof element 31 bytes', [leaf, 1, 5, [proof[0]?.subarray(1), ...proof.slice(1)], root]],
    ['proof element 64 bytes', [leaf, 1, 5, [Buffer.concat([proof[0] as Buffer, proof[1] as Buffer]), proof[2]], root]],
    ['proof element null', [leaf, 1, 5, [null, ...proof.slice(1)], root]],
    ['proof element string', [leaf, 1, 5, ['00'.repeat(32), ...proof.slice(1)], root]],
    ['sparse proof', [leaf, 1, 5, sparse, root]],
    ['proof not an array', [leaf, 1, 5, { length: 3, 0: proof[0], 1: proof[1], 2: proof[2] }, root]],
    ['proof null', [leaf, 1, 5, null, root]],
    ['oversized proof', [leaf, 1, 5, Array.from({ length: MAX_PROOF_LENGTH + 1 }, () => root), root]],
    ['proof too long for the size', [leaf, 1, 5, [...proof, root], root]],
    ['empty proof for size 5', [leaf, 1, 5, [], root]],
    ['huge size, short proof', [leaf, 1, Number.MAX_SAFE_INTEGER, proof, root]],
    ['64 elements, huge size', [leaf, 0, Number.MAX_SAFE_INTEGER, Array.from({ length: 64 }, () => root), root]],
  ];
  for (const [name, args] of cases) {
    const verify = verifyInclusion as (...a: unknown[]) => boolean;
    assert.equal(verify(...args), false, name);
  }
  // A 1-leaf tree: the leaf hash is the root and the proof is empty.
  assert.equal(verifyInclusion(leaf, 0, 1, [], leaf), true);
  assert.equal(verifyInclusion(leaf, 0, 1, [leaf], leaf), false);
});

test('hostile input: verifyConsistency returns false and never throws', () => {
  const leaves = distinctLeaves(7, 3);
  const [oldRoot, newRoot] = [rootOf(leaves.slice(0, 3)), rootOf(leaves)];
  const proof = consistencyProof(3, 7, memoryHashRange(leaves));
  assert.equal(verifyConsistency(3, 7, oldRoot, newRoot, proof), true);
  const emptyRoot = rootOf([]);
  const cases: [string, unknown[]][] = [
    ['old size 0', [0, 7, emptyRoot, newRoot, proof]],
    ['old size 0, empty proof', [0, 7, emptyRoot, newRoot, []]],
    ['both sizes 0', [0, 0, emptyRoot, emptyRoot, []]],
    ['old size > new size', [7, 3, newRoot, oldRoot, proof]],
    ['old size > new size, empty proof', [7, 3, oldRoot, oldRoot, []]],
    ['equal sizes, different roots', [7, 7, oldRoot, newRoot, []]],
    ['equal sizes, non-empty proof', [7, 7, newRoot, newRoot, [newRoot]]],
    ['empty proof', [3, 7, oldRoot, newRoot, []]],
    ['negative size', [-3, 7, oldRoot, newRoot, proof]],
    ['fractional size', [3, 7.5, oldRoot, newRoot, proof]],
    ['NaN size', [Number.NaN, 7, oldRoot, newRoot, proof]],
    ['unsafe size', [3, 2 ** 53, oldRoot, newRoot, proof]],
    ['string size', ['3', 7, oldRoot, newRoot, proof]],
    ['31-byte old root', [3, 7, oldRoot.subarray(1), newRoot, proof]],
    ['33-byte new root', [3, 7, oldRoot, Buffer.concat([newRoot, Buffer.alloc(1)]), proof]],
    ['root as hex string', [3, 7, oldRoot.toString('hex'), newRoot, proof]],
    ['null root', [3, 7, oldRoot, null, proof]],
    ['proof element 31 bytes', [3, 7, oldRoot, newRoot, [proof[0]?.subarray(1), ...proof.slice(1)]]],
    ['proof element undefined', [3, 7, oldRoot, newRoot, [...proof.slice(0, -1), undefined]]],
    ['proof not an array', [3, 7, oldRoot, newRoot, 'proof']],
    ['oversized proof', [3, 7, oldRoot, newRoot, Array.from({ length: MAX_PROOF_LENGTH + 1 }, () => newRoot)]],
    ['proof too long', [3, 7, oldRoot, newRoot, [...proof, newRoot]]],
    ['huge new size', [3, Number.MAX_SAFE_INTEGER, oldRoot, newRoot, proof]],
    ['64 elements, huge sizes', [3, Number.MAX_SAFE_INTEGER, oldRoot, newRoot, Array.from({ length: 64 }, () => newRoot)]],
  ];
  for (const [name, args] of cases) {
    const verify = verifyConsistency as (...a: unknown[]) => boolean;
    assert.equal(verify(...args), false, name);
  }
  assert.equal(verifyConsistency(7, 7, newRoot, newRoot, []), true);
});

test('an oversized proof is rejected before any element is read', () => {
  const root = rootOf(distinctLeaves(1, 7));
  const untouchable = (length: number): Buffer[] =>
    new Proxy(Array.from({ length }, () => root), {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) throw new Error(`proof[${key}] was read`);
        return Reflect.get(target, key, receiver);
      },
    });
  assert.equal(verifyInclusion(root, 0, 2 ** 40, untouchable(MAX_PROOF_LENGTH + 1), root), false);
  assert.equal(verifyConsistency(3, 2 ** 40, root, root, untouchable(MAX_PROOF_LENGTH + 1)), false);
  assert.throws(() => verifyInclusion(root, 0, 2 ** 40, untouchable(MAX_PROOF_LENGTH), root), /was read/);
});

test('proof generators and the builder reject impossible arguments with ERR_BAD_REQUEST', () => {
  const leaves = distinctLeaves(4, 4);
  const hashRange = memoryHashRange(leaves);
  const bad: [string, () => unknown][] = [
    ['index == size', () => inclusionProof(4, 4, hashRange)],
    ['size 0', () => inclusionProof(0, 0, hashRange)],
    ['negative index', () => inclusionProof(-1, 4, hashRange)],
    ['fractional size', () => inclusionProofRanges(0, 3.5)],
    ['old size 0', () => consistencyProof(0, 4, hashRange)],
    ['old > new', () => consistencyProof(4, 3, hashRange)],
    ['range past the stored leaves', () => inclusionProof(0, 5, hashRange)],
    ['hashRange returns a short hash', () => inclusionProof(0, 4, () => Buffer.alloc(HASH_SIZE - 1))],
    ['append a 31-byte leaf', () => new MerkleTreeBuilder().append(Buffer.alloc(31))],
    ['rootOf a 33-byte leaf', () => rootOf([Buffer.alloc(33)])],
    ['frontier of the wrong length', () => MerkleTreeBuilder.fromFrontier(3, [leaves[0] as Buffer])],
    ['frontier with a short hash', () => MerkleTreeBuilder.fromFrontier(1, [Buffer.alloc(1)])],
  ];
  for (const [name, fn] of bad) {
    assert.throws(fn, (err) => isMandateError(err, 'ERR_BAD_REQUEST'), name);
  }
});

test('proofs call hashRange O(log n) times, never over the whole tree', () => {
  const leaves = distinctLeaves(1000, 5);
  const inner = memoryHashRange(leaves);
  const calls: [number, number][] = [];
  const counting = (start: number, end: number): Buffer => {
    calls.push([start, end]);
    return inner(start, end);
  };
  inclusionProof(517, 1000, counting);
  assert.ok(calls.length <= 10, `${calls.length} calls`);
  calls.length = 0;
  consistencyProof(517, 1000, counting);
  assert.ok(calls.length <= 11, `${calls.length} calls`);
  assert.ok(calls.every(([start, end]) => end - start < 1000));
});

test('timing: rootOf over 1,000,000 leaf hashes', (t) => {
  const leaves = distinctLeaves(1_000_000, 6);
  const started = performance.now();
  const root = rootOf(leaves);
  const rootMs = performance.now() - started;
  const builder = new MerkleTreeBuilder();
  const builderStarted = performance.now();
  for (const leaf of leaves) builder.append(leaf);
  const builderMs = performance.now() - builderStarted;
  assert.deepEqual(builder.root(), root);
  t.diagnostic(`rootOf(10^6 leaves): ${rootMs.toFixed(0)} ms; MerkleTreeBuilder 10^6 appends: ${builderMs.toFixed(0)} ms`);
});
