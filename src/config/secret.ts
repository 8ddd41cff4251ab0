/**
 * A configuration secret (the KEK, the database URL). It prints as `[secret from <origin>]` in logs,
 * JSON and `util.inspect`, so logging the whole configuration object cannot leak it; `reveal()` is
 * the one deliberate way to read it.
 *
 * @example
 *   const url = new Secret('postgres://u:pw@db/mandate', 'env MANDATE_STORE_URL');
 *   JSON.stringify({ url })  // '{"url":"[secret from env MANDATE_STORE_URL]"}'
 *   new pg.Pool({ connectionString: url.reveal() });
 */
import { inspect } from 'node:util';

export class Secret<T> {
  readonly #value: T;
  /** Where the value came from, e.g. `env MANDATE_KEK` or `keys.kek_file`; safe to log. */
  readonly origin: string;

  constructor(value: T, origin: string) {
    this.#value = value;
    this.origin = origin;
  }

  reveal(): T {
    return this.#value;
  }

  toString(): string {
    return `[secret from ${this.origin}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
