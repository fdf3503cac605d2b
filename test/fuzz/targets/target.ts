// What a fuzz target is: an arbitrary of inputs and a check that throws when the code
// under test misbehaves on one. The bounded jest pass and the long runner (main.ts)
// both drive targets through fuzzProperty().
import fc from 'fast-check';

export interface FuzzTarget<T> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  /** Throws (or rejects) when the input shows a bug; fc.pre() to skip an input. */
  check(input: T): void | Promise<void>;
}

/** Where to cut a byte stream into chunks, as fractions of its length in millionths. */
export const cutsArbitrary: fc.Arbitrary<number[]> = fc.array(fc.integer({ min: 0, max: 1_000_000 }), { maxLength: 24 });

/** The target as a fast-check property (always async: the NBD targets do I/O on a fake socket). */
export function fuzzProperty<T>(target: FuzzTarget<T>): fc.IAsyncPropertyWithHooks<[T]> {
  return fc.asyncProperty(target.arbitrary, async (input) => {
    await target.check(input);
  });
}
