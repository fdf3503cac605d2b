// The high-class guard under a simulated clock: windows of 100 ms with made-up stall
// and latency figures, checking when the lower classes' limit falls, how far, when it
// recovers, and that it goes once high-class I/O stops.
import { HighClassGuard, type GuardOptions } from '../src/guard';

const options: GuardOptions = { windowMs: 100, targetUs: 300, floorCostPerSec: 50, highIdleMs: 1000 };

/** Runs one window ending at `endMs`: a high request of `latencyUs` every 10 ms, the lower classes dispatching `lowerRate` cost a second. */
function windowOf(g: HighClassGuard, endMs: number, figures: { stallUs: number; latencyUs: number; lowerRate: number }, lowerTotal: { cost: number }): number | undefined {
  for (let t = endMs - 100; t < endMs; t += 10) {
    g.noteHighArrival(t);
    g.noteHighDone(figures.latencyUs);
  }
  lowerTotal.cost += figures.lowerRate / 10;
  return g.endWindow(endMs, figures.stallUs, lowerTotal.cost);
}

describe('HighClassGuard', () => {
  it('sets no limit while the high class sees no more than its usual stall and latency, however high those are', () => {
    const g = new HighClassGuard(options);
    const total = { cost: 0 };
    // A steady 600 µs stall and 800 µs latency: the high class's own, nothing on top.
    for (let i = 1; i <= 30; i++) expect(windowOf(g, i * 100, { stallUs: 600, latencyUs: 800, lowerRate: 5000 }, total)).toBeUndefined();
  });

  it.each([
    ['the event loop stalls', { stallUs: 2000, latencyUs: 100 }],
    ['high-class requests slow down', { stallUs: 200, latencyUs: 1500 }],
  ])('halves the lower classes from what they used, down to the floor, when %s', (_what, bad) => {
    const g = new HighClassGuard(options);
    const total = { cost: 0 };
    for (let i = 1; i <= 10; i++) windowOf(g, i * 100, { stallUs: 200, latencyUs: 100, lowerRate: 4000 }, total);
    const limits = [];
    for (let i = 11; i <= 20; i++) limits.push(windowOf(g, i * 100, { ...bad, lowerRate: 4000 }, total));
    // Half of the 4000 they used, then half again each window, never below 50.
    expect(limits.slice(0, 4)).toEqual([2000, 1000, 500, 250]);
    expect(limits.at(-1)).toBe(50);
    expect(Math.min(...(limits as number[]))).toBe(50);
  });

  it('lets the lower classes back up by a quarter a window once the high class is well again, up to twice what they use', () => {
    const g = new HighClassGuard(options);
    const total = { cost: 0 };
    for (let i = 1; i <= 5; i++) windowOf(g, i * 100, { stallUs: 100, latencyUs: 100, lowerRate: 50 }, total);
    for (let i = 6; i <= 15; i++) windowOf(g, i * 100, { stallUs: 5000, latencyUs: 100, lowerRate: 50 }, total);
    expect(g.lowerLimit).toBe(50);
    // Well again, with the lower classes using all they are given.
    let rate = 50;
    const limits = [];
    for (let i = 16; i <= 19; i++) {
      const limit = windowOf(g, i * 100, { stallUs: 100, latencyUs: 100, lowerRate: rate }, total)!;
      limits.push(limit);
      rate = limit;
    }
    expect(limits).toEqual([62.5, 78.125, 97.65625, 122.0703125]);
    // Using only 10 a second: the limit follows down to twice that, kept at the floor.
    expect(windowOf(g, 2000, { stallUs: 100, latencyUs: 100, lowerRate: 10 }, total)).toBe(50);
  });

  it('lifts the limit once no high-class request came for highIdleMs', () => {
    const g = new HighClassGuard(options);
    const total = { cost: 0 };
    for (let i = 1; i <= 3; i++) windowOf(g, i * 100, { stallUs: 100, latencyUs: 100, lowerRate: 1000 }, total);
    expect(windowOf(g, 400, { stallUs: 5000, latencyUs: 100, lowerRate: 1000 }, total)).toBe(500);
    expect(g.highActive(400)).toBe(true);
    // The last high request was at 390 ms: still active at 1390, not at 1391.
    expect(g.endWindow(1390, 0, total.cost)).toBe(50);
    expect(g.endWindow(1391, 0, total.cost)).toBeUndefined();
    expect(g.highActive(1391)).toBe(false);
  });
});
