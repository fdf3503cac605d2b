// Recognises the JetStream failures that mean "your expectation about the last
// sequence was wrong", which every compare-and-set in Strata turns into a typed error.
import { ErrorCode, StrataError } from '@strata/errors';

const WRONG_LAST_SEQUENCE = 10071;

export function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e?.code === WRONG_LAST_SEQUENCE || (typeof e?.message === 'string' && /wrong last sequence/i.test(e.message));
}

/** Wraps a transport failure of a KV operation as UNAVAILABLE (retryable). */
export function kvUnavailable(what: string, err: unknown): StrataError {
  return new StrataError(ErrorCode.UNAVAILABLE, `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
