/**
 * A bounded cache of values computed from a text alone (a statement's classification, say).
 * When full it is emptied rather than evicting entry by entry: the values are cheap to compute
 * again, and keeping an order of use would cost something on every hit.
 */
export class TextCache<T> {
  readonly #entries = new Map<string, T>();
  readonly #maxEntries: number;
  readonly #maxKeyLength: number;

  /** Keys longer than `maxKeyLength` are never kept. */
  constructor(maxEntries: number, maxKeyLength = Number.POSITIVE_INFINITY) {
    this.#maxEntries = Math.max(1, maxEntries);
    this.#maxKeyLength = maxKeyLength;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): T | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: T): void {
    if (key.length > this.#maxKeyLength) return;
    if (this.#entries.size >= this.#maxEntries && !this.#entries.has(key)) this.#entries.clear();
    this.#entries.set(key, value);
  }
}
