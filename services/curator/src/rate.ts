// Pacing and progress arithmetic of the copies, pure (time passed in as nowMs): a
// bytes-per-second budget shared by every copy, the recent copy rate, and the time
// left at that rate.
import { assert } from '@strata/errors';

/**
 * A budget of `bytesPerSec` over all copies: each request for `bytes` is given the
 * moment it may start, after the bytes granted before it have had their time.
 * Granted time never piles up while idle beyond one second's worth (a burst).
 */
export class ByteBudget {
  private nextFreeMs = -Infinity;

  constructor(private readonly bytesPerSec: number) {
    assert(bytesPerSec > 0, 'a copy budget is positive');
  }

  /** How long to wait before moving `bytes` (0: at once). */
  take(bytes: number, nowMs: number): number {
    const start = Math.max(this.nextFreeMs, nowMs - 1000);
    this.nextFreeMs = start + (bytes * 1000) / this.bytesPerSec;
    return Math.max(0, start - nowMs);
  }
}

/** Bytes copied over the last `windowMs`, as a rate. */
export class RateMeter {
  private readonly samples: Array<{ atMs: number; bytes: number }> = [];

  constructor(private readonly windowMs = 10_000) {}

  add(bytes: number, nowMs: number): void {
    this.samples.push({ atMs: nowMs, bytes });
    this.trim(nowMs);
  }

  /** Bytes per second over the window (0 with nothing in it). */
  bytesPerSec(nowMs: number): number {
    this.trim(nowMs);
    if (this.samples.length === 0) return 0;
    const spanMs = Math.max(1000, nowMs - this.samples[0]!.atMs);
    return Math.round((this.samples.reduce((n, s) => n + s.bytes, 0) * 1000) / spanMs);
  }

  private trim(nowMs: number): void {
    while (this.samples.length > 0 && this.samples[0]!.atMs < nowMs - this.windowMs) this.samples.shift();
  }
}

/** Time to copy `bytesLeft` at `bytesPerSec`: undefined when nothing is left or the rate is unknown. */
export function etaMs(bytesLeft: number, bytesPerSec: number): number | undefined {
  if (bytesLeft <= 0 || bytesPerSec <= 0) return undefined;
  return Math.ceil((bytesLeft * 1000) / bytesPerSec);
}
