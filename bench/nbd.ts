// `npm run bench`: fio's nbd engine against a local 3-node Strata cluster (3
// nats-servers, a container with RF 3: like for like with a 3-replica Ceph pool), in
// each process layout, and in the same run against nbdkit's memory plugin over
// loopback TCP, the baseline every figure is divided by. Prints IOPS, MB/s, p50 and
// p99 completion latency and the ratio to nbdkit next to Ceph RBD's ratio on this
// kind of machine, and writes the same figures to bench/results/nbd.json.
//
// It is a measurement, not a test: it asserts nothing about speed. It fails only
// when something does not run (fio errors, a cluster that does not start).
//
// Options: --runtime S (seconds per workload, default 10), --size SIZE (the region
// fio works in, default 256M), --layouts separate,colocate, --out FILE.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, waitForDrained } from '../test/harness';
import { createdId, fio, startCluster, startNbdkit, strata, type Figures, type FioJob } from './common';

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

interface Options {
  runtime: number;
  size: string;
  layouts: Array<'separate' | 'colocate'>;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: { runtime: { type: 'string', default: '10' }, size: { type: 'string', default: '256M' }, layouts: { type: 'string', default: 'separate,colocate' }, out: { type: 'string' } },
    strict: true,
  });
  const runtime = Number(values.runtime);
  if (!Number.isInteger(runtime) || runtime < 1 || runtime > 600) throw new Error('--runtime must be a whole number of seconds from 1 to 600');
  if (!/^\d+[KMG]$/.test(values.size)) throw new Error('--size must look like 256M or 1G');
  const layouts = values.layouts.split(',').map((l) => l.trim());
  for (const l of layouts) if (l !== 'separate' && l !== 'colocate') throw new Error(`unknown layout ${l}: use separate and/or colocate`);
  return { runtime, size: values.size, layouts: layouts as Options['layouts'], out: values.out ?? join(repoRoot, 'bench', 'results', 'nbd.json') };
}

function job(w: Workload, o: Options): FioJob {
  return { name: w.name, rw: w.rw, bs: w.bs, iodepth: w.iodepth, size: o.size, runtimeS: o.runtime, rampS: 1 };
}

async function measureStrata(layout: 'separate' | 'colocate', o: Options, scratch: string): Promise<Record<string, Figures>> {
  const cluster = await startCluster(layout, ['--nats', '3', ...(layout === 'colocate' ? ['--colocate'] : [])]);
  try {
    await strata(cluster.dir, ['container', 'create', 'rf3', '--rf', '3']);
    const id = createdId(await strata(cluster.dir, ['vdisk', 'create', 'bench', '--size', '1G', '--container', 'rf3']));
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/bench`;
    const out: Record<string, Figures> = {};
    for (const w of workloads) {
      out[w.name] = await fio(uri, job(w, o), scratch);
      process.stderr.write(`  ${layout.padEnd(9)} ${w.name.padEnd(19)} ${String(out[w.name]!.iops).padStart(7)} IOPS\n`);
      // Reads measure the drained steady state, not the oplog index.
      if (w.rw === 'write') await waitForDrained(cluster.natsUrl, id, 120_000);
    }
    await cluster.stop();
    return out;
  } catch (err) {
    await cluster.stop(true);
    throw err;
  }
}

async function measureNbdkit(o: Options, scratch: string): Promise<Record<string, Figures>> {
  const nbdkit = await startNbdkit();
  try {
    const out: Record<string, Figures> = {};
    for (const w of workloads) {
      out[w.name] = await fio(nbdkit.uri, job(w, o), scratch);
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

async function main(): Promise<void> {
  const o = options();
  const scratch = mkdtempSync(join(tmpdir(), 'strata-bench-fio-'));
  try {
    process.stderr.write(`fio ${o.runtime} s per workload over ${o.size}; baseline nbdkit memory over loopback TCP\n`);
    const baseline = await measureNbdkit(o, scratch);
    const layouts: Record<string, Record<string, Figures>> = {};
    for (const layout of o.layouts) layouts[layout] = await measureStrata(layout, o, scratch);

    const rows = workloads.map((w) => {
      const base = baseline[w.name]!;
      const per: Record<string, Figures & { ratio: number }> = {};
      for (const [layout, figs] of Object.entries(layouts)) per[layout] = { ...figs[w.name]!, ratio: figs[w.name]!.iops / base.iops };
      return { workload: w.name, nbdkit: base, ceph: w.ceph, goal: w.ceph * w.goal, layouts: per };
    });

    const header = ['workload', 'nbdkit IOPS', ...o.layouts.flatMap((l) => [`${l} IOPS`, 'MB/s', 'p50 µs', 'p99 µs', 'ratio']), 'ceph', 'goal'];
    const lines = rows.map((r) => [
      r.workload,
      String(r.nbdkit.iops),
      ...o.layouts.flatMap((l) => {
        const f = r.layouts[l]!;
        return [String(f.iops), String(f.mbps), String(f.p50us), String(f.p99us), pct(f.ratio)];
      }),
      pct(r.ceph),
      pct(r.goal),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(fmt(header));
    for (const l of lines) console.log(fmt(l));

    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify({ at: new Date().toISOString(), runtimeS: o.runtime, size: o.size, cluster: '3 nodes, 3 nats-servers, RF 3', rows }, null, 2)}\n`);
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
