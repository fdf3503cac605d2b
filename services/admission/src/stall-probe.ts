// How long the event loop keeps a newly ready callback waiting: every `intervalMs` a
// timer fires and schedules an immediate; the time until the immediate runs is the
// rest of that loop iteration, mostly the I/O callbacks already ready (other
// requests' socket reads, replies, drains). A request arriving now waits about as
// long. Only runs while started (the guard starts it while high-class I/O is active).
import { performance } from 'node:perf_hooks';

export class StallProbe {
  private timer: NodeJS.Timeout | undefined;
  private samples: number[] = [];

  constructor(
    private readonly intervalMs: number,
    /** Samples kept per window at most (the oldest go first). */
    private readonly samplesMax = 1024,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      const firedMs = performance.now();
      setImmediate(() => {
        if (this.samples.length >= this.samplesMax) this.samples.shift();
        this.samples.push((performance.now() - firedMs) * 1000);
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.samples = [];
  }

  /** The `quantile` (0..1) of the stalls since the last take, µs (0 without samples); starts a new window. */
  take(quantile: number): number {
    const samples = this.samples.sort((a, b) => a - b);
    this.samples = [];
    if (samples.length === 0) return 0;
    return samples[Math.min(samples.length - 1, Math.floor(quantile * samples.length))]!;
  }
}
