// `npm run bench:qos`: does admission control keep its promises under a noisy
// neighbour? A local 3-node cluster (one process per node), every vDisk owned by
// node 1 (all I/O enters through node 1's gateway), fio with its nbd engine:
//
//   1. A (high, 4 KiB random reads at QD1) alone: p50 and p99.
//   2. A again while B (low) hammers the node with 4 KiB random writes at QD32 and
//      1 MiB sequential writes at QD8: A's p99 against its p99 alone.
//   3. C and D (normal, weights 3 and 1) both saturating with 4 KiB random reads at
//      QD32: the C:D ratio of IOPS.
//   4. E (capped at 500 IOPS) with 4 KiB random reads at QD16: its IOPS (the first
//      seconds, where the burst allowance goes, are not counted).
//   5. F (low, reservation of 1000 IOPS) with 4 KiB random reads at QD8 while C and D
//      saturate the node: its IOPS against the reservation; then the reservation is
//      removed live (`strata vdisk qos F --reserved-iops none`) and the phase runs
//      again, to show what the reservation bought.
//
// Prints the figures and writes them to bench/results/qos.json. A measurement, not
// a test: it fails only when something does not run.
//
// Options: --runtime S (seconds per phase, default 10), --size SIZE (region per vDisk,
// default 32M, written once before the phases so reads read data), --out FILE.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, waitForDrained } from '../test/harness';
import { createdId, fio, startCluster, strata, type Figures, type FioJob, type LocalCluster } from './common';

interface Options {
  runtimeS: number;
  size: string;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({ options: { runtime: { type: 'string', default: '10' }, size: { type: 'string', default: '32M' }, out: { type: 'string' } }, strict: true });
  const runtimeS = Number(values.runtime);
  if (!Number.isInteger(runtimeS) || runtimeS < 3 || runtimeS > 600) throw new Error('--runtime must be a whole number of seconds from 3 to 600');
  if (!/^\d+[KMG]$/.test(values.size)) throw new Error('--size must look like 32M or 1G');
  return { runtimeS, size: values.size, out: values.out ?? join(repoRoot, 'bench', 'results', 'qos.json') };
}

const E_CAP_IOPS = 500;
const F_RESERVED_IOPS = 1000;

/** The vDisks and their QoS, as `strata vdisk create` options. */
const vdisks: Record<string, string[]> = {
  a: ['--priority', 'high'],
  b: ['--priority', 'low'],
  c: ['--weight', '3'],
  d: ['--weight', '1'],
  e: ['--iops-cap', String(E_CAP_IOPS)],
  f: ['--priority', 'low', '--reserved-iops', String(F_RESERVED_IOPS)],
};

function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

async function main(): Promise<void> {
  const o = options();
  const scratch = mkdtempSync(join(tmpdir(), 'strata-bench-qos-'));
  let cluster: LocalCluster | undefined;
  try {
    cluster = await startCluster('qos', []);
    const { dir, nbdPort, natsUrl, security } = cluster;
    const uri = (v: string): string => `nbd://127.0.0.1:${nbdPort}/${v}`;
    const job = (name: string, rw: FioJob['rw'], bs: string, iodepth: number, rampS = 2): FioJob => ({ name, rw, bs, iodepth, size: o.size, runtimeS: o.runtimeS, rampS });
    const ids: Record<string, bigint> = {};
    for (const [name, qos] of Object.entries(vdisks)) ids[name] = createdId(await strata(dir, ['vdisk', 'create', name, '--size', '1G', ...qos]));
    say(`vDisks:\n${await strata(dir, ['vdisk', 'ls'])}`);

    // Fill each region once (this also makes node 1 the owner of every vDisk), then
    // let the drains finish, so every phase reads drained data.
    say(`writing ${o.size} into each vDisk`);
    for (const name of Object.keys(vdisks)) await fio(uri(name), { ...job(`fill ${name}`, 'write', '1M', 8, 0), runtimeS: 300, timeBased: false }, scratch);
    for (const id of Object.values(ids)) await waitForDrained(natsUrl, id, 180_000, security);

    say('phase 1: A alone');
    const aAlone = await fio(uri('a'), job('a alone', 'randread', '4k', 1), scratch);
    say('phase 2: A while B writes');
    const [aLoaded, bRandom, bSeq] = await Promise.all([
      fio(uri('a'), job('a loaded', 'randread', '4k', 1), scratch),
      fio(uri('b'), job('b random', 'randwrite', '4k', 32, 1), scratch),
      fio(uri('b'), job('b seq', 'write', '1M', 8, 1), scratch),
    ]);
    await waitForDrained(natsUrl, ids.b!, 180_000, security);
    say('phase 3: C and D saturating');
    const [c, d] = await Promise.all([fio(uri('c'), job('c', 'randread', '4k', 32), scratch), fio(uri('d'), job('d', 'randread', '4k', 32), scratch)]);
    say('phase 4: E capped');
    const e = await fio(uri('e'), { ...job('e', 'randread', '4k', 16), rampS: 3 }, scratch);
    say('phase 5: F reserved, with C and D saturating');
    const fBesideCAndD = async (): Promise<Figures> =>
      (await Promise.all([fio(uri('f'), job('f', 'randread', '4k', 8), scratch), fio(uri('c'), job('c', 'randread', '4k', 32), scratch), fio(uri('d'), job('d', 'randread', '4k', 32), scratch)]))[0];
    const fReserved = await fBesideCAndD();
    say(await strata(dir, ['vdisk', 'qos', 'f', '--reserved-iops', 'none']));
    const fUnreserved = await fBesideCAndD();

    const results = {
      at: new Date().toISOString(),
      runtimeS: o.runtimeS,
      cluster: '3 nodes, one process per node (the default layout), one nats-server; every vDisk owned by node 1',
      a: { alone: aAlone, underLoad: aLoaded, p99Ratio: aLoaded.p99us / aAlone.p99us, p50Ratio: aLoaded.p50us / aAlone.p50us },
      b: { random: bRandom, sequential: bSeq },
      cd: { c, d, ratio: c.iops / d.iops, target: 3 },
      e: { ...e, cap: E_CAP_IOPS, error: e.iops / E_CAP_IOPS - 1 },
      f: { reserved: F_RESERVED_IOPS, withReservation: fReserved, withoutReservation: fUnreserved },
    };
    const row = (label: string, f: Figures): string => `${label.padEnd(28)} ${String(f.iops).padStart(7)} IOPS  p50 ${String(f.p50us).padStart(6)} µs  p99 ${String(f.p99us).padStart(7)} µs`;
    console.log(row('A alone (high, QD1 read)', aAlone));
    console.log(row('A under B', aLoaded));
    console.log(row('  B 4K random writes QD32', bRandom));
    console.log(row('  B 1M sequential writes QD8', bSeq));
    console.log(`A p99 under load / alone: ${results.a.p99Ratio.toFixed(2)}x (goal at most 2x, aim 1.5x); p50 ${results.a.p50Ratio.toFixed(2)}x`);
    console.log(row('C (weight 3)', c));
    console.log(row('D (weight 1)', d));
    console.log(`C:D = ${results.cd.ratio.toFixed(2)} (goal 3 ± 10%)`);
    console.log(`E: ${e.iops} IOPS against a cap of ${E_CAP_IOPS} (${(results.e.error * 100).toFixed(1)}%; goal within 5%)`);
    console.log(`F: ${fReserved.iops} IOPS with a reservation of ${F_RESERVED_IOPS}; ${fUnreserved.iops} IOPS once it was removed`);
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`figures written to ${o.out}`);
    await cluster.stop();
  } catch (err) {
    await cluster?.stop(true);
    throw err;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:qos failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
