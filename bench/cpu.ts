// CPU accounting from /proc for the benchmarks: the user + system time a process has
// used (all its threads), the processes of a `strata up` cluster named by role, and
// the CPU each role spent per I/O between two samples.
import { readFileSync } from 'node:fs';
import { childPids, commandLine } from '../test/harness';

/**
 * Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). It is 100
 * on every Linux architecture Node runs on; the kernel scales its own HZ to it.
 */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system, every thread) a process has used, ms; undefined once it is gone. */
export function processCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

export interface RoleProcess {
  pid: number;
  /** `nats-server`, `config`, `node-host`, an actor's name (`vdisk-controller`), or `nbdkit`. */
  role: string;
}

/** The role of a `strata up` child from its command line: its service's folder, or nats-server. */
export function roleOf(commandLineText: string): string {
  if (/(^|\/)nats-server( |$)/.test(commandLineText)) return 'nats-server';
  return /services\/([a-z-]+)\/dist\/main\.js/.exec(commandLineText)?.[1] ?? 'other';
}

/** Every process `strata up` (pid `upPid`) runs, by role. */
export async function clusterProcesses(upPid: number): Promise<RoleProcess[]> {
  const out: RoleProcess[] = [];
  for (const pid of await childPids(upPid)) {
    const args = commandLine(pid);
    if (args !== undefined && args !== '') out.push({ pid, role: roleOf(args) });
  }
  return out;
}

/** CPU ms of each process, by pid, at one moment. */
export type CpuSample = Map<number, number>;

export function sampleCpu(processes: readonly RoleProcess[]): CpuSample {
  const sample: CpuSample = new Map();
  for (const p of processes) {
    const ms = processCpuMs(p.pid);
    if (ms !== undefined) sample.set(p.pid, ms);
  }
  return sample;
}

/**
 * CPU ms each role spent between two samples, the processes of a role summed (three
 * nats-servers are one `nats-server` figure), and `total` over all. A process that
 * was restarted in between (gone from `after`) is left out.
 */
export function cpuMsByRole(processes: readonly RoleProcess[], before: CpuSample, after: CpuSample): Record<string, number> {
  const ms: Record<string, number> = {};
  let total = 0;
  for (const p of processes) {
    const start = before.get(p.pid);
    const end = after.get(p.pid);
    if (start === undefined || end === undefined) continue;
    ms[p.role] = (ms[p.role] ?? 0) + (end - start);
    total += end - start;
  }
  ms.total = total;
  return ms;
}

/** CPU µs per I/O of each role (and `total`) between two samples, `ios` I/Os apart. */
export function cpuPerIo(processes: readonly RoleProcess[], before: CpuSample, after: CpuSample, ios: number): Record<string, number> {
  return mapValues(cpuMsByRole(processes, before, after), (ms) => round1((ms * 1000) / Math.max(1, ios)));
}

/** The share of one core each role (and `total`) used between two samples `seconds` apart, percent. */
export function cpuPercent(processes: readonly RoleProcess[], before: CpuSample, after: CpuSample, seconds: number): Record<string, number> {
  return mapValues(cpuMsByRole(processes, before, after), (ms) => round1(ms / (seconds * 10)));
}

function mapValues(record: Record<string, number>, f: (x: number) => number): Record<string, number> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v)]));
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
