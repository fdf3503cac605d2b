// The two concurrency limits of a disk: operations on one extent group run one at a
// time (a per-key mutex), and only so many operations touch the disk at once (a
// counting semaphore). Both are FIFO, so no waiter starves.
import { assert } from '@strata/errors';

/** Runs functions one at a time per key; different keys run in parallel. */
export class KeyedMutex {
  /** The promise that settles when the last queued holder of each key is done. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Number of keys that have a holder or waiters right now. */
  get activeKeys(): number {
    return this.tails.size;
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    this.tails.set(key, mine);
    try {
      if (previous !== undefined) await previous;
      return await fn();
    } finally {
      release();
      // Only the last holder in line removes the key: a later one has replaced the tail.
      if (this.tails.get(key) === mine) this.tails.delete(key);
    }
  }
}

/** At most `limit` holders at once; the others wait in arrival order. */
export class Semaphore {
  private held = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly limit: number) {
    assert(Number.isInteger(limit) && limit > 0, `a semaphore needs a positive whole limit, not ${limit}`);
  }

  get inUse(): number {
    return this.held;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held >= this.limit) await new Promise<void>((resolve) => this.waiters.push(resolve));
    else this.held++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, so a newcomer cannot overtake it.
      const next = this.waiters.shift();
      if (next !== undefined) next();
      else this.held--;
    }
  }
}
