// Runs Strata's own programs (actors, the CLI, test fixtures) as real child
// processes from the built JavaScript, captures their output, and stops them by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { track, untrack, waitFor } from './util';

export const repoRoot = resolve(__dirname, '..', '..');

export interface ActorProcess {
  readonly name: string;
  readonly child: ChildProcess;
  pid(): number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Waits until the output matches `pattern`; returns the match. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited(): Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  name?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Starts `node <script> ...args` where script is relative to the repo root. */
export function startNode(script: string, args: string[], options: StartOptions = {}): ActorProcess {
  return startProgram(process.execPath, [join(repoRoot, script), ...args], options);
}

export function startProgram(command: string, args: string[], options: StartOptions = {}): ActorProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let out = '';
  const append = (chunk: Buffer): void => {
    out += chunk.toString();
    // Keep the tail: a long-running actor must not grow the test's memory.
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | string>((resolvePromise) => {
    child.once('exit', (code, sig) => {
      untrack(child);
      resolvePromise(code ?? sig ?? 'unknown');
    });
  });
  const name = options.name ?? `${command} ${args.join(' ')}`;
  return {
    name,
    child,
    pid: () => {
      if (child.pid === undefined) throw new Error(`${name} has no pid (spawn failed?)`);
      return child.pid;
    },
    output: () => out,
    waitForOutput: (pattern, timeoutMs = 20_000) =>
      waitFor(`${name} to print ${pattern}`, timeoutMs, () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}): ${out.slice(-3000)}`);
        return out.match(pattern) ?? false;
      }),
    signal: (sig) => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, sig);
    },
    exited: () => exited,
    stop: async (graceMs = 5_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a program to completion and returns its exit code and output. */
/** `onStart`: told the child's PID once it is spawned (a fault test that kills a command midway). */
export async function run(command: string, args: string[], options: StartOptions & { timeoutMs?: number; onStart?: (pid: number) => void } = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: options.cwd ?? repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  if (child.pid !== undefined) options.onStart?.(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const code = await new Promise<number | string>((resolvePromise) =>
    child.once('exit', (c, sig) => {
      untrack(child);
      resolvePromise(c ?? sig ?? 'unknown');
    }),
  );
  clearTimeout(timer);
  return { code, stdout, stderr };
}
