// Fuzz target: CBOR decoding of every message type of proto/ (requests, replies,
// events, KV records; the table of proto/test/rule-schemas.ts), through the one path
// the bus and the KV readers use: @strata/codec's decode() with the message's schema.
// Inputs are arbitrary bytes; raw CBOR items built to be awkward (cbor-bytes.ts);
// truncated, bit-flipped and spliced encodings of the golden vectors and of values
// drawn from the schemas; and vector values with one member replaced by something
// hostile (wrong types, 64-bit integers out of range, NaN, undefined, huge or deeply
// nested arrays and maps, dates, sets, tags). Each decode must either return a value
// that re-encodes and decodes to the same value, or throw StrataError INVALID: no other
// exception, nothing slow, and no effect on the next decode.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Encoder, Tag } from 'cbor-x';
import fc from 'fast-check';
import { decode, decodeUntyped, encode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { PAIRS } from '../../../proto/test/rule-schemas';
import { deepItem, cborItem } from '../cbor-bytes';
import { arbitraryOf } from '../zod-arbitrary';
import { mutate, mutationArb, type Mutation } from '../mutation';
import type { FuzzTarget } from './target';

/** A decode slower than this on a message of a few KiB is a bug (a 1 MiB NATS message decodes in milliseconds). */
const SLOW_DECODE_MS = 1_000;

interface Vector {
  rule: string;
  bytes: Buffer;
}

/** Every golden vector, valid and invalid, whose rule has a schema. */
function loadVectors(): Vector[] {
  const dir = path.join(__dirname, '..', '..', '..', 'proto', 'vectors');
  const rules = new Set(PAIRS.map((p) => p.rule));
  const vectors: Vector[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const content = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { valid: { rule: string; hex: string }[]; invalid: { rule: string; hex: string }[] };
    for (const v of [...content.valid, ...content.invalid]) if (rules.has(v.rule)) vectors.push({ rule: v.rule, bytes: Buffer.from(v.hex, 'hex') });
  }
  return vectors;
}

const vectors = loadVectors();
const validVectors = vectors.filter((v) => {
  try {
    decode(v.bytes, schemaOf(v.rule));
    return true;
  } catch {
    return false;
  }
});

function schemaOf(rule: string) {
  const pair = PAIRS.find((p) => p.rule === rule);
  assert.ok(pair !== undefined, `no schema for rule ${rule}`);
  return pair.schema;
}

// An encoder like the codec's, without its checks, for values the codec refuses to write.
const rawEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);

/**
 * A big value, built only when the input is run: fast-check prints a counterexample
 * by walking it, and deep nesting would overflow its stack (deeper
 * nesting than cbor-x can encode comes as raw bytes, from cbor-bytes.ts).
 */
class Built {
  constructor(
    readonly description: string,
    readonly build: () => unknown,
  ) {}
  [fc.toStringMethod](): string {
    return `<${this.description}>`;
  }
}

/** Values that do not belong in any message, or only at the edge of one. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, undefined, null, true, 1.5, 2 ** 53, -(2 ** 53), 2 ** 64, -1),
  fc.constantFrom(2n ** 64n, 2n ** 64n - 1n, -(2n ** 64n), 2n ** 63n, 2n ** 53n, -1n),
  fc.bigInt(-(2n ** 80n), 2n ** 80n),
  fc.string({ maxLength: 8 }),
  fc.constantFrom('x'.repeat(5000), '', '\0', '\ud800'),
  fc.uint8Array({ maxLength: 8 }),
  fc.constant(new Date(0)),
  fc.constant(new Map<string, unknown>([['a', 1]])),
  fc.constant(new Set([1, 2])),
  fc.constant(/x+/),
  fc.tuple(fc.nat(300), fc.jsonValue({ maxDepth: 1 })).map(([tag, value]) => new Tag(value, tag)),
  fc.integer({ min: 0, max: 200_000 }).map((n) => new Built(`an array of ${n} zeros`, () => new Array<number>(n).fill(0))),
  fc.integer({ min: 0, max: 20_000 }).map((n) => new Built(`a map of ${n} members`, () => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])))),
  fc.integer({ min: 1, max: 1_000 }).map(
    (depth) =>
      new Built(`${depth} nested arrays`, () => {
        let v: unknown = 0;
        for (let i = 0; i < depth; i++) v = [v];
        return v;
      }),
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Every path to a member of a decoded value, the value itself first. */
function pathsOf(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (out.length > 200) return out;
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

function replaceAt(value: unknown, where: (string | number)[], replacement: unknown): unknown {
  if (where.length === 0) return replacement;
  const [first, ...rest] = where;
  const copy = (Array.isArray(value) ? [...(value as unknown[])] : { ...(value as Record<string, unknown>) }) as Record<string | number, unknown>;
  copy[first!] = replaceAt(copy[first!], rest, replacement);
  return copy;
}

type Source =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'item'; bytes: Buffer }
  | { kind: 'vector'; index: number; mutation: Mutation }
  | { kind: 'replaced'; index: number; where: number; value: unknown; mutation: Mutation }
  | { kind: 'schema-value'; value: unknown; mutation: Mutation };

export interface CborInput {
  /** The message type, as an index into the rule table. */
  pair: number;
  source: Source;
}

const byteMutation: fc.Arbitrary<Mutation> = fc.oneof({ arbitrary: fc.constant({ kind: 'none' as const }), weight: 2 }, { arbitrary: mutationArb, weight: 3 });
const splice: fc.Arbitrary<Mutation> = fc.oneof(byteMutation, fc.record({ kind: fc.constant('insert' as const), at: fc.integer({ min: 0, max: 1_000_000 }), bytes: cborItem }));

export const cborInput: fc.Arbitrary<CborInput> = fc.nat(PAIRS.length - 1).chain((pair) =>
  fc.record({
    pair: fc.constant(pair),
    source: fc.oneof(
      fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
      fc.record({ kind: fc.constant('item' as const), bytes: fc.oneof({ arbitrary: cborItem, weight: 6 }, { arbitrary: deepItem, weight: 1 }) }),
      fc.record({ kind: fc.constant('vector' as const), index: fc.nat(vectors.length - 1), mutation: splice }),
      fc.record({ kind: fc.constant('replaced' as const), index: fc.nat(validVectors.length - 1), where: fc.nat(), value: hostileValue, mutation: fc.oneof({ arbitrary: fc.constant({ kind: 'none' as const }), weight: 4 }, { arbitrary: byteMutation, weight: 1 }) }),
      fc.record({ kind: fc.constant('schema-value' as const), value: arbitraryOf(PAIRS[pair]!.schema), mutation: fc.oneof({ arbitrary: fc.constant({ kind: 'none' as const }), weight: 4 }, { arbitrary: byteMutation, weight: 1 }) }),
    ),
  }),
);

/**
 * The bytes of an input and the schema they are decoded with: a vector is decoded
 * with its own rule's schema, so that a mutation lands next to a valid message.
 */
export function materialise(input: CborInput): { bytes: Uint8Array; rule: string } {
  const source = input.source;
  const ownRule = PAIRS[input.pair]!.rule;
  switch (source.kind) {
    case 'bytes':
    case 'item':
      return { bytes: source.bytes, rule: ownRule };
    case 'vector': {
      const v = vectors[source.index]!;
      return { bytes: mutate(v.bytes, source.mutation), rule: v.rule };
    }
    case 'replaced': {
      const v = validVectors[source.index]!;
      const value = decodeUntyped(v.bytes);
      const paths = pathsOf(value);
      const replacement = source.value instanceof Built ? source.value.build() : source.value;
      const changed = replaceAt(value, paths[source.where % paths.length]!, replacement);
      return { bytes: mutate(Buffer.from(rawEncoder.encode(changed)), source.mutation), rule: v.rule };
    }
    case 'schema-value':
      return { bytes: mutate(Buffer.from(rawEncoder.encode(source.value)), source.mutation), rule: ownRule };
  }
}

/**
 * A value as the codec means it, for comparing two decodes: `{a: undefined}` and `{}`
 * are the same message (an absent optional member is not written), and an integer is
 * the same whether it arrives as a number or a bigint (the codec writes every integer
 * in its shortest form and the schemas choose the type; only a member typed `unknown`
 * keeps whichever it got), and a byte string is the same whatever its class.
 */
function canonical(value: unknown): unknown {
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : value;
  // A byte string is its bytes: cbor-x gives a Buffer, or a plain Uint8Array for tag 64.
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, canonical(v)]));
}

/** Decodes as a receiver does; returns the value, or undefined after the one allowed refusal. */
function decodeOrRefuse(bytes: Uint8Array, rule: string): { value: unknown } | undefined {
  try {
    return { value: decode(bytes, schemaOf(rule)) };
  } catch (err) {
    if (err instanceof StrataError && err.code === ErrorCode.INVALID) return undefined;
    throw new Error(`decoding as ${rule} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} instead of StrataError INVALID`, { cause: err });
  }
}

// A message decoded after every input: a failed decode must leave nothing behind.
const canary = validVectors[0]!;
const canaryValue = decode(canary.bytes, schemaOf(canary.rule));

export function checkCbor(input: CborInput): void {
  const { bytes, rule } = materialise(input);
  checkDecode(bytes, rule);
}

/** The target's check on one message: INVALID, or a value that survives a round trip; no other effect. */
export function checkDecode(bytes: Uint8Array, rule: string): void {
  // CPU time, not wall time: the long run shares the machine (at low priority), and a
  // decode that waited for the CPU is not a slow one. The process's CPU time counts
  // the garbage collector's threads too, so a slow decode is timed once more: an input
  // that is slow to decode is slow every time, a collection that ran meanwhile is not.
  const timed = (): { decoded: ReturnType<typeof decodeOrRefuse>; cpuMs: number } => {
    const started = process.cpuUsage();
    const decoded = decodeOrRefuse(bytes, rule);
    const used = process.cpuUsage(started);
    return { decoded, cpuMs: (used.user + used.system) / 1000 };
  };
  let { decoded, cpuMs } = timed();
  if (cpuMs >= SLOW_DECODE_MS) ({ decoded, cpuMs } = timed());
  assert.ok(cpuMs < SLOW_DECODE_MS, `decoding ${bytes.length} bytes as ${rule} took ${cpuMs.toFixed(0)} ms of CPU, twice`);
  if (decoded !== undefined) {
    let again: Uint8Array;
    try {
      again = encode(decoded.value);
    } catch (err) {
      throw new Error(`a value accepted as ${rule} cannot be encoded again: ${(err as Error).message}`, { cause: err });
    }
    const roundTrip = decodeOrRefuse(again, rule);
    assert.ok(roundTrip !== undefined, `a value accepted as ${rule}, encoded again, is refused`);
    assert.ok(isDeepStrictEqual(canonical(roundTrip.value), canonical(decoded.value)), `a value accepted as ${rule} changes in a round trip`);
  }
  assert.ok(isDeepStrictEqual(decode(canary.bytes, schemaOf(canary.rule)), canaryValue), 'a decode after this input no longer reads a golden vector the same');
}

export const cborTarget: FuzzTarget<CborInput> = {
  name: 'cbor',
  arbitrary: cborInput,
  check: checkCbor,
};
