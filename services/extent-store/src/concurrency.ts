// The two concurrency limits of a disk: operations on one extent group are ordered by
// a per-key shared/exclusive lock (reads share it, writes and deletes hold it alone),
// and only so many operations touch the disk at once (a counting semaphore). Both are
// FIFO, so no waiter starves: a waiting writer holds back readers that come after it.
import { assert } from '@strata/errors';

interface KeyState {
  readers: number;
  writer: boolean;
  waiters: Array<{ shared: boolean; grant: () => void }>;
}

/**
 * Per key, any number of shared holders or one exclusive holder; different keys are
 * independent. Random 4 KiB reads of one hot extent group run side by side, while a
 * write still sees no read in progress.
 */
export class KeyedLock<K> {
  private readonly keys = new Map<K, KeyState>();

  /** Number of keys that have a holder or waiters right now. */
  get activeKeys(): number {
    return this.keys.size;
  }

  /** Runs `fn` as the key's only holder. */
  run<T>(key: K, fn: () => Promise<T>): Promise<T> {
    return this.hold(key, false, fn);
  }

  /** Runs `fn` beside other shared holders of the key, never beside an exclusive one. */
  runShared<T>(key: K, fn: () => Promise<T>): Promise<T> {
    return this.hold(key, true, fn);
  }

  private async hold<T>(key: K, shared: boolean, fn: () => Promise<T>): Promise<T> {
    let state = this.keys.get(key);
    if (state === undefined) {
      state = { readers: 0, writer: false, waiters: [] };
      this.keys.set(key, state);
    }
    // Joining at once only when nobody waits keeps arrival order.
    if (state.waiters.length === 0 && compatible(state, shared)) take(state, shared);
    else await new Promise<void>((grant) => state.waiters.push({ shared, grant }));
    try {
      return await fn();
    } finally {
      if (shared) state.readers--;
      else state.writer = false;
      // Wake the head of the line, and every shared waiter right behind a shared head.
      while (state.waiters.length > 0 && compatible(state, state.waiters[0]!.shared)) {
        const next = state.waiters.shift()!;
        take(state, next.shared);
        next.grant();
      }
      if (state.readers === 0 && !state.writer && state.waiters.length === 0) this.keys.delete(key);
    }
  }
}

function compatible(state: KeyState, shared: boolean): boolean {
  return shared ? !state.writer : !state.writer && state.readers === 0;
}

function take(state: KeyState, shared: boolean): void {
  if (shared) state.readers++;
  else state.writer = true;
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
