// Byte-level mutations shared by the targets: bit flips, truncation, inserted bytes,
// or the whole input replaced by garbage. Positions are fractions of the input (in
// millionths), so a mutation lands somewhere in whatever length the input has.
import fc from 'fast-check';

export const positionArb = fc.integer({ min: 0, max: 1_000_000 });

export type Mutation =
  | { kind: 'none' }
  | { kind: 'flip'; flips: { at: number; bit: number }[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'garbage'; bytes: Uint8Array };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.record({ at: positionArb, bit: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 4 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: positionArb }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('insert' as const), at: positionArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 300 }) }), weight: 1 },
);

/** The byte `fraction` millionths of the way into `lengthBytes`. */
export const at = (fraction: number, lengthBytes: number): number => Math.floor((fraction / 1_000_000) * lengthBytes);

export function mutate(stream: Buffer, mutation: Mutation): Buffer {
  switch (mutation.kind) {
    case 'none':
      return stream;
    case 'flip': {
      const out = Buffer.from(stream);
      for (const flip of mutation.flips) if (out.length > 0) out[Math.min(at(flip.at, out.length), out.length - 1)]! ^= 1 << flip.bit;
      return out;
    }
    case 'truncate':
      return stream.subarray(0, at(mutation.at, stream.length));
    case 'insert': {
      const where = at(mutation.at, stream.length);
      return Buffer.concat([stream.subarray(0, where), mutation.bytes, stream.subarray(where)]);
    }
    case 'garbage':
      return Buffer.from(mutation.bytes);
  }
}

