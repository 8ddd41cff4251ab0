import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isMandateError } from '../../errors.ts';
import {
  DerReader, MAX_DER_DEPTH, TAG, contextTag, decodeOid, encodeBitString, encodeBoolean, encodeExplicit, encodeIa5String, encodeImplicit,
  encodeInteger, encodeLength, encodeNull, encodeOctetString, encodeOid, encodePrintableString, encodeSequence, encodeSet, encodeTime, encodeUtf8String,
} from './der.ts';

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const reader = (h: string | Uint8Array) => new DerReader(typeof h === 'string' ? hex(h) : h, { code: 'ERR_CSR_INVALID', what: 'test input is not DER' });
const rejects = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (err) => isMandateError(err, 'ERR_CSR_INVALID') && err.message.startsWith('test input is not DER: ') && message.test(err.message));

describe('DerReader: element framing', () => {
  it('reads short and long definite lengths', () => {
    const r = reader('30 03 02 01 05');
    const seq = r.enter(TAG.SEQUENCE, 'outer');
    r.finish('outer');
    assert.equal(seq.smallInteger('n'), 5);
    seq.finish('outer');
    const long = Buffer.concat([hex('04 81 80'), Buffer.alloc(128, 7)]);
    const el = reader(long).read(TAG.OCTET_STRING, 'octets');
    assert.deepEqual({ start: el.start, contentStart: el.contentStart, end: el.end }, { start: 0, contentStart: 3, end: 131 });
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['indefinite length', '30 80 02 01 00 00 00', /indefinite length/],
    ['long form for a short length', '04 81 05 0102030405', /long length form for a short length/],
    ['length with a leading zero octet', '04 82 00 80', /leading zero/],
    ['five length octets', '04 85 00 00 00 00 01 00', /length of 5 octets/],
    ['high tag number', '1f 81 01 00', /high tag number/],
    ['truncated length octets', '04 82 01', /truncated length/],
    ['no length at all', '04', /has no length/],
    ['content running past the end', '04 05 00 01', /5 bytes long but only 2 remain/],
    ['a child running past its parent', '30 03 04 05 00 00 00 00 00', /5 bytes long but only 1 remain/],
    ['a 4 GiB length claim', '04 84 ff ff ff ff 00', /4294967295 bytes long/],
  ];
  for (const [name, input, message] of malformed) {
    it(`refuses ${name}`, () => {
      rejects(() => {
        const r = reader(input);
        const el = r.next('element');
        if (el.tag & 0x20) r.child(el, 'element').skipWellFormed('element');
      }, message);
    });
  }

  it('reports a missing element, a wrong tag and trailing data', () => {
    rejects(() => reader('').next('version'), /version is missing/);
    rejects(() => reader('02 01 00').read(TAG.SEQUENCE, 'subject'), /subject at offset 0 should have tag 0x30, found 0x02/);
    rejects(() => {
      const r = reader('05 00 05 00');
      r.null('first');
      r.finish('the pair');
    }, /unexpected data at offset 2 after the last element of the pair/);
  });

  it('reads OPTIONAL elements only when their tag is next', () => {
    const r = reader('a0 03 02 01 02 02 01 07');
    assert.equal(r.optional(contextTag(1, true), 'issuerUniqueID'), undefined);
    const version = r.optional(contextTag(0, true), 'version');
    assert.ok(version);
    assert.equal(r.child(version, 'version').smallInteger('version'), 2);
    assert.equal(r.peekTag(), TAG.INTEGER);
    assert.equal(r.smallInteger('serial'), 7);
    assert.equal(r.done, true);
    assert.equal(r.peekTag(), undefined);
  });

  it('refuses to descend into a primitive element', () => {
    const r = reader('04 02 30 00');
    rejects(() => r.child(r.next('octets'), 'octets'), /primitive where a constructed element is required/);
  });

  it(`accepts nesting up to ${MAX_DER_DEPTH} levels and refuses deeper`, () => {
    const nest = (levels: number) => {
      let der: Uint8Array = encodeNull();
      for (let i = 0; i < levels; i++) der = encodeSequence(der);
      return der;
    };
    reader(nest(MAX_DER_DEPTH)).skipWellFormed('nested');
    rejects(() => reader(nest(MAX_DER_DEPTH + 1)).skipWellFormed('nested'), /nested deeper than 32 levels/);
    // 5,000 levels would overflow a naive recursive walker's stack; here it is a plain refusal.
    rejects(() => reader(nest(5000)).skipWellFormed('nested'), /nested deeper/);
  });

  it('hands out whole elements and contents as views, not copies', () => {
    const bytes = hex('30 03 04 01 aa');
    const r = reader(bytes);
    const el = r.read(TAG.SEQUENCE, 'seq');
    assert.deepEqual(r.whole(el), bytes);
    assert.equal(r.whole(el).buffer, bytes.buffer);
    assert.deepEqual(r.child(el, 'seq').octetString('octets'), hex('aa'));
  });
});

describe('DerReader: primitive values', () => {
  const integers: Array<[string, string | RegExp]> = [
    ['02 01 00', '00'],
    ['02 01 7f', '7f'],
    ['02 02 00 80', '0080'],
    ['02 01 80', '80'],
    ['02 00', /empty INTEGER/],
    ['02 02 00 7f', /redundant leading octets/],
    ['02 02 ff 80', /redundant leading octets/],
  ];
  for (const [input, expected] of integers) {
    it(`INTEGER ${input} -> ${expected}`, () => {
      if (typeof expected === 'string') assert.equal(Buffer.from(reader(input).integer('n')).toString('hex'), expected);
      else rejects(() => reader(input).integer('n'), expected);
    });
  }

  it('small INTEGERs: non-negative and below 2^32', () => {
    assert.equal(reader('02 05 00 ff ff ff ff').smallInteger('n'), 0xffffffff);
    rejects(() => reader('02 01 ff').smallInteger('n'), /negative/);
    rejects(() => reader('02 05 01 00 00 00 00').smallInteger('n'), /larger than 2\^32/);
  });

  it('BOOLEAN and NULL in their only DER forms', () => {
    assert.equal(reader('01 01 ff').boolean('b'), true);
    assert.equal(reader('01 01 00').boolean('b'), false);
    rejects(() => reader('01 01 01').boolean('b'), /not a DER BOOLEAN/);
    rejects(() => reader('01 02 00 00').boolean('b'), /not a DER BOOLEAN/);
    reader('05 00').null('n');
    rejects(() => reader('05 01 00').null('n'), /NULL with content/);
  });

  it('BIT STRINGs of whole octets', () => {
    assert.deepEqual(reader('03 03 00 ab cd').octetAlignedBitString('key'), hex('ab cd'));
    assert.equal(reader('03 01 00').octetAlignedBitString('key').length, 0);
    rejects(() => reader('03 00').octetAlignedBitString('key'), /empty BIT STRING/);
    rejects(() => reader('03 02 07 80').octetAlignedBitString('key'), /7 unused bits/);
  });

  // Encodings cross-checked with `openssl asn1parse -genstr OID:<dotted>`.
  const oids: Array<[string, string]> = [
    ['2a8648ce3d0201', '1.2.840.10045.2.1'],
    ['2a8648ce3d030107', '1.2.840.10045.3.1.7'],
    ['2b6570', '1.3.101.112'],
    ['551d11', '2.5.29.17'],
    ['00', '0.0'],
    ['8837', '2.999'],
    ['6983f09da7ebcfdee0c7a1a7b2c0948cc8f9d776', '2.25.329800735698586629295641978511506172918'],
  ];
  for (const [content, dotted] of oids) {
    it(`OID ${dotted} decodes and encodes both ways`, () => {
      assert.equal(decodeOid(hex(content)), dotted);
      assert.equal(reader(encodeOid(dotted)).oid('oid'), dotted);
      assert.equal(encodeOid(dotted).toString('hex'), `06${encodeLength(content.length / 2)[0]?.toString(16).padStart(2, '0')}${content}`);
    });
  }

  it('refuses OIDs that are not DER', () => {
    assert.equal(decodeOid(new Uint8Array(0)), undefined);
    assert.equal(decodeOid(hex('2a 86')), undefined, 'last arc truncated');
    assert.equal(decodeOid(hex('2a 80 01')), undefined, 'arc with a redundant 0x80 octet');
    rejects(() => reader('06 02 2a 80').oid('algorithm'), /algorithm at offset 0 is not a valid DER OBJECT IDENTIFIER/);
  });
});

describe('DER writer', () => {
  const lengths: Array<[number, string]> = [[0, '00'], [127, '7f'], [128, '8180'], [255, '81ff'], [256, '820100'], [65536, '83010000']];
  for (const [n, expected] of lengths) {
    it(`length ${n} -> ${expected}`, () => assert.equal(Buffer.from(encodeLength(n)).toString('hex'), expected));
  }

  const integers: Array<[number | bigint | Uint8Array, string]> = [
    [0, '020100'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
    [2n ** 64n, '0209010000000000000000'],
    [hex('00 00 ff'), '020200ff'],
    [hex('7f ff'), '02027fff'],
    [new Uint8Array(0), '020100'],
  ];
  for (const [value, expected] of integers) {
    it(`INTEGER ${value instanceof Uint8Array ? `bytes ${Buffer.from(value).toString('hex') || '(none)'}` : value} -> ${expected}`, () => {
      assert.equal(encodeInteger(value).toString('hex'), expected);
      assert.equal(Buffer.from(reader(encodeInteger(value)).integer('n')).toString('hex'), expected.slice(4));
    });
  }

  it('refuses what it cannot encode', () => {
    const internal = (fn: () => unknown) => assert.throws(fn, (err) => isMandateError(err, 'ERR_INTERNAL'));
    internal(() => encodeInteger(-1));
    internal(() => encodeOid('1.40'));
    internal(() => encodeOid('3.1'));
    internal(() => encodeOid('1.2.03'));
    internal(() => encodeBitString(hex('81'), 7));
    internal(() => encodeBitString(new Uint8Array(0), 1));
    internal(() => encodePrintableString('a@b'));
    internal(() => encodeIa5String('spiffe://exämple.org/a'));
    internal(() => encodeTime(new Date(Number.NaN)));
    internal(() => encodeTime(new Date(Date.UTC(10000, 0, 1))));
    internal(() => encodeLength(-1));
    internal(() => contextTag(31, false));
  });

  const fixed: Array<[string, () => Uint8Array, string]> = [
    ['BOOLEAN true', () => encodeBoolean(true), '0101ff'],
    ['NULL', () => encodeNull(), '0500'],
    ['KeyUsage digitalSignature bits', () => encodeBitString(hex('80'), 7), '03020780'],
    ['OCTET STRING', () => encodeOctetString(hex('0102')), '04020102'],
    ['UTF8String', () => encodeUtf8String('é'), '0c02c3a9'],
    ['PrintableString', () => encodePrintableString('SPIFFE'), '1306535049464645'],
    ['empty SEQUENCE (BasicConstraints cA false)', () => encodeSequence(), '3000'],
    ['SET OF sorted', () => encodeSet(hex('0201 02'), hex('0201 01')), '3106020101020102'],
    ['[0] EXPLICIT version 3', () => encodeExplicit(0, encodeInteger(2)), 'a003020102'],
    ['[6] IMPLICIT URI', () => encodeImplicit(6, encodeIa5String('a:b')), '8603613a62'],
    ['[0] IMPLICIT SEQUENCE', () => encodeImplicit(0, encodeSequence(encodeNull())), 'a0020500'],
  ];
  for (const [name, make, expected] of fixed) {
    it(name, () => assert.equal(Buffer.from(make()).toString('hex'), expected));
  }

  const times: Array<[string, string, number]> = [
    ['1949-12-31T23:59:59Z', '19491231235959Z', TAG.GENERALIZED_TIME],
    ['1950-01-01T00:00:00Z', '500101000000Z', TAG.UTC_TIME],
    ['2026-11-23T23:50:00.999Z', '261123235000Z', TAG.UTC_TIME],
    ['2049-12-31T23:59:59Z', '491231235959Z', TAG.UTC_TIME],
    ['2050-01-01T00:00:00Z', '20500101000000Z', TAG.GENERALIZED_TIME],
    ['9999-12-31T23:59:59Z', '99991231235959Z', TAG.GENERALIZED_TIME],
  ];
  for (const [iso, text, tag] of times) {
    it(`time ${iso} -> ${tag === TAG.UTC_TIME ? 'UTCTime' : 'GeneralizedTime'} ${text} (RFC 5280 §4.1.2.5)`, () => {
      const der = encodeTime(new Date(iso));
      assert.equal(der[0], tag);
      assert.equal(der[1], text.length);
      assert.equal(der.subarray(2).toString('latin1'), text);
    });
  }

  it('writes what the reader reads back', () => {
    const der = encodeSequence(encodeInteger(0), encodeOid('1.2.840.10045.2.1'), encodeBitString(hex('04 01 02')), encodeExplicit(3, encodeSequence(encodeBoolean(true))));
    const r = reader(der);
    const seq = r.enter(TAG.SEQUENCE, 'seq');
    r.finish('seq');
    assert.equal(seq.smallInteger('n'), 0);
    assert.equal(seq.oid('oid'), '1.2.840.10045.2.1');
    assert.deepEqual(seq.octetAlignedBitString('bits'), hex('04 01 02'));
    const explicit = seq.enter(contextTag(3, true), 'extensions');
    assert.equal(explicit.enter(TAG.SEQUENCE, 'inner').boolean('b'), true);
    seq.finish('seq');
  });
});

describe('DerReader on hostile input', () => {
  it('ends every walk over random bytes in a MandateError or success, never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      try {
        reader(bytes).skipWellFormed('input');
      } catch (err) {
        assert.ok(isMandateError(err, 'ERR_CSR_INVALID'), `unexpected ${String(err)}`);
      }
    }), { numRuns: 2000 });
  });

  it('reads random OID contents without throwing', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const dotted = decodeOid(bytes);
      if (dotted !== undefined) assert.deepEqual(encodeOid(dotted).subarray(encodeLength(bytes.length).length + 1), Buffer.from(bytes));
    }), { numRuns: 2000 });
  });
});
