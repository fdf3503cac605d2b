// Periodic work that never overlaps itself: the next run is scheduled when the last
// one ends, so a slow run (a stalled bus) delays the next instead of piling up.
import { assert } from '@strata/errors';

export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  /** `run` must not throw: it reports its own failures. */
  constructor(
    private readonly intervalMs: number,
    private readonly run: () => Promise<void>,
  ) {
    assert(Number.isInteger(intervalMs) && intervalMs > 0, `a ticker needs a positive whole interval, not ${intervalMs}`);
  }

  /** Starts ticking; the first run is after `firstDelayMs` (default: right away). */
  start(firstDelayMs = 0): void {
    this.schedule(firstDelayMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run().finally(() => {
        this.running = undefined;
        this.schedule(this.intervalMs);
      });
    }, delayMs);
  }

  /** Stops ticking and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }
}
