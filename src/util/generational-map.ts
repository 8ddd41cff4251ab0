/**
 * A bounded map for caches on hot paths: two generations rather than an exact LRU. New and recently
 * used entries live in the young generation; when it is full it becomes the old one and the previous
 * old one is dropped whole. At most twice `perGeneration` entries are kept, and no lookup pays for
 * moving entries one at a time, which costs more than the lookups an exact LRU saves.
 *
 * @example
 *   const seen = new GenerationalMap<string, Claims>(5_000);
 *   seen.set(digest, claims);
 *   seen.get(digest); // found in either generation; an old entry moves to the young one
 */
export class GenerationalMap<K, V> {
  #young = new Map<K, V>();
  #old = new Map<K, V>();

  constructor(private readonly perGeneration: number) {}

  get(key: K): V | undefined {
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    // Promoted, so entries in use survive the next change of generation.
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: K, value: V): void {
    if (this.#young.size >= this.perGeneration) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, value);
  }

  delete(key: K): void {
    this.#young.delete(key);
    this.#old.delete(key);
  }
}
