// `npm run bench`: fio's nbd engine against a local 3-node Strata cluster (3
// nats-servers, a container with RF 3: like for like with a 3-replica Ceph pool), in
// each process layout (colocate: `strata up`'s default, one node-host per node;
// separate: `--separate`, one process per actor), and in the same run against
// nbdkit's memory plugin over loopback TCP, the baseline every figure is divided by.
// It prints:
//  - IOPS, MB/s, p50 and p99 completion latency and the fraction of nbdkit, next to
//    Ceph RBD's fraction on this kind of machine;
//  - the CPU per I/O of each process of the cluster, by role (nats-server, config,
//    node-host or the actor's name; the processes of a role summed), from
//    /proc/<pid>/stat, and the cluster's idle CPU, which those figures include;
//  - the QD1 write floor, an R3 append of 4 KiB with fsync from a bare client
//    (bench/r3-append.ts, as bench:append-floor measures it), and how much the path
//    adds above it at 4 KiB random writes QD1;
//  - how far the default layout is from the best one on each workload.
// It writes the same figures to bench/results/nbd.json.
//
// It is a measurement, not a test: it asserts nothing about speed. It fails only
// when something does not run (fio errors, a cluster that does not start).
//
// Options: --runtime S (seconds per workload, default 10), --size SIZE (the region
// fio works in, default 256M), --layouts colocate,separate, --appends N (QD1 appends
// measured for the floor, default 2000), --out FILE.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NATS_SERVER_PINNED } from '@strata/natsd';
import { repoRoot, sleep, waitForDrained } from '../test/harness';
import { createdId, fio, startCluster, startNbdkit, strata, type Figures, type FioJob } from './common';
import { clusterProcesses, cpuPercent, cpuPerIo, sampleCpu, type RoleProcess } from './cpu';
import { measureR3Appends, type AppendFigures } from './r3-append';

interface Workload {
  name: string;
  rw: 'randwrite' | 'randread' | 'write' | 'read';
  bs: string;
  iodepth: number;
  /** Ceph RBD's fraction of nbdkit on this kind of machine (from the issue). */
  ceph: number;
  /** Our goal: a multiple of Ceph's fraction. */
  goal: number;
}

// Sequential write first: it fills the region, so every read reads written data.
const workloads: Workload[] = [
  { name: 'seq write 1M QD8', rw: 'write', bs: '1M', iodepth: 8, ceph: 0.082, goal: 1.5 },
  { name: 'seq read 1M QD8', rw: 'read', bs: '1M', iodepth: 8, ceph: 0.402, goal: 2 },
  { name: 'rand read 4K QD1', rw: 'randread', bs: '4k', iodepth: 1, ceph: 0.113, goal: 2 },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', iodepth: 32, ceph: 0.08, goal: 2 },
  { name: 'rand write 4K QD1', rw: 'randwrite', bs: '4k', iodepth: 1, ceph: 0.075, goal: 1.5 },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', iodepth: 32, ceph: 0.015, goal: 1.5 },
];

/** The workload whose latency is compared with the append floor. */
const QD1_WRITE = 'rand write 4K QD1';

/** `strata up`'s flags for each layout. */
const LAYOUT_ARGS = { colocate: [], separate: ['--separate'] } as const satisfies Record<string, readonly string[]>;
type Layout = keyof typeof LAYOUT_ARGS;
/** The layout `strata up` runs without a flag. */
const DEFAULT_LAYOUT: Layout = 'colocate';
/** Issue 16's bound: the default layout within this factor of the best one on every workload. */
const LAYOUT_SLOWDOWN_MAX = 1.5;

/** How long the cluster is left alone, then watched, for its idle CPU. */
const IDLE_SETTLE_MS = 2_000;
const IDLE_WINDOW_S = 3;

interface Options {
  runtime: number;
  size: string;
  layouts: Layout[];
  appends: number;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runtime: { type: 'string', default: '10' },
      size: { type: 'string', default: '256M' },
      layouts: { type: 'string', default: 'colocate,separate' },
      appends: { type: 'string', default: '2000' },
      out: { type: 'string' },
    },
    strict: true,
  });
  const runtime = Number(values.runtime);
  if (!Number.isInteger(runtime) || runtime < 1 || runtime > 600) throw new Error('--runtime must be a whole number of seconds from 1 to 600');
  if (!/^\d+[KMG]$/.test(values.size)) throw new Error('--size must look like 256M or 1G');
  const appends = Number(values.appends);
  if (!Number.isInteger(appends) || appends < 100 || appends > 1_000_000) throw new Error('--appends must be a whole number from 100 to 1000000');
  const layouts = values.layouts.split(',').map((l) => l.trim());
  for (const l of layouts) if (!(l in LAYOUT_ARGS)) throw new Error(`unknown layout ${l}: use ${Object.keys(LAYOUT_ARGS).join(' and/or ')}`);
  return { runtime, size: values.size, layouts: layouts as Layout[], appends, out: values.out ?? join(repoRoot, 'bench', 'results', 'nbd.json') };
}

function job(w: Workload, o: Options): FioJob {
  return { name: w.name, rw: w.rw, bs: w.bs, iodepth: w.iodepth, size: o.size, runtimeS: o.runtime, rampS: 1 };
}

/** A workload's figures with the CPU each role spent per completed I/O (µs; `total` over all). */
interface Measured extends Figures {
  cpuUsPerIo: Record<string, number>;
}

/**
 * Runs one fio job with `processes` watched. The CPU window opens when fio's ramp
 * ends (fio counts no I/O before) and closes once `settle` resolves after fio: for a
 * write, once the oplog is drained, so a write's drain is part of its cost.
 */
async function measureWorkload(uri: string, fioJob: FioJob, scratch: string, processes: readonly RoleProcess[], settle: () => Promise<void>): Promise<Measured> {
  const running = fio(uri, fioJob, scratch);
  // A failure is reported by the await below; it must not be an unhandled rejection meanwhile.
  running.catch(() => undefined);
  await sleep(fioJob.rampS * 1000);
  const before = sampleCpu(processes);
  const figures = await running;
  await settle();
  return { ...figures, cpuUsPerIo: cpuPerIo(processes, before, sampleCpu(processes), figures.ios) };
}

/** The share of one core each role uses with no I/O (heartbeats, leases, watches), percent. */
async function measureIdle(processes: readonly RoleProcess[]): Promise<Record<string, number>> {
  await sleep(IDLE_SETTLE_MS);
  const before = sampleCpu(processes);
  await sleep(IDLE_WINDOW_S * 1000);
  return cpuPercent(processes, before, sampleCpu(processes), IDLE_WINDOW_S);
}

interface LayoutRun {
  workloads: Record<string, Measured>;
  idleCpuPercent: Record<string, number>;
}

async function measureStrata(layout: Layout, o: Options, scratch: string): Promise<LayoutRun> {
  const cluster = await startCluster(layout, ['--nats', '3', ...LAYOUT_ARGS[layout]]);
  try {
    await strata(cluster.dir, ['container', 'create', 'rf3', '--rf', '3']);
    const id = createdId(await strata(cluster.dir, ['vdisk', 'create', 'bench', '--size', '1G', '--container', 'rf3']));
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/bench`;
    const processes = await clusterProcesses(cluster.up.pid());
    const idleCpuPercent = await measureIdle(processes);
    const out: Record<string, Measured> = {};
    for (const w of workloads) {
      // Reads measure the drained steady state, not the oplog index.
      const settle = async (): Promise<void> => {
        if (w.rw === 'write' || w.rw === 'randwrite') await waitForDrained(cluster.natsUrl, id, 120_000, cluster.security);
      };
      out[w.name] = await measureWorkload(uri, job(w, o), scratch, processes, settle);
      process.stderr.write(`  ${layout.padEnd(9)} ${w.name.padEnd(19)} ${String(out[w.name]!.iops).padStart(7)} IOPS\n`);
    }
    await cluster.stop();
    return { workloads: out, idleCpuPercent };
  } catch (err) {
    await cluster.stop(true);
    throw err;
  }
}

async function measureNbdkit(o: Options, scratch: string): Promise<Record<string, Measured>> {
  const nbdkit = await startNbdkit();
  try {
    const processes = [{ pid: nbdkit.pid, role: 'nbdkit' }];
    const out: Record<string, Measured> = {};
    for (const w of workloads) {
      out[w.name] = await measureWorkload(nbdkit.uri, job(w, o), scratch, processes, () => Promise.resolve());
      process.stderr.write(`  ${'nbdkit'.padEnd(9)} ${w.name.padEnd(19)} ${String(out[w.name]!.iops).padStart(7)} IOPS\n`);
    }
    return out;
  } finally {
    await nbdkit.stop();
  }
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** Prints a table: the first column left-aligned, the others right-aligned. */
function printTable(header: string[], lines: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
}

interface Row {
  workload: string;
  nbdkit: Measured;
  ceph: number;
  goal: number;
  layouts: Record<string, Measured & { ratio: number }>;
}

function rowsOf(baseline: Record<string, Measured>, runs: Partial<Record<Layout, LayoutRun>>): Row[] {
  return workloads.map((w) => {
    const base = baseline[w.name]!;
    const layouts: Row['layouts'] = {};
    for (const [layout, run] of Object.entries(runs)) layouts[layout] = { ...run.workloads[w.name]!, ratio: run.workloads[w.name]!.iops / base.iops };
    return { workload: w.name, nbdkit: base, ceph: w.ceph, goal: w.ceph * w.goal, layouts };
  });
}

function printFigures(rows: Row[], layouts: Layout[]): void {
  const header = ['workload', 'nbdkit IOPS', ...layouts.flatMap((l) => [`${l} IOPS`, 'MB/s', 'p50 µs', 'p99 µs', 'of nbdkit']), 'ceph', 'goal'];
  printTable(
    header,
    rows.map((r) => [
      r.workload,
      String(r.nbdkit.iops),
      ...layouts.flatMap((l) => {
        const f = r.layouts[l]!;
        return [String(f.iops), String(f.mbps), String(f.p50us), String(f.p99us), pct(f.ratio)];
      }),
      pct(r.ceph),
      pct(r.goal),
    ]),
  );
}

/** Column order of the CPU table: the cluster's roles in start order, then the baseline. */
const ROLE_ORDER = ['nats-server', 'config', 'node-host', 'metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway', 'other', 'nbdkit'];

function printCpu(rows: Row[], layouts: Layout[], runs: Partial<Record<Layout, LayoutRun>>): void {
  const seen = new Set(rows.flatMap((r) => [r.nbdkit, ...Object.values(r.layouts)].flatMap((m) => Object.keys(m.cpuUsPerIo))));
  const roles = ROLE_ORDER.filter((r) => seen.has(r));
  const cell = (m: Record<string, number>, role: string): string => (m[role] === undefined ? '-' : m[role].toFixed(0));
  const lines = rows.flatMap((r) => [
    [r.workload, 'nbdkit', ...roles.map((role) => cell(r.nbdkit.cpuUsPerIo, role)), cell(r.nbdkit.cpuUsPerIo, 'total')],
    ...layouts.map((l) => ['', l, ...roles.map((role) => cell(r.layouts[l]!.cpuUsPerIo, role)), cell(r.layouts[l]!.cpuUsPerIo, 'total')]),
  ]);
  console.log('\nCPU per I/O, µs (user + system from /proc, the processes of a role summed; a write counts until its drain ends):');
  printTable(['workload', 'layout', ...roles, 'total'], lines);
  for (const l of layouts) {
    const idle = runs[l]!.idleCpuPercent;
    const parts = roles.filter((role) => idle[role] !== undefined).map((role) => `${role} ${idle[role]!.toFixed(1)}%`);
    console.log(`idle (no I/O), ${l}: ${parts.join(', ')}; total ${(idle.total ?? 0).toFixed(1)}% of one core, included in the figures above`);
  }
}

interface Overhead {
  meanUs: number;
  p50Us: number;
  /** The write's latency minus the floor's: what the path adds above the R3 append. */
  aboveFloorMeanUs: number;
  aboveFloorP50Us: number;
}

function overheads(rows: Row[], floor: AppendFigures): Record<string, Overhead> {
  const row = rows.find((r) => r.workload === QD1_WRITE)!;
  const out: Record<string, Overhead> = {};
  for (const [layout, f] of Object.entries(row.layouts)) {
    out[layout] = { meanUs: f.meanUs, p50Us: f.p50us, aboveFloorMeanUs: Math.round(f.meanUs - floor.meanUs), aboveFloorP50Us: Math.round(f.p50us - floor.p50Us) };
  }
  return out;
}

function printFloor(floor: AppendFigures, overhead: Record<string, Overhead>): void {
  console.log(
    `\nQD1 write floor: R3 append of 4 KiB with fsync (nats-server ${NATS_SERVER_PINNED}, sync_interval: always; ${floor.appends} appends from a bare client on the leader's server, nothing else running):` +
      ` mean ${floor.meanUs.toFixed(0)} µs, p50 ${floor.p50Us.toFixed(0)} µs, p99 ${floor.p99Us.toFixed(0)} µs`,
  );
  console.log(`${QD1_WRITE}, the path's overhead above the floor:`);
  for (const [layout, o] of Object.entries(overhead)) {
    const share = o.meanUs > 0 ? ` (${Math.round((100 * o.aboveFloorMeanUs) / o.meanUs)}% of the write)` : '';
    console.log(
      `  ${layout.padEnd(9)} mean ${o.meanUs} µs = floor ${floor.meanUs.toFixed(0)} + ${o.aboveFloorMeanUs} µs${share};  p50 ${o.p50Us} µs = floor ${floor.p50Us.toFixed(0)} + ${o.aboveFloorP50Us} µs`,
    );
  }
}

/** Each workload's best IOPS over the default layout's: 1 where the default is the best. */
function slowdowns(rows: Row[]): Record<string, number> | undefined {
  if (Object.keys(rows[0]?.layouts ?? {}).length < 2 || rows[0]?.layouts[DEFAULT_LAYOUT] === undefined) return undefined;
  return Object.fromEntries(rows.map((r) => [r.workload, Math.max(...Object.values(r.layouts).map((f) => f.iops)) / r.layouts[DEFAULT_LAYOUT]!.iops]));
}

function printSlowdowns(slow: Record<string, number>): void {
  const worst = Math.max(...Object.values(slow));
  const list = Object.entries(slow)
    .map(([w, x]) => `${w} ${x.toFixed(2)}x`)
    .join(', ');
  console.log(`\nthe best layout's IOPS over the default's (${DEFAULT_LAYOUT}): ${list}; within ${LAYOUT_SLOWDOWN_MAX}x on every workload: ${worst <= LAYOUT_SLOWDOWN_MAX ? 'yes' : 'no'}`);
}

async function main(): Promise<void> {
  const o = options();
  const scratch = mkdtempSync(join(tmpdir(), 'strata-bench-fio-'));
  try {
    process.stderr.write(`QD1 write floor: ${o.appends} R3 appends with fsync, nothing else running\n`);
    const floor = await measureR3Appends({ label: 'floor', syncAlways: true }, o.appends);
    process.stderr.write(`fio ${o.runtime} s per workload over ${o.size}; baseline nbdkit memory over loopback TCP\n`);
    const baseline = await measureNbdkit(o, scratch);
    const runs: Partial<Record<Layout, LayoutRun>> = {};
    for (const layout of o.layouts) runs[layout] = await measureStrata(layout, o, scratch);

    const rows = rowsOf(baseline, runs);
    const overhead = overheads(rows, floor);
    const slow = slowdowns(rows);
    printFigures(rows, o.layouts);
    printCpu(rows, o.layouts, runs);
    printFloor(floor, overhead);
    if (slow !== undefined) printSlowdowns(slow);

    const idleCpuPercent = Object.fromEntries(Object.entries(runs).map(([l, r]) => [l, r.idleCpuPercent]));
    const result = { at: new Date().toISOString(), runtimeS: o.runtime, size: o.size, cluster: '3 nodes, 3 nats-servers, RF 3', defaultLayout: DEFAULT_LAYOUT, rows, idleCpuPercent, floor, qd1WriteOverhead: overhead, slowdownOfDefault: slow };
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`figures written to ${o.out}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
