// How a host runs a VM: one interface, two drivers (process.ts: a workload process;
// qemu.ts: a QEMU guest). A VM is one child process of the agent, started under
// `setpriv --pdeathsig KILL`, so it dies with the agent: a VM never outlives the host
// that renews its power-on lease. Its output is its console: appended to
// `<runDir>/<vm>.console` and kept (the tail) for error messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ErrorCode, StrataError } from '@strata/errors';

export interface VmDisk {
  /** The vDisk's name (`db`). */
  vdisk: string;
  /** The NBD export that names the VM's lease: `db@12360.4`. */
  exportName: string;
}

export interface VmLaunch {
  vm: bigint;
  name: string;
  cpuCount: number;
  memoryBytes: number;
  powerOnEpoch: number;
  disks: VmDisk[];
  /** The host's gateway. */
  nbdHost: string;
  nbdPort: number;
  /** The NBD client certificates (ca-cert.pem, client-cert.pem, client-key.pem) when the gateway requires TLS. */
  nbdTlsClientDir?: string;
  /** Where the console file goes. */
  runDir: string;
}

export interface VmInstance {
  readonly pid: number;
  /** Milliseconds from spawn to its first console line, once there is one (where a restart's time goes). */
  readonly firstLineAfterMs: number | undefined;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines it printed. */
  tail(): string;
  /** Powers it off (SIGKILL); resolves once the process has exited. */
  kill(): Promise<void>;
}

export interface VmDriver {
  /**
   * Starts the VM; resolves once it runs (it opened its disk), rejects when it exits
   * first: UNAVAILABLE with hint `inaccessible` when its disk could not be opened,
   * INTERNAL otherwise (its last output in the message). `spawned` hears of the
   * process as soon as it exists, so the agent can power it off while it comes up.
   */
  start(launch: VmLaunch, spawned: (vm: VmInstance) => void): Promise<VmInstance>;
}

/** The hint of an UNAVAILABLE power-on whose VM could not open its disk. */
export const INACCESSIBLE_HINT = 'inaccessible';

const TAIL_BYTES = 4096;

/** A spawned VM process whose output goes to its console file. */
export class VmProcess implements VmInstance {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  firstLineAfterMs: number | undefined;
  private readonly spawnedAtMs = performance.now();
  private out = '';
  private readonly lineListeners = new Set<(line: string) => void>();

  constructor(
    private readonly child: ChildProcess,
    consolePath: string,
  ) {
    if (child.pid === undefined) throw new StrataError(ErrorCode.INTERNAL, `cannot start the VM process (${consolePath})`);
    this.pid = child.pid;
    const console = createWriteStream(consolePath, { flags: 'a' });
    let partial = '';
    const onData = (chunk: Buffer): void => {
      this.firstLineAfterMs ??= Math.round(performance.now() - this.spawnedAtMs);
      console.write(chunk);
      const text = chunk.toString('utf8');
      this.out = (this.out + text).slice(-TAIL_BYTES);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) for (const l of this.lineListeners) l(line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        console.end();
        resolve({ code, signal });
      }),
    );
  }

  tail(): string {
    return this.out;
  }

  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Spawns `command args` as a VM of this agent: it dies with the agent (PR_SET_PDEATHSIG). */
export function spawnVm(command: string, args: string[], launch: VmLaunch): VmProcess {
  mkdirSync(launch.runDir, { recursive: true });
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const vm = new VmProcess(child, consolePath(launch.runDir, launch.name));
  child.once('error', () => undefined);
  return vm;
}

export function consolePath(runDir: string, name: string): string {
  return join(runDir, `${name}.console`);
}

/**
 * Resolves with `vm` once `ready(line)` accepts a line it printed, or once it has run for
 * `settleMs` when no readiness line is awaited; rejects when it exits first (or when
 * `timeoutMs` passes: it is then killed).
 */
export async function waitUntilUp(vm: VmProcess, ready: ((line: string) => boolean) | undefined, settleMs: number, timeoutMs: number, inaccessibleCodes: readonly number[]): Promise<VmProcess> {
  let remove = (): void => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const up = new Promise<'up' | 'timeout'>((resolve) => {
      if (ready === undefined) timer = setTimeout(() => resolve('up'), settleMs);
      else {
        remove = vm.onLine((line) => ready(line) && resolve('up'));
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      }
    });
    const outcome = await Promise.race([up, vm.exited]);
    if (outcome === 'up') return vm;
    if (outcome === 'timeout') {
      await vm.kill();
      throw new StrataError(ErrorCode.INTERNAL, `the VM did not come up within ${timeoutMs} ms: ${lastLines(vm.tail())}`);
    }
    const inaccessible = outcome.code !== null && inaccessibleCodes.includes(outcome.code);
    const how = outcome.code === null ? `signal ${outcome.signal}` : `code ${outcome.code}`;
    throw new StrataError(inaccessible ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL, `the VM exited (${how}) before it came up: ${lastLines(vm.tail())}`, inaccessible ? { hint: INACCESSIBLE_HINT } : {});
  } finally {
    remove();
    clearTimeout(timer);
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ') || '(no output)';
}
