// The copies' byte budget, the recent rate and the time left, under a simulated clock.
import { ByteBudget, RateMeter, etaMs } from '../src/rate';

describe('copy pacing', () => {
  it('spaces requests so the bytes stay within the budget, with at most a second of burst after idling', () => {
    const budget = new ByteBudget(1000);
    expect(budget.take(500, 0)).toBe(0);
    expect(budget.take(500, 0)).toBe(0);
    // A second's worth has gone: the next waits its turn.
    expect(budget.take(500, 0)).toBe(0);
    expect(budget.take(1000, 100)).toBe(400);
    // Idle for a long time: no more than a second's worth at once.
    expect(budget.take(1000, 100_000)).toBe(0);
    expect(budget.take(1000, 100_000)).toBe(0);
    expect(budget.take(1000, 100_000)).toBe(1000);
  });

  it('measures the rate over the recent window and estimates the time left', () => {
    const meter = new RateMeter(10_000);
    expect(meter.bytesPerSec(0)).toBe(0);
    meter.add(4000, 0);
    meter.add(4000, 2000);
    expect(meter.bytesPerSec(4000)).toBe(2000);
    expect(meter.bytesPerSec(20_000)).toBe(0);
    expect(etaMs(10_000, 2000)).toBe(5000);
    expect(etaMs(0, 2000)).toBeUndefined();
    expect(etaMs(10, 0)).toBeUndefined();
  });
});
