// `npm run bench:rebuild`: how long the curator takes to restore RF after a node is
// lost for good, against what the disks and the bus can move, and what the rebuild
// costs a QD1 reader. A local `strata up --insecure` cluster of four nodes (one process per
// node), a container of RF 2 and one vDisk owned by n2, written sequentially (fio,
// 1 MiB at QD8) with --gib GiB through n2's gateway and drained to the extent
// groups. Then:
//
//   limits   measured in the same run on the same machine: sequential 1 MiB writes
//            to a file in the cluster's directory, fsync'd (what a copy's target
//            does), and 1 MiB NATS requests through the cluster's nats-server with
//            four in flight (what each copied chunk crosses); and the curator's own
//            throttle (STRATA_CURATOR_COPY_BYTES_PER_SEC, --copy-mibps).
//   before   a QD1 4 KiB random reader (fio) through n2's gateway, 8 s.
//   rebuild  every process of n1 killed -9 (`strata up` restarts none of them for ten
//            minutes); the reader goes on in 5 s slices until every extent group of
//            the vDisk is back to RF replicas on live nodes (read in md-egroup every
//            half second).
//
// Prints the bytes that lost a replica, the time from the kill to RF restored, the
// time from the first copy to the last (curator.replica.copied events) and that copy
// rate as a fraction of each limit, and the reader's p99 before and during the
// rebuild, with the CPU each role of the cluster used during the reader's slice before
// and its worst slice during (from /proc: where the time goes). Writes them to
// bench/results/rebuild.json. A measurement, not a test: it
// fails only when something does not run.
//
// Options: --gib N (default 1), --copy-mibps M (default 64, the curator's default),
// --out FILE.
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EventType } from '@strata/proto';
import { connectClient, readEvents, repoRoot, sleep, waitFor } from '../test/harness';
import { egroupsOf, protectionProblem } from '../test/harness/curator';
import { HA_TEST_ENV, hostProcesses, killAll } from '../test/harness/ha';
import { readOwnership, waitForDrained } from '../test/harness/strata';
import { createdId, fio, startCluster, strata, type Figures, type LocalCluster } from './common';
import { clusterProcesses, cpuPercent, sampleCpu, type RoleProcess } from './cpu';

const MiB = 2 ** 20;
const RF = 2;
const NODES = 4;
const VICTIM = 'n1';
/** The owner and the gateway every client goes through. */
const OWNER = 'n2';
const REPROTECT_DELAY_MS = 5_000;
const READER_SLICE_S = 5;
/** The longest the rebuild may take before the bench gives up. */
const REBUILD_TIMEOUT_MS = 30 * 60_000;

interface Options {
  gib: number;
  copyMibps: number;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({ options: { gib: { type: 'string', default: '1' }, 'copy-mibps': { type: 'string', default: '64' }, out: { type: 'string' } }, strict: true });
  const gib = Number(values.gib);
  if (!Number.isFinite(gib) || gib < 0.125 || gib > 64) throw new Error('--gib must be a number from 0.125 to 64');
  const copyMibps = Number(values['copy-mibps']);
  if (!Number.isInteger(copyMibps) || copyMibps < 1 || copyMibps > 4096) throw new Error('--copy-mibps must be a whole number from 1 to 4096');
  return { gib, copyMibps, out: values.out ?? join(repoRoot, 'bench', 'results', 'rebuild.json') };
}

const mbps = (bytes: number, ms: number): number => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

/** Sequential 1 MiB writes of `bytes` to a file in `dir`, then one fsync: MB/s. */
function diskWriteMbps(dir: string, bytes: number): number {
  const file = join(dir, 'bench-disk-limit.bin');
  const chunk = Buffer.alloc(MiB, 0x5a);
  const started = performance.now();
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; done += MiB) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return mbps(bytes, performance.now() - started);
}

/** 1 MiB requests through the cluster's nats-server, four in flight, for `ms`: MB/s one way. */
async function busMbps(natsUrl: string, ms: number): Promise<number> {
  const server = await connectClient(natsUrl);
  const client = await connectClient(natsUrl);
  try {
    const subject = `bench.rebuild.limit.${process.pid}`;
    const sub = server.subscribe(subject, { callback: (_err, msg) => {
        msg.respond(new Uint8Array(1));
      },
    });
    await server.flush();
    const payload = new Uint8Array(MiB);
    const started = performance.now();
    let sent = 0;
    const lane = async (): Promise<void> => {
      while (performance.now() - started < ms) {
        await client.request(subject, payload, { timeout: 10_000 });
        sent += MiB;
      }
    };
    await Promise.all([lane(), lane(), lane(), lane()]);
    const elapsed = performance.now() - started;
    sub.unsubscribe();
    return mbps(sent, elapsed);
  } finally {
    await client.close();
    await server.close();
  }
}

/** Extent groups of `vdisk` that are not RF replicas on live nodes; and the bytes with a replica on `node`. */
async function protection(natsUrl: string, vdisk: bigint, dead: ReadonlySet<string>): Promise<{ groups: number; problems: number; bytesOn: (node: string) => number }> {
  const entries = await egroupsOf(natsUrl, vdisk);
  const problems = [...entries].filter(([id, entry]) => protectionProblem(id, entry, RF, dead) !== undefined).length;
  const bytesOn = (node: string): number => [...entries.values()].filter((e) => e.replicas.some((r) => r.node === node)).reduce((sum, e) => sum + e.sizeBytes, 0);
  return { groups: entries.size, problems, bytesOn };
}

/** One reader slice's figures, and the CPU each role of the cluster used meanwhile (% of one core). */
type Slice = Figures & { cpuPct: Record<string, number> };

/** QD1 4 KiB random reads of `seconds`, with the cluster's CPU by role over the same time. */
async function readSlice(uri: string, scratch: string, regionBytes: number, name: string, seconds: number, processes: readonly RoleProcess[]): Promise<Slice> {
  const cpuBefore = sampleCpu(processes);
  const started = performance.now();
  const figures = await fio(uri, { name, rw: 'randread', bs: '4k', iodepth: 1, size: String(regionBytes), runtimeS: seconds, rampS: 0 }, scratch);
  return { ...figures, cpuPct: cpuPercent(processes, cpuBefore, sampleCpu(processes), (performance.now() - started) / 1000) };
}

/** Reader slices of READER_SLICE_S until `done()`. */
async function readWhile(uri: string, scratch: string, regionBytes: number, processes: readonly RoleProcess[], done: () => boolean): Promise<Slice[]> {
  const slices: Slice[] = [];
  while (!done()) slices.push(await readSlice(uri, scratch, regionBytes, `reader-${slices.length}`, READER_SLICE_S, processes));
  return slices;
}

/** `node-host 152%, curator 31%, nats-server 18%, total 214%`: the roles that used any CPU, busiest first. */
function formatCpu(cpuPct: Record<string, number>): string {
  const roles = Object.entries(cpuPct).filter(([role, pct]) => role !== 'total' && pct >= 1).sort((a, b) => b[1] - a[1]);
  return [...roles, ['total', cpuPct.total ?? 0] as const].map(([role, pct]) => `${role} ${pct}%`).join(', ');
}

async function writeData(cluster: LocalCluster, o: Options): Promise<{ id: bigint; uri: string; bytes: number }> {
  const bytes = Math.round(o.gib * 1024) * MiB;
  await strata(cluster.dir, ['container', 'create', 'bench', '--rf', String(RF)]);
  const id = createdId(await strata(cluster.dir, ['vdisk', 'create', 'rebuild', '--size', `${Math.ceil((bytes * 1.1) / MiB)}M`, '--container', 'bench']));
  const uri = `nbd://127.0.0.1:${cluster.nbdPort + Number(OWNER.slice(1)) - 1}/rebuild`;
  const written = await fio(uri, { name: 'fill', rw: 'write', bs: '1M', iodepth: 8, size: String(bytes), runtimeS: 3600, rampS: 0, timeBased: false }, cluster.dir);
  const owner = (await readOwnership(cluster.natsUrl, id))?.owner;
  if (owner !== OWNER) throw new Error(`vdisk rebuild is owned by ${owner}, not ${OWNER}`);
  process.stdout.write(`wrote ${o.gib} GiB through ${OWNER}'s gateway at ${written.mbps} MB/s; draining the oplog\n`);
  await waitForDrained(cluster.natsUrl, id, 20 * 60_000);
  return { id, uri, bytes };
}

async function main(): Promise<void> {
  const o = options();
  const env = {
    ...HA_TEST_ENV,
    STRATA_RESTART_DELAY_MS: '600000',
    STRATA_REPROTECT_DELAY_MS: String(REPROTECT_DELAY_MS),
    STRATA_CURATOR_SCAN_INTERVAL_MS: '2000',
    STRATA_CURATOR_COPY_BYTES_PER_SEC: String(o.copyMibps * MiB),
  };
  // Plain NATS: the bench reads md-egroup, the events and the bus directly, as anyone.
  const cluster = await startCluster('rebuild', ['--insecure'], env, NODES);
  let ok = false;
  try {
    const diskMbps = diskWriteMbps(cluster.dir, 256 * MiB);
    const bus = await busMbps(cluster.natsUrl, 3_000);
    process.stdout.write(`limits: disk ${diskMbps} MB/s (1 MiB writes, fsync), bus ${bus} MB/s (1 MiB requests, 4 in flight), curator throttle ${mbps(o.copyMibps * MiB, 1000)} MB/s\n`);

    const { id, uri, bytes } = await writeData(cluster, o);
    // Every process, the victim's too (gone after the kill, they drop out of the CPU figures).
    const processes = await clusterProcesses(cluster.up.pid());
    const before = await readSlice(uri, cluster.dir, bytes, 'reader-before', 8, processes);
    const dead = new Set([VICTIM]);
    const lost = (await protection(cluster.natsUrl, id, dead)).bytesOn(VICTIM);

    const killedAt = Date.now();
    killAll((await hostProcesses(cluster.up.pid(), VICTIM)).keys());
    let restoredAt: number | undefined;
    const watch = waitFor('every extent group back to RF replicas on live nodes', REBUILD_TIMEOUT_MS, async () => {
      const p = await protection(cluster.natsUrl, id, dead);
      return p.groups > 0 && p.problems === 0;
    }, 500).then(() => {
      restoredAt = Date.now();
    });
    const during = await readWhile(uri, cluster.dir, bytes, processes, () => restoredAt !== undefined);
    await watch;
    await sleep(0);

    const nc = await connectClient(cluster.natsUrl);
    const copies = (await readEvents(nc, 1_000_000).finally(() => nc.close())).filter((ev) => ev.type === EventType.curatorReplicaCopied && ev.atMs >= killedAt);
    const copiedBytes = copies.reduce((sum, ev) => sum + (ev.bytes ?? 0), 0);
    const firstMs = Math.min(...copies.map((ev) => ev.atMs));
    const lastMs = Math.max(...copies.map((ev) => ev.atMs));
    // An event comes when its copy ends, so the time from the first event to the last
    // holds every copy but the first: its bytes are left out of the rate.
    const firstBytes = copies.find((ev) => ev.atMs === firstMs)?.bytes ?? 0;
    const copyMbps = mbps(copiedBytes - firstBytes, Math.max(1, lastMs - firstMs));
    const restoredS = Math.round(((restoredAt ?? Date.now()) - killedAt) / 100) / 10;
    const p99During = Math.max(...during.map((f) => f.p99us));
    const worst = during.find((f) => f.p99us === p99During)!;
    const result = {
      gib: o.gib,
      lostBytes: lost,
      copies: copies.length,
      copiedBytes,
      restoredAfterKillS: restoredS,
      copyingS: Math.round((lastMs - firstMs) / 100) / 10,
      copyMbps,
      limits: { diskMbps, busMbps: bus, throttleMbps: mbps(o.copyMibps * MiB, 1000) },
      reader: { before: { p50us: before.p50us, p99us: before.p99us, iops: before.iops, cpuPct: before.cpuPct }, during: during.map((f) => ({ p50us: f.p50us, p99us: f.p99us, iops: f.iops, cpuPct: f.cpuPct })) },
    };
    const pct = (x: number, of: number): string => `${Math.round((x / of) * 1000) / 10}%`;
    process.stdout.write(
      [
        `lost a replica: ${mbps(lost, 1000)} MB in ${copies.length} copies (${mbps(copiedBytes, 1000)} MB copied)`,
        `RF ${RF} restored ${restoredS} s after the kill (re-protection delay ${REPROTECT_DELAY_MS / 1000} s, node declared dead after ${Number(HA_TEST_ENV.STRATA_DEAD_TIMEOUT_MS) / 1000} s)`,
        `copying: ${result.copyingS} s from the end of the first copy to the end of the last, ${copyMbps} MB/s = ${pct(copyMbps, diskMbps)} of the disk, ${pct(copyMbps, bus)} of the bus, ${pct(copyMbps, result.limits.throttleMbps)} of the throttle`,
        `QD1 4K reader p99: ${before.p99us} us before, ${p99During} us during (worst of ${during.length} slices of ${READER_SLICE_S} s; ratio ${Math.round((p99During / before.p99us) * 100) / 100}); IOPS ${before.iops} before, ${Math.round(during.reduce((s, f) => s + f.iops, 0) / Math.max(1, during.length))} during`,
        `CPU (% of one core, ${availableParallelism()} on this machine) while the reader ran before: ${formatCpu(before.cpuPct)}`,
        `CPU during the worst slice: ${formatCpu(worst.cpuPct)}`,
      ].join('\n') + '\n',
    );
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`results in ${o.out}\n`);
    ok = true;
  } finally {
    await cluster.stop(!ok);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:rebuild: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
