// What the master makes of a power-on lease: free, held, or expired only after it has
// watched one revision for a whole TTL on its own clock.
import fc from 'fast-check';
import { LeaseObserver, describeLease, leaseState, mayPowerOn } from '../src/lease-view';

const held = (holder: string, epoch: number) => ({ holder, epoch, renewedAtMs: 0, ttlMs: 4_000 });

describe('leaseState', () => {
  test('no record is free at revision 0; a released record is free at its revision', () => {
    expect(leaseState(undefined, 0)).toEqual({ kind: 'free', revision: 0, epoch: 0 });
    expect(leaseState({ revision: 7, record: { ...held('', 3) }, sinceMs: 0 }, 0)).toEqual({ kind: 'free', revision: 7, epoch: 3 });
    expect(mayPowerOn(leaseState(undefined, 0))).toBe(true);
  });

  test('a held record is held for a TTL after it was first seen, expired from then on', () => {
    const seen = { revision: 9, record: held('n1', 4), sinceMs: 1_000 };
    expect(leaseState(seen, 4_999)).toMatchObject({ kind: 'held', holder: 'n1', epoch: 4, expiresInMs: 1 });
    expect(mayPowerOn(leaseState(seen, 4_999))).toBe(false);
    expect(leaseState(seen, 5_000)).toEqual({ kind: 'expired', revision: 9, holder: 'n1', epoch: 4 });
    expect(describeLease(leaseState(seen, 5_000))).toBe('power-on lease epoch 4 of n1 expired');
  });

  test('property: a lease is never called expired before a whole TTL of watching one revision', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3_000 })), { maxLength: 30 }), fc.integer({ min: 0, max: 10_000 }), (changes, lookAfterMs) => {
        let t = 0;
        const observer = new LeaseObserver(() => t);
        let lastChangeAt = 0;
        let revision = 1;
        for (const [bump, gap] of changes) {
          t += gap;
          if (bump > 0) {
            revision += bump;
            lastChangeAt = t;
          }
          observer.observe('poweron.1', revision, held('n1', revision));
        }
        t += lookAfterMs;
        const state = leaseState(observer.get('poweron.1'), t);
        return state.kind !== 'expired' || t - lastChangeAt >= 4_000;
      }),
    );
  });

  test('the observer keeps the first sighting of a revision, and a deletion reads as no record', () => {
    let t = 100;
    const o = new LeaseObserver(() => t);
    o.observe('k', 5, held('n1', 1));
    t = 900;
    o.observe('k', 5, held('n1', 1));
    expect(o.get('k')?.sinceMs).toBe(100);
    o.observe('k', 6, undefined);
    expect(leaseState(o.get('k'), t)).toEqual({ kind: 'free', revision: 0, epoch: 0 });
  });
});
