// Raw CBOR built item by item, including what no encoder of ours writes: arguments in
// longer forms than needed, reserved additional-information values, lengths that lie
// about what follows, indefinite lengths, breaks in odd places, text that is not UTF-8,
// every simple value and float width, and the tags cbor-x gives a meaning to (dates,
// bignums, generic objects, shared references, sets, maps, typed arrays) among others.
import fc from 'fast-check';

/** An initial byte and its argument; `size` 0 puts a small argument in the initial byte. */
export function head(major: number, argument: bigint, size: 0 | 1 | 2 | 4 | 8): Buffer {
  if (size === 0) return Buffer.from([(major << 5) | Number(argument & 0x17n)]);
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[size];
  const out = Buffer.alloc(1 + size);
  out[0] = (major << 5) | info;
  for (let i = 0; i < size; i++) out[1 + i] = Number((argument >> BigInt(8 * (size - 1 - i))) & 0xffn);
  return out;
}

const sizeArb = fc.constantFrom<0 | 1 | 2 | 4 | 8>(0, 1, 1, 2, 4, 8);
const argumentArb = fc.oneof(
  { arbitrary: fc.bigInt(0n, 23n), weight: 4 },
  { arbitrary: fc.bigInt(0n, 2n ** 32n), weight: 2 },
  { arbitrary: fc.constantFrom(2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 32n - 1n), weight: 1 },
);
/** The tags cbor-x interprets, and a few it does not. */
const tagArb = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 3n, 4n, 5n, 14n, 15n, 21n, 24n, 25n, 27n, 28n, 29n, 32n, 51n, 64n, 72n, 85n, 256n, 258n, 259n, 55799n, 57344n),
  fc.bigInt(0n, 2n ** 64n - 1n),
);

const minimal = (n: bigint): 0 | 1 | 2 | 4 | 8 => (n < 24n ? 0 : n < 256n ? 1 : n < 65536n ? 2 : n < 2n ** 32n ? 4 : 8);

/** A head with a chosen or minimal size; a size too small for the argument gives a (wrong) shorter argument. */
const headArb = (major: number, argument: fc.Arbitrary<bigint>): fc.Arbitrary<Buffer> =>
  fc.tuple(argument, fc.option(sizeArb, { freq: 3 })).map(([n, size]) => head(major, n, size ?? minimal(n)));

const leafArb: fc.Arbitrary<Buffer> = fc.oneof(
  headArb(0, argumentArb),
  headArb(1, argumentArb),
  // Byte and text strings whose length may not match what follows.
  fc.tuple(fc.uint8Array({ maxLength: 12 }), fc.integer({ min: -3, max: 3 }), fc.constantFrom(2, 3)).map(([data, lie, major]) =>
    Buffer.concat([head(major, BigInt(Math.max(0, data.length + lie)), minimal(BigInt(Math.max(0, data.length + lie)))), data]),
  ),
  fc.string({ maxLength: 8 }).map((s) => Buffer.concat([head(3, BigInt(Buffer.byteLength(s)), minimal(BigInt(Buffer.byteLength(s)))), Buffer.from(s)])),
  // Simple values, half/single/double floats (NaN and infinities among them), reserved infos, a stray break.
  fc.constantFrom(0xf4, 0xf5, 0xf6, 0xf7, 0xfc, 0xfd, 0xfe, 0xff, 0x1c, 0x3d, 0x5e).map((b) => Buffer.from([b])),
  fc.nat(255).map((n) => Buffer.from([0xf8, n])),
  fc.constantFrom('f97e00', 'f97c00', 'f9fc00', 'f98000', 'fa7fc00000', 'fb7ff8000000000000', 'fb3ff0000000000000', 'fbc3e0000000000000').map((h) => Buffer.from(h, 'hex')),
  fc.uint8Array({ minLength: 1, maxLength: 9 }).map((b) => Buffer.from(b)),
  // A huge declared length with nothing behind it.
  fc.constantFrom('5affffffff', '7affffffff', '9affffffff', 'baffffffff', '9a06b00000', 'ba00fe0000', '5b0000000100000000').map((h) => Buffer.from(h, 'hex')),
);

/** One CBOR data item (or something that looks like one), at most a few levels deep. */
export const cborItem: fc.Arbitrary<Buffer> = fc.letrec<{ item: Buffer }>((tie) => ({
  item: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    // Arrays and maps whose declared count may differ from the items that follow.
    fc.tuple(fc.array(tie('item'), { maxLength: 4 }), fc.integer({ min: -1, max: 1 }), fc.boolean()).map(([items, lie, indefinite]) =>
      Buffer.concat([indefinite ? Buffer.from([0x9f]) : head(4, BigInt(Math.max(0, items.length + lie)), 0), ...items, indefinite ? Buffer.from([0xff]) : Buffer.alloc(0)]),
    ),
    fc.tuple(fc.array(fc.tuple(tie('item'), tie('item')), { maxLength: 3 }), fc.boolean()).map(([pairs, indefinite]) =>
      Buffer.concat([indefinite ? Buffer.from([0xbf]) : head(5, BigInt(pairs.length), 0), ...pairs.flat(), indefinite ? Buffer.from([0xff]) : Buffer.alloc(0)]),
    ),
    // Text keys, so that maps reach the schemas as objects.
    fc.array(fc.tuple(fc.constantFrom('vdisk', 'offset', 'length', 'data', 'name', 'kind', 'ok', 'error', 'value', '__proto__', 'constructor'), tie('item')), { maxLength: 4 }).map((pairs) =>
      Buffer.concat([head(5, BigInt(pairs.length), 0), ...pairs.flatMap(([k, v]) => [head(3, BigInt(k.length), 0), Buffer.from(k), v])]),
    ),
    fc.tuple(tagArb, tie('item')).map(([tag, item]) => Buffer.concat([head(6, tag, minimal(tag)), item])),
    // Indefinite-length strings, their chunks right or wrong.
    fc.tuple(fc.constantFrom(0x5f, 0x7f), fc.array(tie('item'), { maxLength: 3 })).map(([start, chunks]) => Buffer.concat([Buffer.from([start]), ...chunks, Buffer.from([0xff])])),
  ),
})).item;

/** Deep nesting: `depth` copies of one container head (or tag) around a small item. */
export const deepItem: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom(0x81, 0x9f, 0xa1, 0xc6, 0xd8, 0xd9), fc.integer({ min: 1, max: 50_000 }), fc.constantFrom(Buffer.from([0x00]), Buffer.from([0x61, 0x61, 0x00])))
  .map(([start, depth, tail]) => {
    // A map needs a key before each nested value; tag 24+ needs its tag byte(s).
    const unit = start === 0xa1 ? Buffer.from([0xa1, 0x61, 0x61]) : start === 0xd8 ? Buffer.from([0xd8, 0x1c]) : start === 0xd9 ? Buffer.from([0xd9, 0x01, 0x02]) : Buffer.from([start]);
    return Buffer.concat([Buffer.alloc(unit.length * depth).fill(unit), tail]);
  });
