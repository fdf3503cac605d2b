// The failure detector's rules under a simulated clock.
import { FailureDetector, type RecordedNode } from '@strata/liveness';

const dead = 6_000;
const node = (liveness: RecordedNode['liveness'], incarnation = 1): RecordedNode => ({ id: 7n, liveness, incarnation });

describe('failure detector', () => {
  it('declares an alive node dead only after deadTimeoutMs without a new heartbeat', () => {
    const fd = new FailureDetector(dead, 0);
    fd.observe(7n, { incarnation: 1, seq: 1 }, 1_000);
    fd.observe(7n, { incarnation: 1, seq: 2 }, 2_000);
    // The same heartbeat seen again is not a sign of life.
    fd.observe(7n, { incarnation: 1, seq: 2 }, 5_000);
    expect(fd.evaluate([node('alive')], 2_000 + dead - 1)).toEqual([]);
    expect(fd.evaluate([node('alive')], 2_000 + dead)).toEqual([{ kind: 'dead', id: 7n, incarnation: 1, silentMs: dead }]);
  });

  it('gives every node a full timeout from the leader start when it has seen nothing yet', () => {
    const fd = new FailureDetector(dead, 10_000);
    expect(fd.evaluate([node('alive')], 10_000 + dead - 1)).toEqual([]);
    expect(fd.evaluate([node('alive')], 10_000 + dead)).toMatchObject([{ kind: 'dead' }]);
  });

  it('keeps a dead node dead when the old incarnation resumes, and revives it with a new one', () => {
    const fd = new FailureDetector(dead, 0);
    fd.observe(7n, { incarnation: 3, seq: 99 }, 20_000);
    expect(fd.evaluate([node('dead', 3)], 20_001)).toEqual([]);
    fd.observe(7n, { incarnation: 4, seq: 1 }, 21_000);
    expect(fd.evaluate([node('dead', 3)], 21_001)).toEqual([{ kind: 'alive', id: 7n, incarnation: 4, previous: 'dead' }]);
  });

  it('ignores a paused twin with a lower incarnation after a restart', () => {
    const fd = new FailureDetector(dead, 0);
    fd.observe(7n, { incarnation: 5, seq: 1 }, 1_000);
    fd.observe(7n, { incarnation: 4, seq: 50 }, 6_000);
    expect(fd.evaluate([node('alive', 5)], 1_000 + dead)).toMatchObject([{ kind: 'dead', incarnation: 5 }]);
  });

  it('reports a restart when an alive node shows a higher incarnation', () => {
    const fd = new FailureDetector(dead, 0);
    fd.observe(7n, { incarnation: 2, seq: 1 }, 100);
    expect(fd.evaluate([node('alive', 1)], 200)).toEqual([{ kind: 'restarted', id: 7n, incarnation: 2, previousIncarnation: 1 }]);
  });

  it('marks an unknown node alive at its first heartbeat, and leaves a silent one unknown', () => {
    const fd = new FailureDetector(dead, 0);
    expect(fd.evaluate([node('unknown', 0)], 10 * dead)).toEqual([]);
    fd.observe(7n, { incarnation: 1, seq: 1 }, 10 * dead);
    expect(fd.evaluate([node('unknown', 0)], 10 * dead + 1)).toEqual([{ kind: 'alive', id: 7n, incarnation: 1, previous: 'unknown' }]);
  });
});
