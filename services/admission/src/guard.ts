// Keeps high-priority I/O fast while lower classes are busy, the way Linux's
// blk-iolatency protects a cgroup: watch what the protected class suffers, and while
// it suffers, throttle everyone below it; when it no longer does, let them back up.
//
// Strict priority in the queue is not enough. A high-priority vDisk at queue depth 1
// has nothing waiting between its requests, so a work-conserving scheduler hands every
// free slot to the low-priority vDisk beside it; and what then delays the high
// request is not the queue but the lower classes' work in the same processes (their
// appends, checksums, socket writes), which the event loop runs before it. So the
// guard limits how much cost the lower classes dispatch per second (the scheduler's
// setLowerClassLimit) while high-class I/O is active:
//
// - every window (100 ms), it looks at two signs of suffering, each against the best
//   window of the last five seconds: how long the event loop kept a newly ready
//   callback waiting (the actor's probe, a high quantile of the window), and the mean
//   time of the window's high-class requests in admission and below (this one sees
//   the lower classes' load when the controller runs in another process). Against the
//   best window, not zero: the high class's own work stalls the loop too (a QD1
//   reader alone made the probe's p98 about 0.5 ms), and only what comes on top of
//   that is the lower classes' doing;
// - over the target, the limit halves (from what the lower classes dispatched in the
//   window, if that is less), never below a floor that keeps them moving;
// - within it, the limit grows by a quarter, up to twice what they used;
// - with no high-class request for `highIdleMs`, the limit goes.
//
// Pure: time and measurements come in as arguments; the actor's shell runs the timer
// and the probe. Unit-tested with a simulated clock.
import { assert } from '@strata/errors';

export interface GuardOptions {
  /** How often the limit is reconsidered, ms. */
  windowMs: number;
  /** The most extra stall and high-class slowdown tolerated (over their best recent window), µs: above it the lower classes are throttled. */
  targetUs: number;
  /** The lower classes' limit never goes below this, cost units a second (their guaranteed progress). */
  floorCostPerSec: number;
  /** With no high-class request for this long, the lower classes run free again, ms. */
  highIdleMs: number;
}

/** How many windows the best (lowest) stall and high-class latency are remembered for. */
const BASELINE_WINDOWS = 50;

/** A measurement's excess over the lowest of its recent windows; records it among them. */
class Baseline {
  private readonly recent: number[] = [];

  excess(value: number): number {
    this.recent.push(value);
    if (this.recent.length > BASELINE_WINDOWS) this.recent.shift();
    return value - Math.min(...this.recent);
  }

  clear(): void {
    this.recent.length = 0;
  }
}

const DECREASE = 0.5;
const INCREASE = 1.25;

export class HighClassGuard {
  private lastHighMs = Number.NEGATIVE_INFINITY;
  private windowStartMs: number | undefined;
  private highCount = 0;
  private highSumUs = 0;
  private readonly latencyBaseline = new Baseline();
  private readonly stallBaseline = new Baseline();
  private lowerCostAtStart = 0;
  private limit: number | undefined;

  constructor(private readonly options: GuardOptions) {
    const { windowMs, targetUs, floorCostPerSec, highIdleMs } = options;
    assert(windowMs > 0 && targetUs > 0 && floorCostPerSec > 0 && highIdleMs >= windowMs, 'guard options: windowMs, targetUs and floorCostPerSec positive, highIdleMs at least windowMs');
  }

  /** A high-class request was submitted. */
  noteHighArrival(nowMs: number): void {
    this.lastHighMs = nowMs;
  }

  /** A high-class request finished after `latencyUs` in admission and below. */
  noteHighDone(latencyUs: number): void {
    this.highCount++;
    this.highSumUs += latencyUs;
  }

  /** Whether high-class I/O is active (a request within highIdleMs). */
  highActive(nowMs: number): boolean {
    return nowMs - this.lastHighMs <= this.options.highIdleMs;
  }

  /**
   * Ends a window: `stallUs` is the window's event-loop stall, a high quantile of the probe's samples (0 when not measured),
   * `lowerCostTotal` the scheduler's lowerCostDispatched. Returns the lower classes'
   * limit for the next window, cost units a second (undefined: none).
   */
  endWindow(nowMs: number, stallUs: number, lowerCostTotal: number): number | undefined {
    const startMs = this.windowStartMs ?? nowMs - this.options.windowMs;
    const lowerRate = ((lowerCostTotal - this.lowerCostAtStart) * 1000) / Math.max(1, nowMs - startMs);
    const meanUs = this.highCount === 0 ? undefined : this.highSumUs / this.highCount;
    this.windowStartMs = nowMs;
    this.lowerCostAtStart = lowerCostTotal;
    this.highCount = 0;
    this.highSumUs = 0;

    if (!this.highActive(nowMs)) {
      this.limit = undefined;
      this.latencyBaseline.clear();
      this.stallBaseline.clear();
      return undefined;
    }
    const slowdownUs = meanUs === undefined ? 0 : this.latencyBaseline.excess(meanUs);
    const extraStallUs = this.stallBaseline.excess(stallUs);
    const { targetUs, floorCostPerSec } = this.options;
    if (extraStallUs > targetUs || slowdownUs > targetUs) {
      this.limit = Math.max(floorCostPerSec, Math.min(this.limit ?? Infinity, lowerRate) * DECREASE);
    } else if (this.limit !== undefined) {
      this.limit = Math.max(floorCostPerSec, Math.min(this.limit * INCREASE, 2 * lowerRate));
    }
    return this.limit;
  }

  /** The current limit (undefined: none). */
  get lowerLimit(): number | undefined {
    return this.limit;
  }
}
