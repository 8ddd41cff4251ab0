/**
 * A small, strict DER reader and writer: just what issuing X.509-SVIDs from CSRs needs, without a
 * general ASN.1 schema engine on the hot path.
 *
 * The reader accepts DER only (X.690 §10): definite lengths in their shortest form, low tag numbers,
 * minimal INTEGERs and OID arcs, zero padding bits in BIT STRINGs. Every length is checked against
 * its parent before use and nesting is bounded, so hostile input ends in a MandateError, never a
 * crash, a huge allocation or a long loop.
 */
import { MandateError, type ErrorCode } from '../../errors.ts';

/** Universal tags as they appear on the wire (constructed bit included for SEQUENCE and SET). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * The tag byte of a context-specific `[n]` element: constructed for EXPLICIT tagging and for
 * IMPLICIT tagging of constructed types, primitive otherwise.
 *
 * @example contextTag(0, true) // 0xa0, the `[0] EXPLICIT Version` of a TBSCertificate
 */
export function contextTag(n: number, constructed: boolean): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new MandateError('ERR_INTERNAL', `context tag [${n}] is outside 0..30`);
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** Nesting deeper than this is refused: no certificate or CSR Mandate accepts comes close. */
export const MAX_DER_DEPTH = 32;

/** One element found by a DerReader: offsets into the reader's bytes. */
export interface DerElement {
  tag: number;
  /** Offset of the tag byte; `start..end` is the whole element, e.g. the exact bytes that were signed. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the last content byte. */
  end: number;
}

/** How a reader reports malformed input: the error code, and what the input was meant to be. */
export interface DerErrorContext {
  code: ErrorCode;
  /** Leads every message, e.g. `CSR is not a valid PKCS#10 request`. */
  what: string;
}

const tagName = (tag: number): string => `0x${tag.toString(16).padStart(2, '0')}`;

/**
 * Reads DER elements one after another inside a window of a byte array. `enter` gives a reader over
 * a constructed element's content, one level deeper.
 *
 * @example
 *   const top = new DerReader(der, { code: 'ERR_CSR_INVALID', what: 'CSR is not a valid PKCS#10 request' });
 *   const request = top.enter(TAG.SEQUENCE, 'CertificationRequest');
 *   top.finish('CSR');
 *   const info = request.read(TAG.SEQUENCE, 'certificationRequestInfo');
 */
export class DerReader {
  readonly bytes: Uint8Array;
  readonly #context: DerErrorContext;
  readonly #end: number;
  readonly #depth: number;
  #pos: number;

  constructor(bytes: Uint8Array, context: DerErrorContext, start = 0, end = bytes.length, depth = 0) {
    if (start < 0 || end > bytes.length || start > end) throw new MandateError('ERR_INTERNAL', 'DerReader window lies outside its bytes');
    this.bytes = bytes;
    this.#context = context;
    this.#pos = start;
    this.#end = end;
    this.#depth = depth;
  }

  /** Throws the reader's MandateError with `detail` after its `what`. */
  fail(detail: string): never {
    throw new MandateError(this.#context.code, `${this.#context.what}: ${detail}`);
  }

  /** True when every element in the window has been read. */
  get done(): boolean {
    return this.#pos >= this.#end;
  }

  /** The tag of the next element, or undefined at the end of the window. */
  peekTag(): number | undefined {
    return this.#pos < this.#end ? this.bytes[this.#pos] : undefined;
  }

  /** Reads the next element, whatever its tag. */
  next(field: string): DerElement {
    const b = this.bytes;
    const start = this.#pos;
    const limit = this.#end;
    if (start >= limit) this.fail(`${field} is missing (input ends at offset ${start})`);
    const tag = b[start] as number;
    if ((tag & 0x1f) === 0x1f) this.fail(`${field} at offset ${start} uses a high tag number, which no supported structure has`);
    if (start + 1 >= limit) this.fail(`${field} at offset ${start} has no length`);
    const first = b[start + 1] as number;
    let length: number;
    let contentStart: number;
    if (first < 0x80) {
      length = first;
      contentStart = start + 2;
    } else {
      const count = first & 0x7f;
      if (count === 0) this.fail(`${field} at offset ${start} has an indefinite length, which DER forbids`);
      if (count > 4) this.fail(`${field} at offset ${start} declares a length of ${count} octets`);
      if (start + 2 + count > limit) this.fail(`${field} at offset ${start} has a truncated length`);
      if (b[start + 2] === 0) this.fail(`${field} at offset ${start} has a length with leading zero octets, which DER forbids`);
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + (b[start + 2 + i] as number);
      if (length < 0x80) this.fail(`${field} at offset ${start} uses the long length form for a short length, which DER forbids`);
      contentStart = start + 2 + count;
    }
    const end = contentStart + length;
    if (end > limit) this.fail(`${field} at offset ${start} is ${length} bytes long but only ${limit - contentStart} remain`);
    this.#pos = end;
    return { tag, start, contentStart, end };
  }

  /** Reads the next element and checks its tag. */
  read(tag: number, field: string): DerElement {
    const actual = this.peekTag();
    if (actual !== undefined && actual !== tag) this.fail(`${field} at offset ${this.#pos} should have tag ${tagName(tag)}, found ${tagName(actual)}`);
    return this.next(field);
  }

  /** Reads the next element only if it has this tag (OPTIONAL and DEFAULT fields). */
  optional(tag: number, field: string): DerElement | undefined {
    return this.peekTag() === tag ? this.next(field) : undefined;
  }

  /** A reader over a constructed element's content, one level deeper. */
  child(el: DerElement, field: string): DerReader {
    if ((el.tag & 0x20) === 0) this.fail(`${field} at offset ${el.start} is primitive where a constructed element is required`);
    if (this.#depth + 1 > MAX_DER_DEPTH) this.fail(`${field} at offset ${el.start} is nested deeper than ${MAX_DER_DEPTH} levels`);
    return new DerReader(this.bytes, this.#context, el.contentStart, el.end, this.#depth + 1);
  }

  /** Reads a constructed element with this tag and returns a reader over its content. */
  enter(tag: number, field: string): DerReader {
    return this.child(this.read(tag, field), field);
  }

  /** Refuses anything left in the window after the last expected element. */
  finish(field: string): void {
    if (!this.done) this.fail(`unexpected data at offset ${this.#pos} after the last element of ${field}`);
  }

  /** The whole element, tag and length included. */
  whole(el: DerElement): Uint8Array {
    return this.bytes.subarray(el.start, el.end);
  }

  /** The element's content octets. */
  content(el: DerElement): Uint8Array {
    return this.bytes.subarray(el.contentStart, el.end);
  }

  /**
   * Checks that everything left in the window is well-formed DER, descending into constructed
   * elements (at most MAX_DER_DEPTH deep), and consumes it. For parts that are kept or ignored
   * but never interpreted, such as a CSR's subject and attributes.
   */
  skipWellFormed(field: string): void {
    while (!this.done) {
      const el = this.next(field);
      if (el.tag & 0x20) this.child(el, field).skipWellFormed(field);
    }
  }

  /** Reads a minimal INTEGER and returns its content (two's complement, big-endian). */
  integer(field: string): Uint8Array {
    const el = this.read(TAG.INTEGER, field);
    const c = this.content(el);
    if (c.length === 0) this.fail(`${field} at offset ${el.start} is an empty INTEGER`);
    if (c.length > 1 && ((c[0] === 0x00 && ((c[1] as number) & 0x80) === 0) || (c[0] === 0xff && ((c[1] as number) & 0x80) !== 0))) {
      this.fail(`${field} at offset ${el.start} is an INTEGER with redundant leading octets, which DER forbids`);
    }
    return c;
  }

  /** Reads a non-negative INTEGER that fits in 32 bits (versions, salt lengths, counters). */
  smallInteger(field: string): number {
    const c = this.integer(field);
    if (((c[0] as number) & 0x80) !== 0) this.fail(`${field} is negative`);
    if (c.length > 5 || (c.length === 5 && c[0] !== 0)) this.fail(`${field} is larger than 2^32`);
    let n = 0;
    for (const byte of c) n = n * 256 + byte;
    return n;
  }

  /** Reads a BOOLEAN: DER allows only 0x00 and 0xff. */
  boolean(field: string): boolean {
    const el = this.read(TAG.BOOLEAN, field);
    const c = this.content(el);
    if (c.length !== 1 || (c[0] !== 0x00 && c[0] !== 0xff)) this.fail(`${field} at offset ${el.start} is not a DER BOOLEAN`);
    return c[0] === 0xff;
  }

  /** Reads a NULL (empty content). */
  null(field: string): void {
    const el = this.read(TAG.NULL, field);
    if (el.end !== el.contentStart) this.fail(`${field} at offset ${el.start} is a NULL with content`);
  }

  /** Reads an OBJECT IDENTIFIER as dotted decimal, e.g. `1.2.840.10045.2.1`. */
  oid(field: string): string {
    const el = this.read(TAG.OID, field);
    const dotted = decodeOid(this.content(el));
    if (dotted === undefined) this.fail(`${field} at offset ${el.start} is not a valid DER OBJECT IDENTIFIER`);
    return dotted;
  }

  /** Reads a BIT STRING made of whole octets (keys, signatures) and returns those octets. */
  octetAlignedBitString(field: string): Uint8Array {
    const el = this.read(TAG.BIT_STRING, field);
    const c = this.content(el);
    if (c.length === 0) this.fail(`${field} at offset ${el.start} is an empty BIT STRING`);
    if (c[0] !== 0) this.fail(`${field} at offset ${el.start} has ${c[0]} unused bits where whole octets are required`);
    return c.subarray(1);
  }

  /** Reads an OCTET STRING and returns its content. */
  octetString(field: string): Uint8Array {
    return this.content(this.read(TAG.OCTET_STRING, field));
  }
}

/**
 * Decodes OBJECT IDENTIFIER content octets to dotted decimal, or undefined when they are not DER
 * (empty, an arc with a redundant 0x80 octet, or a truncated last arc).
 *
 * @example decodeOid(Buffer.from('2a8648ce3d0201', 'hex')) // '1.2.840.10045.2.1'
 */
export function decodeOid(content: Uint8Array): string | undefined {
  if (content.length === 0 || ((content[content.length - 1] as number) & 0x80) !== 0) return undefined;
  const arcs: Array<number | bigint> = [];
  // Arcs stay plain numbers while they are exact; only very long ones (UUID arcs) need a bigint.
  let arc = 0;
  let big: bigint | undefined;
  let arcStart = true;
  for (const byte of content) {
    if (arcStart && byte === 0x80) return undefined;
    const low = byte & 0x7f;
    if (big !== undefined) big = (big << 7n) | BigInt(low);
    else if (arc >= 2 ** 45) big = (BigInt(arc) << 7n) | BigInt(low);
    else arc = arc * 128 + low;
    arcStart = (byte & 0x80) === 0;
    if (arcStart) {
      arcs.push(big ?? arc);
      arc = 0;
      big = undefined;
    }
  }
  const first = arcs[0] as number | bigint;
  const head = typeof first === 'bigint' ? `2.${first - 80n}` : first < 40 ? `0.${first}` : first < 80 ? `1.${first - 40}` : `2.${first - 80}`;
  return arcs.length === 1 ? head : `${head}.${arcs.slice(1).join('.')}`;
}

// ---------------------------------------------------------------------------------------------
// Writer. Each function returns one complete element; build bigger ones by nesting calls.

/** Length octets in DER's shortest form. */
export function encodeLength(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new MandateError('ERR_INTERNAL', `DER length ${length} is invalid`);
  if (length < 0x80) return Uint8Array.of(length);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
  return Uint8Array.of(0x80 | octets.length, ...octets);
}

/**
 * One element from its tag and content (several parts are concatenated).
 *
 * @example encodeTlv(TAG.SEQUENCE, [encodeInteger(1n), encodeNull()])
 */
export function encodeTlv(tag: number, content: Uint8Array | readonly Uint8Array[]): Buffer {
  const parts = content instanceof Uint8Array ? [content] : content;
  let length = 0;
  for (const p of parts) length += p.length;
  const len = encodeLength(length);
  const out = Buffer.allocUnsafe(1 + len.length + length);
  out[0] = tag;
  out.set(len, 1);
  let at = 1 + len.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** @example encodeSequence(encodeOid('1.2.840.10045.4.3.2')) // ecdsa-with-SHA256 AlgorithmIdentifier */
export function encodeSequence(...items: Uint8Array[]): Buffer {
  return encodeTlv(TAG.SEQUENCE, items);
}

/** A SET OF with its elements sorted as DER requires (X.690 §11.6). @example encodeSet(rdn) */
export function encodeSet(...items: Uint8Array[]): Buffer {
  return encodeTlv(TAG.SET, [...items].sort((a, b) => Buffer.compare(a, b)));
}

/**
 * A non-negative INTEGER from a number, a bigint, or unsigned big-endian octets (e.g. a serial
 * number), in its minimal two's complement form.
 *
 * @example encodeInteger(2) // 02 01 02
 */
export function encodeInteger(value: number | bigint | Uint8Array): Buffer {
  let magnitude: Uint8Array;
  if (value instanceof Uint8Array) magnitude = value;
  else {
    const n = BigInt(value);
    if (n < 0n) throw new MandateError('ERR_INTERNAL', 'negative INTEGERs are not supported by this DER writer');
    const hex = n.toString(16);
    magnitude = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  if (trimmed.length === 0) return encodeTlv(TAG.INTEGER, Uint8Array.of(0));
  // A set top bit would read as negative: prefix a zero octet.
  return encodeTlv(TAG.INTEGER, ((trimmed[0] as number) & 0x80) !== 0 ? [Uint8Array.of(0), trimmed] : trimmed);
}

const oidCache = new Map<string, Buffer>();

/**
 * An OBJECT IDENTIFIER from dotted decimal; encodings are cached, as a few OIDs recur constantly.
 *
 * @example encodeOid('2.5.29.17') // 06 03 55 1d 11, subjectAltName
 */
export function encodeOid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw new MandateError('ERR_INTERNAL', `"${dotted}" is not a dotted OID`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [a0, a1] = arcs as [bigint, bigint];
  if (a0 < 2n && a1 >= 40n) throw new MandateError('ERR_INTERNAL', `OID ${dotted}: second arc must be below 40 under arc ${a0}`);
  const octets: number[] = [];
  for (const arc of [a0 * 40n + a1, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) chunk.unshift(Number(rest & 0x7fn) | 0x80);
    octets.push(...chunk);
  }
  const encoded = encodeTlv(TAG.OID, Uint8Array.from(octets));
  if (oidCache.size < 256) oidCache.set(dotted, encoded);
  return encoded;
}

/**
 * A BIT STRING. `unusedBits` counts the padding bits at the end of the last octet, which DER
 * requires to be zero (checked here).
 *
 * @example encodeBitString(Uint8Array.of(0x80), 7) // 03 02 07 80, KeyUsage digitalSignature
 */
export function encodeBitString(bits: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bits.length === 0 && unusedBits !== 0)) {
    throw new MandateError('ERR_INTERNAL', `BIT STRING cannot have ${unusedBits} unused bits here`);
  }
  if (unusedBits > 0 && ((bits[bits.length - 1] as number) & ((1 << unusedBits) - 1)) !== 0) {
    throw new MandateError('ERR_INTERNAL', 'BIT STRING padding bits must be zero in DER');
  }
  return encodeTlv(TAG.BIT_STRING, [Uint8Array.of(unusedBits), bits]);
}

/** @example encodeOctetString(keyIdentifier) */
export function encodeOctetString(octets: Uint8Array): Buffer {
  return encodeTlv(TAG.OCTET_STRING, octets);
}

/** @example encodeBoolean(true) // 01 01 ff */
export function encodeBoolean(value: boolean): Buffer {
  return encodeTlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
}

/** @example encodeNull() // 05 00 */
export function encodeNull(): Buffer {
  return encodeTlv(TAG.NULL, new Uint8Array(0));
}

/** @example encodeUtf8String('Mandate CA') */
export function encodeUtf8String(text: string): Buffer {
  return encodeTlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** PrintableString: letters, digits, space and `'()+,-./:=?` only. @example encodePrintableString('SPIFFE') */
export function encodePrintableString(text: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text)) throw new MandateError('ERR_INTERNAL', `"${text}" has characters PrintableString cannot hold`);
  return encodeTlv(TAG.PRINTABLE_STRING, Buffer.from(text, 'latin1'));
}

/** IA5String (ASCII), as URIs in a subjectAltName are. @example encodeIa5String('spiffe://example.org/a') */
export function encodeIa5String(text: string): Buffer {
  if (/[^\x00-\x7f]/.test(text)) throw new MandateError('ERR_INTERNAL', 'IA5String holds ASCII only');
  return encodeTlv(TAG.IA5_STRING, Buffer.from(text, 'latin1'));
}

/**
 * A certificate validity time per RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950 through
 * 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise; always UTC, whole seconds (fractions are cut).
 *
 * @example encodeTime(new Date('2030-01-02T03:04:05Z')) // UTCTime 300102030405Z
 */
export function encodeTime(date: Date): Buffer {
  const ms = date.getTime();
  const year = date.getUTCFullYear();
  if (!Number.isFinite(ms) || year < 0 || year > 9999) throw new MandateError('ERR_INTERNAL', 'certificate time is outside years 0000-9999');
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year <= 2049) return encodeTlv(TAG.UTC_TIME, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'));
  return encodeTlv(TAG.GENERALIZED_TIME, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}

/** `[n] EXPLICIT`: the complete inner element wrapped in a constructed context tag. @example encodeExplicit(0, encodeInteger(2)) */
export function encodeExplicit(n: number, inner: Uint8Array): Buffer {
  return encodeTlv(contextTag(n, true), inner);
}

/**
 * `[n] IMPLICIT`: a complete inner element re-tagged with a context tag, keeping its constructed
 * bit and content, so the inner type's own checks (e.g. IA5String is ASCII) still apply.
 *
 * @example encodeImplicit(6, encodeIa5String('spiffe://example.org/a')) // a URI GeneralName
 */
export function encodeImplicit(n: number, inner: Uint8Array): Buffer {
  if (inner.length < 2) throw new MandateError('ERR_INTERNAL', 'IMPLICIT tagging needs a complete inner element');
  const out = Buffer.from(inner);
  out[0] = contextTag(n, ((inner[0] as number) & 0x20) !== 0);
  return out;
}
