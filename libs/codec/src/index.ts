// The one place where bytes become typed messages and typed messages become bytes.
//
// Wire format: standard CBOR (RFC 8949) that any decoder reads. cbor-x is set up
// without its record extension, without tagging byte strings, with maps as plain
// objects. Integers are written in their shortest exact form: JavaScript numbers
// at or above 2^32 would otherwise be written as float64, so encode() turns large
// integers into BigInt first. A decoded 64-bit integer arrives as a bigint; the
// schemas in this module turn it back into the type the message declares.
import { Decoder, Encoder, type Options as EncoderOptions } from 'cbor-x';
import { z } from 'zod';
import { ErrorCode, StrataError, assert } from '@strata/errors';
import { structureProblem } from './structure';

export { NESTING_DEPTH_MAX } from './structure';

// useTag259ForMaps is a real cbor-x option that its typings leave out.
const encoderOptions: EncoderOptions & { useTag259ForMaps: boolean } = {
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  useTag259ForMaps: false,
  variableMapSize: true,
};
const encoder = new Encoder(encoderOptions);
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

const TWO_POW_32 = 2 ** 32;
const TWO_POW_64 = 2 ** 64;
const BIG_TWO_POW_64 = 2n ** 64n;

/** Rewrites integers so that cbor-x writes each in its shortest exact form. */
function normaliseIntegers(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      // A whole float of 2^64 or more stays a float: as a BigInt it would need a tag.
      return Number.isInteger(value) && Math.abs(value) >= TWO_POW_32 && Math.abs(value) < TWO_POW_64 ? BigInt(value) : value;
    case 'bigint':
      // CBOR integers reach -2^64 and 2^64 - 1; beyond, cbor-x writes a tag that decode() refuses.
      assert(value >= -BIG_TWO_POW_64 && value < BIG_TWO_POW_64, `cannot encode ${value}: beyond 64 bits`);
      return value >= -BigInt(TWO_POW_32) && value < BigInt(TWO_POW_32) ? Number(value) : value;
    case 'object': {
      if (value === null || value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return value.map(normaliseIntegers);
      // Messages are plain data; a Map, Set or Date here is a programming error.
      assert(Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null, `cannot encode a ${value.constructor?.name ?? 'non-plain object'}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        // An absent optional field is simply not written.
        if (v !== undefined) out[k] = normaliseIntegers(v);
      }
      return out;
    }
    default:
      return value;
  }
}

/** Encodes a message as standard CBOR. */
export function encode(value: unknown): Uint8Array {
  return encoder.encode(normaliseIntegers(value));
}

/** Decodes CBOR without checking its shape; prefer decode() with a schema. */
export function decodeUntyped(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new StrataError(ErrorCode.INVALID, 'malformed CBOR: empty message');
  const problem = structureProblem(bytes);
  if (problem !== undefined) throw new StrataError(ErrorCode.INVALID, `${problem.kind} CBOR: ${problem.why}`);
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new StrataError(ErrorCode.INVALID, `malformed CBOR: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Decodes CBOR and validates it against `schema`. Throws a StrataError INVALID that
 * names the first offending field (`spec.sizeBytes: ...`) when the data does not fit.
 * Byte strings in the result are views into `bytes`: copy them to keep them longer.
 */
export function decode<S extends z.ZodType>(bytes: Uint8Array, schema: S): z.output<S> {
  return validate(decodeUntyped(bytes), schema);
}

/** Validates an already-decoded value; the error names the field. */
export function validate<S extends z.ZodType>(value: unknown, schema: S): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new StrataError(ErrorCode.INVALID, describeIssues(result.error));
}

/** `spec.sizeBytes: must be a multiple of 512; name: required` */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(message)';
      if (issue.code === 'unrecognized_keys') {
        return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
      }
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

// ---- Field types shared by every message schema -------------------------------

const MAX_U64 = 2n ** 64n - 1n;

/** A non-negative integer that fits a JavaScript number exactly (offsets, sizes, sequences). */
export const uint = z
  .union([z.number(), z.bigint()])
  .refine((v) => (typeof v === 'bigint' ? v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) : Number.isSafeInteger(v) && v >= 0), {
    message: 'must be a non-negative integer below 2^53',
  })
  .transform((v) => Number(v));

/** A 64-bit unsigned identifier, carried as a bigint so no bit is ever lost. */
export const u64 = z
  .union([z.number(), z.bigint()])
  .refine((v) => (typeof v === 'bigint' ? v >= 0n && v <= MAX_U64 : Number.isSafeInteger(v) && v >= 0), {
    message: 'must be an unsigned 64-bit integer',
  })
  .transform((v) => BigInt(v));

/** A byte string (never base64). */
export const bytes = z.instanceof(Uint8Array, { message: 'must be a byte string' });

export type { z };
