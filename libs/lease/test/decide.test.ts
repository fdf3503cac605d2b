// The lease rules under a simulated clock: creation, renewal, expiry only after a
// whole silent TTL on the contender's own clock, epochs that only grow, and loss.
import { decide, validUntil, type LeaseRecord } from '@strata/lease';

const ttlMs = 3_000;
const rec = (holder: string, epoch: number): LeaseRecord => ({ holder, epoch, renewedAtMs: 0, ttlMs });
const base = { me: 'b', heldEpoch: undefined, observation: undefined, wallNowMs: 1, ttlMs };

describe('lease decide', () => {
  it('creates the record with epoch 1 when there is none', () => {
    const d = decide({ ...base, current: null, nowMs: 0 });
    expect(d).toMatchObject({ kind: 'create', record: { holder: 'b', epoch: 1 } });
  });

  it('waits while another holder is within its TTL, measuring from when this contender first saw the revision', () => {
    const current = { revision: 7, record: rec('a', 4) };
    const first = decide({ ...base, current, nowMs: 10_000 });
    expect(first).toEqual({ kind: 'wait', observation: { revision: 7, sinceMs: 10_000 }, expiresInMs: ttlMs });
    if (first.kind !== 'wait') throw new Error('unreachable');
    const later = decide({ ...base, current, observation: first.observation, nowMs: 10_000 + ttlMs - 1 });
    expect(later.kind).toBe('wait');
  });

  it('takes an expired lease with the next epoch, compare-and-set on the revision it watched', () => {
    const current = { revision: 7, record: rec('a', 4) };
    const d = decide({ ...base, current, observation: { revision: 7, sinceMs: 0 }, nowMs: ttlMs });
    expect(d).toMatchObject({ kind: 'take', revision: 7, record: { holder: 'b', epoch: 5 } });
  });

  it('restarts the silence count whenever the revision moves (the holder renewed)', () => {
    const d = decide({ ...base, current: { revision: 8, record: rec('a', 4) }, observation: { revision: 7, sinceMs: 0 }, nowMs: 10 * ttlMs });
    expect(d).toEqual({ kind: 'wait', observation: { revision: 8, sinceMs: 10 * ttlMs }, expiresInMs: ttlMs });
  });

  it('takes a released lease at once, still with a higher epoch', () => {
    const d = decide({ ...base, current: { revision: 9, record: rec('', 6) }, nowMs: 0 });
    expect(d).toMatchObject({ kind: 'take', revision: 9, record: { epoch: 7 } });
  });

  it('does not trust a record with its own name unless it holds that epoch (a restarted twin waits a TTL)', () => {
    const d = decide({ ...base, current: { revision: 3, record: rec('b', 2) }, nowMs: 0 });
    expect(d.kind).toBe('wait');
  });

  it('renews what it holds and notices when it has been superseded', () => {
    const renew = decide({ ...base, heldEpoch: 2, current: { revision: 3, record: rec('b', 2) }, nowMs: 0 });
    expect(renew).toMatchObject({ kind: 'renew', revision: 3, record: { holder: 'b', epoch: 2 } });
    const lost = decide({ ...base, heldEpoch: 2, current: { revision: 4, record: rec('c', 3) }, nowMs: 0 });
    expect(lost).toMatchObject({ kind: 'lost', record: { holder: 'c' } });
  });

  it('never hands out a lower epoch than the record had', () => {
    for (let epoch = 1; epoch < 50; epoch += 7) {
      const d = decide({ ...base, current: { revision: 1, record: rec('', epoch) }, nowMs: 0 });
      expect(d.kind === 'take' && d.record.epoch).toBe(epoch + 1);
    }
  });

  it('ends the holder validity before a contender could take over, for any drift within the bound', () => {
    const sentAtMs = 1_000;
    const holderStops = validUntil(sentAtMs, ttlMs, 0.1);
    // The earliest a contender can take over: it saw the revision no earlier than it
    // was written (after sentAtMs), and waited ttlMs on a clock up to 10% fast.
    const contenderTakesAt = sentAtMs + ttlMs / 1.1;
    expect(holderStops).toBeLessThan(contenderTakesAt);
  });
});
