// Helpers for the HA tests: the CLI against a cluster, every process of a host (to
// kill it whole), a monitor that watches every VM process on the machine and every
// power-on lease throughout a test, the VMs' consoles (their counters), and a TCP
// proxy in front of NATS that a test can cut to isolate one agent.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openBucket, WatchCache } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { buckets, keys, restartRecord, vdiskRow, vmProtection, type RestartRecord, type VmProtection } from '@strata/proto';
import { run } from './processes';
import { childPids, commandLine } from './strata';
import type { UpCluster } from './up-cluster';
import { waitFor } from './util';
import { envSecurityOptions } from './suite-security';

/** Liveness and HA timings for the tests: node heartbeat 500 ms, fence 2 s, dead 3 s (the ownership tests' timings); HA defaults. */
export const HA_TEST_ENV: Record<string, string> = {
  STRATA_HEARTBEAT_INTERVAL_MS: '500',
  STRATA_FENCE_TIMEOUT_MS: '2000',
  STRATA_DEAD_TIMEOUT_MS: '3000',
  STRATA_TAKEOVER_STEP_TIMEOUT_MS: '3000',
};

/** Runs `strata --dir <cluster> ...args`; fails unless it exits 0. Returns stdout. */
export async function strata(cluster: UpCluster, args: string[], timeoutMs = 120_000): Promise<string> {
  const { code, stdout, stderr } = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, ...args], { timeoutMs });
  if (code !== 0) throw new Error(`strata ${args.join(' ')} exited ${code}: ${stderr.trim()}`);
  return stdout;
}

export interface VmOptions {
  driver: 'qemu' | 'process';
  protected: boolean;
  priority?: 'high' | 'medium' | 'low';
  memory?: string;
  /** The vDisk's container (default: `default`). */
  container?: string;
}

/** Creates a 64 MiB vDisk and a one-CPU VM of the same name on `host` with the CLI. */
export async function createVm(cluster: UpCluster, name: string, host: string, o: VmOptions): Promise<void> {
  await strata(cluster, ['vdisk', 'create', name, '--size', '64M', ...(o.container === undefined ? [] : ['--container', o.container])]);
  await strata(cluster, ['vm', 'create', name, '--host', host, '--cpus', '1', '--memory', o.memory ?? '256M', '--vdisk', name, '--driver', o.driver, ...(o.protected ? ['--ha-protected'] : []), '--restart-priority', o.priority ?? 'medium']);
}

/** Waits until `vm` printed `count` counters above `after` (on any host); returns them. */
export function countersPast(cluster: UpCluster, vm: string, after: number, count: number, timeoutMs: number): Promise<number[]> {
  return waitFor(
    `vm ${vm} to print ${count} counters past ${after}`,
    timeoutMs,
    () => {
      const past = counters(cluster.dir, vm).printed.filter((c) => c > after);
      return past.length >= count ? past : false;
    },
    200,
  );
}

/** SIGKILLs every PID given; one already gone is skipped. */
export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** The restart records in the `ha` bucket (the restart and wait lists), by VM id. */
export async function readRestarts(natsUrl: string): Promise<Map<bigint, RestartRecord>> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...envSecurityOptions() });
  try {
    const bucket = await openBucket(nc, buckets.ha, restartRecord);
    const out = new Map<bigint, RestartRecord>();
    for (const key of await bucket.keys(keys.restartRecordAll)) {
      const e = await bucket.get(key);
      if (e !== null) out.set(e.value.vm, e.value);
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** A VM's protection state in the `ha` bucket, if any. */
export async function readProtection(natsUrl: string, vm: bigint): Promise<VmProtection | undefined> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...envSecurityOptions() });
  try {
    const bucket = await openBucket(nc, buckets.ha, vmProtection);
    return (await bucket.get(keys.vmProtection(vm)))?.value;
  } finally {
    await nc.close();
  }
}

/** How many vDisk map rows a vDisk has (its drained data, in md-vdisk). */
export async function vdiskRows(natsUrl: string, vdisk: bigint): Promise<number> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...envSecurityOptions() });
  try {
    const bucket = await openBucket(nc, buckets.mdVdisk, vdiskRow, { history: 1 });
    return (await bucket.keys(`${vdisk}.*`)).length;
  } finally {
    await nc.close();
  }
}

/** Every process of host `host` under `strata up`: the node's actors, the HA agent, and the agent's VMs. */
export async function hostProcesses(upPid: number, host: string): Promise<Map<number, string>> {
  const index = host.replace(/^n/, '');
  const mine = new RegExp(`(--node ${host}|--shard md-${index}|--host ${host})( |$)`);
  const out = new Map<number, string>();
  for (const pid of await childPids(upPid)) {
    const cmd = commandLine(pid);
    if (cmd === undefined || !mine.test(cmd)) continue;
    out.set(pid, cmd);
    for (const vm of await childPids(pid)) {
      const vmCmd = commandLine(vm);
      if (vmCmd !== undefined) out.set(vm, vmCmd);
    }
  }
  return out;
}

/** The VM a process runs, from its command line (workload `--vm NAME`, QEMU `-name strata-vm-NAME,...`). */
export function vmOfCommand(cmd: string): string | undefined {
  return /workload\/main\.js --vm (\S+)/.exec(cmd)?.[1] ?? /-name strata-vm-([^, ]+)/.exec(cmd)?.[1];
}

/** Every VM process on the machine, by VM name. */
export function vmProcesses(): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const vm = vmOfCommand(commandLine(Number(entry)) ?? '');
    if (vm === undefined) continue;
    if (!out.has(vm)) out.set(vm, []);
    out.get(vm)!.push(Number(entry));
  }
  return out;
}

export interface LeaseChange {
  atMs: number;
  vm: bigint;
  holder: string;
  epoch: number;
}

/**
 * Watches, every `intervalMs`, every VM process on the machine, and every change of a
 * power-on lease: the most instances of each VM seen at once, when each VM's processes
 * came and went, and each lease's history. A test asserts on it at its end.
 */
export class VmMonitor {
  /** The most processes of each VM seen at one look. */
  readonly peak = new Map<string, number>();
  /** Looks where a VM had more than one process: the offending PIDs. */
  readonly doubles: Array<{ atMs: number; vm: string; pids: number[] }> = [];
  /** Per VM, the Date.now() times it was seen running, first and last, per PID. */
  readonly seen = new Map<string, Map<number, { firstMs: number; lastMs: number }>>();
  readonly leases: LeaseChange[] = [];
  private timer: NodeJS.Timeout | undefined;
  private nc: NatsConnection | undefined;
  private cache: WatchCache<unknown> | undefined;

  async start(natsUrl: string, intervalMs = 50): Promise<this> {
    this.timer = setInterval(() => this.look(), intervalMs);
    this.look();
    this.nc = await connect({ servers: natsUrl.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200, ...envSecurityOptions() });
    const bucket = await openBucket(this.nc, buckets.ha, leaseRecord);
    const cache = await WatchCache.start(bucket, { key: keys.powerOnLeaseAll });
    cache.onChange((key, e) => {
      if (e !== undefined) this.leases.push({ atMs: Date.now(), vm: BigInt(key.slice(key.indexOf('.') + 1)), holder: e.value.holder, epoch: e.value.epoch });
    });
    this.cache = cache as WatchCache<unknown>;
    return this;
  }

  private look(): void {
    const now = Date.now();
    for (const [vm, pids] of vmProcesses()) {
      this.peak.set(vm, Math.max(this.peak.get(vm) ?? 0, pids.length));
      if (pids.length > 1) this.doubles.push({ atMs: now, vm, pids });
      if (!this.seen.has(vm)) this.seen.set(vm, new Map());
      const byPid = this.seen.get(vm)!;
      for (const pid of pids) byPid.set(pid, { firstMs: byPid.get(pid)?.firstMs ?? now, lastMs: now });
    }
  }

  /** The processes a VM has had, oldest first. */
  instances(vm: string): Array<{ pid: number; firstMs: number; lastMs: number }> {
    return [...(this.seen.get(vm) ?? new Map<number, { firstMs: number; lastMs: number }>())].map(([pid, t]) => ({ pid, ...t })).sort((a, b) => a.firstMs - b.firstMs);
  }

  /** Lease changes where one epoch had two holders, or an epoch went back. */
  leaseViolations(): string[] {
    const problems: string[] = [];
    const byVm = new Map<bigint, LeaseChange[]>();
    for (const c of this.leases) byVm.set(c.vm, [...(byVm.get(c.vm) ?? []), c]);
    for (const [vm, changes] of byVm) {
      const holders = new Map<number, string>();
      let last = 0;
      for (const c of changes) {
        if (c.epoch < last) problems.push(`vm ${vm}: epoch went back from ${last} to ${c.epoch}`);
        last = Math.max(last, c.epoch);
        if (c.holder === '') continue;
        const before = holders.get(c.epoch);
        if (before !== undefined && before !== c.holder) problems.push(`vm ${vm}: epoch ${c.epoch} held by ${before} and by ${c.holder}`);
        holders.set(c.epoch, c.holder);
      }
    }
    return problems;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.cache?.stop();
    await this.nc?.close();
  }
}

export interface ConsoleLine {
  host: string;
  line: string;
}

/** A VM's console lines on every host, in file order per host (`<dir>/ha/<host>/<vm>.console`). */
export function consoleLines(clusterDir: string, vm: string): ConsoleLine[] {
  const root = join(clusterDir, 'ha');
  if (!existsSync(root)) return [];
  const out: ConsoleLine[] = [];
  for (const host of readdirSync(root).sort()) {
    const file = join(root, host, `${vm}.console`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) if (line.trim() !== '') out.push({ host, line: line.trim() });
  }
  return out;
}

/** The counters a VM printed (`counter <n>`), and its `ready ... counter <n>` lines, per host. */
export function counters(clusterDir: string, vm: string): { printed: number[]; readies: Array<{ host: string; counter: number }>; lastByHost: Map<string, number> } {
  const printed: number[] = [];
  const readies: Array<{ host: string; counter: number }> = [];
  const lastByHost = new Map<string, number>();
  for (const { host, line } of consoleLines(clusterDir, vm)) {
    const c = /^counter (\d+)$/.exec(line);
    if (c !== null) {
      printed.push(Number(c[1]));
      lastByHost.set(host, Number(c[1]));
    }
    const r = new RegExp(`^ready ${vm} counter (\\d+)$`).exec(line);
    if (r !== null) readies.push({ host, counter: Number(r[1]) });
  }
  return { printed, readies, lastByHost };
}

/** How many console lines of `vm` each host has now: a mark that lines of a later instance come after. */
export function consoleMark(clusterDir: string, vm: string): Map<string, number> {
  const mark = new Map<string, number>();
  for (const { host } of consoleLines(clusterDir, vm)) mark.set(host, (mark.get(host) ?? 0) + 1);
  return mark;
}

export interface NewInstance {
  host: string;
  /** The counter its `ready` line read from the disk. */
  counter: number;
  /** The counters it printed since. */
  printed: number[];
}

/** The first instance of `vm` whose `ready` line comes after `mark` on its host, with the counters it printed since. */
export function instanceAfter(clusterDir: string, vm: string, mark: ReadonlyMap<string, number>): NewInstance | undefined {
  const byHost = new Map<string, string[]>();
  for (const { host, line } of consoleLines(clusterDir, vm)) byHost.set(host, [...(byHost.get(host) ?? []), line]);
  for (const [host, lines] of byHost) {
    const later = lines.slice(mark.get(host) ?? 0);
    const start = later.findIndex((l) => new RegExp(`^ready ${vm} counter \\d+$`).test(l));
    if (start < 0) continue;
    const printed = later.slice(start + 1).flatMap((l) => /^counter (\d+)$/.exec(l)?.[1] ?? []).map(Number);
    return { host, counter: Number(/(\d+)$/.exec(later[start]!)![1]), printed };
  }
  return undefined;
}

/**
 * Waits until an instance of `vm` started after `mark` (taken before the kill) has
 * printed `count` counters; returns it. Counters alone would not do: the instance
 * that is being killed prints on until the kill lands.
 */
export function restartedPast(cluster: UpCluster, vm: string, mark: ReadonlyMap<string, number>, count: number, timeoutMs: number): Promise<NewInstance> {
  return waitFor(`a new instance of vm ${vm} to print ${count} counters`, timeoutMs, () => {
    const next = instanceAfter(cluster.dir, vm, mark);
    return next !== undefined && next.printed.length >= count ? next : false;
  }, 200);
}

/** A TCP proxy to `target` (host:port) that a test can cut: every connection dropped, new ones refused. */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(port = 0): Promise<this> {
    const server = createServer((client) => {
      const upstream = netConnect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    this.server = server;
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
    this.port = address.port;
    return this;
  }

  /** Drops every connection and refuses new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
