// The lease driver's expiry: a holder whose renewals fail must hear onLost once its
// validity runs out, even when the timer that checks it fires before the clock has
// reached the target (Node timers may fire about a millisecond early). The store is
// a fake that accepts the first write and fails every later one.
import { ErrorCode, StrataError } from '@strata/errors';
import type { LeaseRecord } from '../src/decide';
import { Lease, type LeaseBucket } from '../src/lease';

function flakyStore(): LeaseBucket {
  let record: { value: LeaseRecord; revision: number } | null = null;
  const unavailable = (): Promise<never> => Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'store unreachable'));
  const store = {
    get: () => (record === null ? Promise.resolve(null) : unavailable()),
    create: (_key: string, value: LeaseRecord) => {
      record = { value, revision: 1 };
      return Promise.resolve(1);
    },
    update: unavailable,
  };
  return store as unknown as LeaseBucket;
}

test.each([0, 3])('a holder whose renewals fail hears the loss when its validity ends (clock %i ms behind the timers)', async (lagMs) => {
  const lost: string[] = [];
  let acquiredAt = 0;
  const lease = new Lease(flakyStore(), {
    key: 'role.test',
    holder: 'me',
    ttlMs: 300,
    // A clock that reads behind what the timers go by, as when a timer fires early.
    now: () => performance.now() - lagMs,
    onAcquired: () => (acquiredAt = performance.now()),
    onLost: (_epoch, why) => lost.push(why),
  });
  lease.start();
  const deadline = performance.now() + 3_000;
  while (lost.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await lease.stop({ release: false });
  expect(acquiredAt).toBeGreaterThan(0);
  expect(lost).toEqual(['renewal overdue']);
  expect(lease.isHeld()).toBe(false);
});
