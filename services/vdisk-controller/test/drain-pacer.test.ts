// The drain pacer with a simulated clock: which vDisks' drains are paced, when, and for how long they pause.
import { DrainPacer } from '../src/drain-pacer';

function pacer(dutyPercent = 10): { p: DrainPacer; clock: { ms: number } } {
  const clock = { ms: 0 };
  return { p: new DrainPacer({ dutyPercent, highActiveMs: 500, pauseMaxMs: 100, now: () => clock.ms }), clock };
}

describe('DrainPacer', () => {
  it('paces lower-class vDisks only while high-class requests keep arriving', () => {
    const { p, clock } = pacer();
    p.note(1n, 'low');
    p.note(2n, 'normal');
    p.note(3n, 'high');
    // The high request at 0 ms makes the next 500 ms "high active".
    expect([p.paced(1n), p.paced(2n), p.paced(3n), p.paced(4n)]).toEqual([true, true, false, true]);
    clock.ms = 500;
    expect(p.paced(1n)).toBe(true);
    clock.ms = 501;
    expect([p.paced(1n), p.paced(2n), p.paced(4n)]).toEqual([false, false, false]);
    // A request that carries no class (no admission in front) changes nothing.
    p.note(3n, undefined);
    expect(p.paced(1n)).toBe(false);
  });

  it('follows a class change, and never paces a high-class vDisk', () => {
    const { p } = pacer();
    p.note(1n, 'high');
    expect(p.paced(1n)).toBe(false);
    p.note(1n, 'low');
    p.note(2n, 'high');
    expect(p.paced(1n)).toBe(true);
  });

  it('pauses so drain is busy its duty share of the time, at most pauseMaxMs at once', () => {
    const { p } = pacer(10);
    p.note(9n, 'high');
    p.note(1n, 'low');
    // 10%: 4 ms of work, 36 ms of pause.
    expect(p.pauseAfterMs(1n, 4)).toBeCloseTo(36, 9);
    expect(p.pauseAfterMs(1n, 50)).toBe(100);
    expect(p.pauseAfterMs(9n, 4)).toBe(0);
    const { p: free } = pacer(100);
    free.note(9n, 'high');
    free.note(1n, 'low');
    expect([free.paced(1n), free.pauseAfterMs(1n, 4)]).toEqual([false, 0]);
    expect(() => pacer(0)).toThrow('dutyPercent');
  });
});
