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
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, repoRoot, run, startNode, startProgram, waitFor, waitForDrained, type ActorProcess } from '../test/harness';

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
  { name: 'seq write 1M QD8', rw: 'write', bs: '1M', iodepth: 8, ceph: 0.067, goal: 1.5 },
  { name: 'seq read 1M QD8', rw: 'read', bs: '1M', iodepth: 8, ceph: 0.31, goal: 2 },
  { name: 'rand read 4K QD1', rw: 'randread', bs: '4k', iodepth: 1, ceph: 0.162, goal: 2 },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', iodepth: 32, ceph: 0.181, goal: 2 },
  { name: 'rand write 4K QD1', rw: 'randwrite', bs: '4k', iodepth: 1, ceph: 0.105, goal: 1.5 },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', iodepth: 32, ceph: 0.027, goal: 1.5 },
];

interface Figures {
  iops: number;
  mbps: number;
  p50us: number;
  p99us: number;
}

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

async function fio(uri: string, w: Workload, o: Options, scratch: string): Promise<Figures> {
  const output = join(scratch, `fio-${w.rw}-${w.bs}-${w.iodepth}.json`);
  const args = [
    `--name=${w.rw}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${w.rw}`,
    `--bs=${w.bs}`,
    `--iodepth=${w.iodepth}`,
    `--size=${o.size}`,
    '--time_based',
    `--runtime=${o.runtime}`,
    '--ramp_time=1',
    '--output-format=json',
    `--output=${output}`,
  ];
  const { code, stdout, stderr } = await run('fio', args, { timeoutMs: (o.runtime + 60) * 1000 });
  if (code !== 0) throw new Error(`fio ${w.name} against ${uri} failed (${code}): ${(stdout + stderr).slice(-2000)}`);
  const job = (JSON.parse(readFileSync(output, 'utf8')) as { jobs: FioJob[] }).jobs[0]!;
  if (job.error !== 0) throw new Error(`fio ${w.name} against ${uri} reported error ${job.error}`);
  const side = w.rw === 'read' || w.rw === 'randread' ? job.read : job.write;
  return {
    iops: Math.round(side.iops),
    mbps: Math.round((side.bw_bytes / 1e6) * 10) / 10,
    p50us: Math.round((side.clat_ns.percentile['50.000000'] ?? Number.NaN) / 1000),
    p99us: Math.round((side.clat_ns.percentile['99.000000'] ?? Number.NaN) / 1000),
  };
}

interface FioSide {
  iops: number;
  bw_bytes: number;
  clat_ns: { percentile: Record<string, number> };
}
interface FioJob {
  error: number;
  read: FioSide;
  write: FioSide;
}

async function strata(dir: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await run(process.execPath, [join(repoRoot, 'cli', 'dist', 'main.js'), '--dir', dir, ...args], { timeoutMs: 60_000 });
  if (code !== 0) throw new Error(`strata ${args.join(' ')} failed (${code}): ${stderr}`);
  return stdout;
}

async function measureStrata(layout: 'separate' | 'colocate', o: Options, scratch: string): Promise<Record<string, Figures>> {
  const dir = mkdtempSync(join(tmpdir(), `strata-bench-${layout}-`));
  const nbdPort = await freePort();
  const natsPort = await freePort();
  const args = ['--dir', dir, 'up', '--nodes', '3', '--nats', '3', '--nats-port', String(natsPort), '--nbd-port', String(nbdPort)];
  if (layout === 'colocate') args.push('--colocate');
  let up: ActorProcess | undefined;
  try {
    up = startNode('cli/dist/main.js', args, { name: `strata up (${layout})`, env: { NATS_URL: '' } });
    await up.waitForOutput(/^ready$/m, 120_000);
    const natsUrl = readFileSync(join(dir, 'nats.url'), 'utf8').trim();
    await strata(dir, ['container', 'create', 'rf3', '--rf', '3']);
    const created = await strata(dir, ['vdisk', 'create', 'bench', '--size', '1G', '--container', 'rf3']);
    const idText = /\(id (\d+)/.exec(created)?.[1];
    if (idText === undefined) throw new Error(`could not read the vdisk id from: ${created}`);
    const id = BigInt(idText);
    const uri = `nbd://127.0.0.1:${nbdPort}/bench`;
    const out: Record<string, Figures> = {};
    for (const w of workloads) {
      out[w.name] = await fio(uri, w, o, scratch);
      process.stderr.write(`  ${layout.padEnd(9)} ${w.name.padEnd(19)} ${String(out[w.name]!.iops).padStart(7)} IOPS\n`);
      // Reads measure the drained steady state, not the oplog index.
      if (w.rw === 'write') await waitForDrained(natsUrl, id, 120_000);
    }
    await up.stop(20_000);
    rmSync(dir, { recursive: true, force: true });
    return out;
  } catch (err) {
    await up?.stop(20_000);
    process.stderr.write(`the ${layout} cluster's data and logs are kept in ${dir}\n`);
    throw err;
  }
}

async function measureNbdkit(o: Options, scratch: string): Promise<Record<string, Figures>> {
  const port = await freePort();
  const nbdkit = startProgram('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', '1G'], { name: 'nbdkit' });
  try {
    await waitFor('nbdkit to listen', 10_000, async () => (await run('nbdinfo', [`nbd://127.0.0.1:${port}/`], { timeoutMs: 5_000 })).code === 0);
    const out: Record<string, Figures> = {};
    for (const w of workloads) {
      out[w.name] = await fio(`nbd://127.0.0.1:${port}/`, w, o, scratch);
      process.stderr.write(`  ${'nbdkit'.padEnd(9)} ${w.name.padEnd(19)} ${String(out[w.name]!.iops).padStart(7)} IOPS\n`);
    }
    return out;
  } finally {
    await nbdkit.stop(5_000);
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
