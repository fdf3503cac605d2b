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

// Last line of defence: whatever a test left running dies with the test process.
process.once('exit', () => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns true (or a value other than false/undefined),
 * and fails with `what` after `timeoutMs`. Every wait in the tests is bounded.
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | false | undefined> | T | false | undefined, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const result = await check();
      if (result !== false && result !== undefined) return result;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? '' : `: last error: ${(lastError as Error).message ?? JSON.stringify(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
