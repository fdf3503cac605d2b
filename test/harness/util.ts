// Small helpers shared by the test harness: free ports, bounded waits, and a
// registry of child processes so that every one started is killed by PID, even
// when a test fails or jest exits early.
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

export function track(child: ChildProcess): void {
  children.add(child);
}

export function untrack(child: ChildProcess): void {
  children.delete(child);
}

/**
 * Kills, by PID, every child still running (paused ones too), and waits at most
 * `timeoutMs` for them to exit; returns their command lines. Run after each test
 * file (test/harness/after-file.ts): a test whose set-up failed half way leaves
 * servers running that nothing else stops, and their pipes would keep jest alive.
 */
export async function killTracked(timeoutMs = 5_000): Promise<string[]> {
  const left = [...children].filter((c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null);
  const exited = left.map((c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()))));
  for (const child of left) killNow(child);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exited), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  for (const child of left) untrack(child);
  return left.map((c) => c.spawnargs.join(' '));
}

function killNow(child: ChildProcess): void {
  try {
    process.kill(child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

// Last line of defence: whatever a test left running dies with the test process.
process.once('exit', () => {
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) killNow(child);
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Thrown by a check to say "not there yet" (a gateway not listening, a service
 * nobody answers yet): the one kind of error a wait retries unless told otherwise.
 */
export class NotReady extends Error {
  override readonly name = 'NotReady';
}

export function isNotReady(err: unknown): err is NotReady {
  return err instanceof NotReady;
}

export interface WaitOptions {
  /** Pause between checks (default 50 ms). */
  intervalMs?: number;
  /**
   * Which errors thrown by the check mean "not ready yet" and are retried (default:
   * NotReady only). Any other error fails the wait at once: a wrong answer must never
   * be retried until it happens to come out right.
   */
  retryIf?: (err: unknown) => boolean;
}

/**
 * Polls `check` until it returns true (or a value other than false/undefined),
 * and fails with `what` after `timeoutMs`. Every wait in the tests is bounded.
 * A check says "not yet" by returning false or undefined, or by throwing an error
 * that `retryIf` accepts; any other throw ends the wait with that error at once.
 * `options` may be a number: the interval in milliseconds.
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | false | undefined> | T | false | undefined, options: number | WaitOptions = {}): Promise<T> {
  const { intervalMs = 50, retryIf = isNotReady } = typeof options === 'number' ? { intervalMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const result = await check();
      if (result !== false && result !== undefined) return result;
    } catch (err) {
      if (!retryIf(err)) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? '' : `: last error: ${(lastError as Error).message ?? JSON.stringify(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
