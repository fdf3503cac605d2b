// fast-check arbitraries from zod schemas: values shaped like the messages of proto/src,
// so that the CBOR target spends its time on values the schemas nearly accept (and the
// round trip of those they do accept) rather than on random bytes alone. It reads zod
// 4's schema definitions (`schema._zod.def`). Refinements are not solved: a number
// that must be a multiple of 512 is one often enough because the integers lean towards
// such multiples, and the schema decides.
import fc from 'fast-check';
import type { z } from 'zod';

interface Def {
  type: string;
  [key: string]: unknown;
}

const defOf = (schema: unknown): Def => (schema as { _zod: { def: Def } })._zod.def;

/** Plain data of the kind a z.unknown() field carries in practice. */
export const plainValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 12 }),
    fc.uint8Array({ maxLength: 8 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 3 }),
  ),
})).value;

const integerArb = fc.oneof(
  fc.nat(4096),
  fc.nat(1 << 20).map((n) => n * 512),
  fc.nat(1 << 20).map((n) => n * 4096),
  fc.constantFrom(0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
  fc.maxSafeNat(),
);
const numberArb = fc.oneof({ arbitrary: integerArb, weight: 4 }, { arbitrary: fc.double(), weight: 1 });
const bigintArb = fc.oneof(fc.bigInt(0n, 2n ** 64n - 1n), fc.bigInt(0n, 1000n));

function stringArb(def: Def): fc.Arbitrary<string> {
  const checks = ((def.checks as { _zod: { def: Record<string, unknown> } }[] | undefined) ?? []).map((c) => c._zod.def);
  const pattern = checks.find((c) => c.check === 'string_format' && c.pattern instanceof RegExp)?.pattern as RegExp | undefined;
  const maxLength = checks.find((c) => c.check === 'max_length')?.maximum as number | undefined;
  const minLength = checks.find((c) => c.check === 'min_length')?.minimum as number | undefined;
  const free = fc.string({ minLength: minLength ?? 0, maxLength: Math.min(maxLength ?? 16, 16) });
  return pattern === undefined ? free : fc.oneof({ arbitrary: fc.stringMatching(pattern), weight: 4 }, { arbitrary: free, weight: 1 });
}

const cache = new WeakMap<object, fc.Arbitrary<unknown>>();

/** An arbitrary of the schema's input values (what arrives on the wire), or near enough. */
export function arbitraryOf(schema: z.ZodType): fc.Arbitrary<unknown> {
  const cached = cache.get(schema);
  if (cached !== undefined) return cached;
  // Cached before the walk, so that a recursive schema ties back to it.
  const slot: { built?: fc.Arbitrary<unknown> } = {};
  cache.set(schema, fc.constant(null).chain(() => slot.built!));
  slot.built = build(defOf(schema));
  cache.set(schema, slot.built);
  return slot.built;
}

function build(def: Def): fc.Arbitrary<unknown> {
  switch (def.type) {
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      const requiredKeys = Object.keys(shape).filter((k) => !['optional', 'default'].includes(defOf(shape[k]).type));
      const model = Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, arbitraryOf(s)]));
      return fc.record(model, { requiredKeys });
    }
    case 'string':
      return stringArb(def);
    case 'literal':
      return fc.constantFrom(...(def.values as unknown[]));
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries as Record<string, unknown>));
    case 'array':
      return fc.array(arbitraryOf(def.element as z.ZodType), { maxLength: 4 });
    case 'boolean':
      return fc.boolean();
    case 'number':
      return numberArb;
    case 'bigint':
      return bigintArb;
    case 'union':
      return fc.oneof(...(def.options as z.ZodType[]).map(arbitraryOf));
    case 'record':
      return fc.dictionary(arbitraryOf(def.keyType as z.ZodType) as fc.Arbitrary<string>, arbitraryOf(def.valueType as z.ZodType), { maxKeys: 3 });
    case 'optional':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return arbitraryOf(def.innerType as z.ZodType);
    case 'nullable':
      return fc.option(arbitraryOf(def.innerType as z.ZodType), { nil: null });
    case 'pipe':
      return arbitraryOf(def.in as z.ZodType);
    case 'lazy':
      return arbitraryOf((def.getter as () => z.ZodType)());
    case 'custom':
      // The only custom schema in proto/src is the byte string.
      return fc.uint8Array({ maxLength: 16 });
    case 'unknown':
    case 'any':
      return plainValue;
    default:
      return plainValue;
  }
}
