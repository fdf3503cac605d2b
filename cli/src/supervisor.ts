// Keeps child processes running: each is restarted when it exits unexpectedly,
// with a backoff that grows while it keeps crashing. Output goes to one log file per
// child. stop() sends SIGTERM to all, then SIGKILL to those still running after the
// grace period (the caller may stop some before the others). The first restart waits STRATA_RESTART_DELAY_MS (500 ms by default);
// a fault test sets it high to keep a killed node down while its vDisks fail over.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
}

interface Supervised {
  spec: ChildSpec;
  child: ChildProcess | undefined;
  restarts: number;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
  log: WriteStream;
}

function restartDelayFromEnv(): number {
  const text = process.env.STRATA_RESTART_DELAY_MS;
  if (text === undefined || text === '') return 500;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) throw new Error(`STRATA_RESTART_DELAY_MS must be a positive whole number of milliseconds, not ${JSON.stringify(text)}`);
  return ms;
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private stopping = false;

  constructor(
    private readonly logDir: string,
    private readonly report: (line: string) => void,
    private readonly restartDelayMs = restartDelayFromEnv(),
  ) {}

  add(spec: ChildSpec): void {
    const entry: Supervised = { spec, child: undefined, restarts: 0, startedAt: 0, timer: undefined, log: createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: 'a' }) };
    this.children.set(spec.name, entry);
    this.launch(entry);
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries([...this.children].map(([name, e]) => [name, e.child?.pid]));
  }

  private launch(entry: Supervised): void {
    const { spec } = entry;
    const child = spawn(spec.command, spec.args, { env: { ...process.env, ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    entry.child = child;
    entry.startedAt = Date.now();
    child.stdout?.pipe(entry.log, { end: false });
    child.stderr?.pipe(entry.log, { end: false });
    child.once('error', (err) => this.report(`${spec.name}: cannot start: ${err.message}`));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      // A child that ran for ten seconds counts as healthy again: only a crash loop backs off.
      if (Date.now() - entry.startedAt > 10_000) entry.restarts = 0;
      const delayMs = Math.min(Math.max(30_000, this.restartDelayMs), this.restartDelayMs * 2 ** entry.restarts);
      entry.restarts++;
      this.report(`${spec.name} exited (${signal ?? `code ${code}`}); restarting in ${delayMs} ms (see ${spec.name}.log)`);
      entry.timer = setTimeout(() => this.launch(entry), delayMs);
    });
  }

  /**
   * Stops the children `which` selects (all by default): SIGTERM, then SIGKILL after
   * `graceMs`. None of them is restarted any more, whatever `which` leaves running.
   */
  async stop(which: (name: string) => boolean = () => true, graceMs = 8_000): Promise<void> {
    this.stopping = true;
    const chosen = [...this.children.values()].filter((entry) => which(entry.spec.name));
    const exits = chosen.map((entry) => {
      clearTimeout(entry.timer);
      const child = entry.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      });
    });
    await Promise.all(exits);
    for (const entry of chosen) if (!entry.log.writableEnded) entry.log.end();
  }
}
