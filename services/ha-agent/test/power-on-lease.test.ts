// How an agent takes a VM's power-on lease: only on the revision the master found
// free or expired, always at the next epoch.
import { planTake, runUntil } from '../src/power-on-lease';

const rec = (holder: string, epoch: number) => ({ holder, epoch, renewedAtMs: 1, ttlMs: 4_000 });

describe('planTake', () => {
  test('no record and revision 0: create at epoch 1', () => {
    expect(planTake(null, 0, 'n2', 4_000, 77)).toEqual({ kind: 'create', revision: 0, record: { holder: 'n2', epoch: 1, renewedAtMs: 77, ttlMs: 4_000 } });
  });

  test('the named revision: take it at the next epoch, from a released or an expired holder alike', () => {
    expect(planTake({ revision: 12, record: rec('', 3) }, 12, 'n2', 4_000, 5)).toMatchObject({ kind: 'update', revision: 12, record: { holder: 'n2', epoch: 4 } });
    expect(planTake({ revision: 12, record: rec('n1', 3) }, 12, 'n2', 4_000, 5)).toMatchObject({ kind: 'update', record: { holder: 'n2', epoch: 4 } });
  });

  test('any other revision is a conflict that says who holds it', () => {
    expect(planTake({ revision: 13, record: rec('n3', 4) }, 12, 'n2', 4_000, 5)).toEqual({ kind: 'conflict', reason: 'the power-on lease changed since the master looked (revision 13, not 12: held by n3 at epoch 4)' });
    expect(planTake({ revision: 13, record: rec('n3', 4) }, 0, 'n2', 4_000, 5).kind).toBe('conflict');
    expect(planTake(null, 12, 'n2', 4_000, 5).kind).toBe('conflict');
  });
});

test('runUntil: the TTL less the drift bound less the power-off margin, from when the write was sent', () => {
  expect(runUntil(1_000, 4_000, 0.1, 500)).toBe(1_000 + 3_600 - 500);
});
