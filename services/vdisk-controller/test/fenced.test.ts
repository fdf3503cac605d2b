// A request fenced at the controller reaches its caller as NOT_OWNER (retryable: the
// io-director learns the owner and sends it again), never as FENCED, which the
// gateway would answer with EIO.
import { ErrorCode, StrataError } from '@strata/errors';
import { fencedAsNotOwner } from '../src/controller';

test('FENCED becomes NOT_OWNER, naming why; other errors pass unchanged', () => {
  const fenced = new StrataError(ErrorCode.FENCED, 'oplog.11: another owner appended after sequence 68250; this node no longer owns the vDisk');
  const out = fencedAsNotOwner(fenced, 11n) as StrataError;
  expect(out).toMatchObject({ code: ErrorCode.NOT_OWNER, retryable: true, message: expect.stringContaining('another owner appended after sequence 68250') });
  expect(out.cause).toBe(fenced);
  const other = new StrataError(ErrorCode.TIMEOUT, 'the oplog is full');
  expect(fencedAsNotOwner(other, 11n)).toBe(other);
});
