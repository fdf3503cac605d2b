// How a backend failure is told to an NBD client: the spec allows only a few errnos,
// so Strata's error codes fold into them. No failure ever becomes a success.
import { ErrorCode, StrataError } from '@strata/errors';
import { NbdErrno } from './protocol';

/**
 * INVALID → EINVAL, NO_SPACE → ENOSPC; everything else (UNAVAILABLE or NOT_OWNER
 * after the bus's retries, TIMEOUT, CHECKSUM, INTERNAL, and any non-Strata
 * exception, which is a bug) → EIO.
 */
export function errnoFor(err: unknown): NbdErrno {
  if (err instanceof StrataError) {
    if (err.code === ErrorCode.INVALID) return NbdErrno.EINVAL;
    if (err.code === ErrorCode.NO_SPACE) return NbdErrno.ENOSPC;
  }
  return NbdErrno.EIO;
}
