// Crash injection at seeded random points (issue 17): one `strata up` cluster of three
// nodes, RF 2, one process per actor. For each operation (create, snapshot, clone,
// delete, re-replication, drain) the seed picks a victim (the curator, a
// vdisk-controller, a metadata shard or an extent store, on a node it picks; for
// snapshot and clone also the CLI that makes them) and a delay into the operation; the
// victim gets SIGKILL and its supervisor restarts it (the CLI is not run again).
// Then one full curator scan runs (after the creating timeout and the garbage grace,
// shortened here), the copies it queued finish, and:
//  - the checker (test/harness/checker.ts over @strata/sweep checkCluster) walks every
//    config vDisk, metadata map, `own` key, oplog subject and disk directory, and finds
//    no garbage and no dangling reference;
//  - every acknowledged write reads back through a real NBD client (qemu-io), and the
//    operation's outcome as clients see it is old or new, never half (a snapshot or
//    clone either absent or complete with the source's data; a removed vDisk gone
//    whole; a copied extent group at RF with its files).
// The seed is printed; STRATA_CRASH_SEED=<n> replays one, STRATA_CRASH_SEEDS=<k> runs k
// seeds on the same cluster (`npm run crash -- --seeds k`).
import { connectBus, type Bus } from '@strata/bus';
import { CuratorOp, EstoreOp, curatorScanReply, curatorStatusReply, egDeleteReply, egWriteReply, subjects } from '@strata/proto';
import { describeFindings } from '@strata/sweep';
import { ConfigClient, UpClusters, childMatching, sleep, waitFor, type UpCluster } from '../harness';
import { checkLiveCluster } from '../harness/checker';
import { egroupsOf, protectionProblem } from '../harness/curator';
import { HA_TEST_ENV, strata } from '../harness/ha';
import { run } from '../harness/processes';
import { seededRandom } from '../harness/random';
import { qemuIo, qemuIoReadOnly } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Extent-group ids of the planted stray replicas (no vDisk reaches them): this plus the seed. */
const STRAY_BASE = 9_000_000_000_000n;
/** How old a snapshot or clone left creating must be to be swept, and a replica no entry names to be deleted. */
const CREATING_TIMEOUT_MS = 2_000;
const GC_GRACE_MS = 1_000;
const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  // Scans only on request: each check follows exactly one.
  STRATA_CURATOR_SCAN_INTERVAL_MS: '600000',
  STRATA_CREATING_TIMEOUT_MS: String(CREATING_TIMEOUT_MS),
  STRATA_GC_GRACE_MS: String(GC_GRACE_MS),
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  // Copies at 4 MiB/s: a copy of a 2 MiB extent group takes long enough to be cut.
  STRATA_CURATOR_COPY_BYTES_PER_SEC: String(4 * MiB),
  STRATA_RESTART_DELAY_MS: '300',
  // CRASH_TEST_GC=off: the garbage collection deletes nothing, and the checker must find the planted stray replica.
  STRATA_GC: process.env.CRASH_TEST_GC ?? 'on',
};

const VICTIMS = ['curator', 'vdisk-controller', 'metadata-shard', 'extent-store'] as const;
/** Snapshot and clone are driven by the CLI (tentative record, cut or row copy, commit): it is a victim there too. */
const MAKERS = [...VICTIMS, 'cli'] as const;
type Victim = (typeof MAKERS)[number];
const NODES = ['n1', 'n2', 'n3'] as const;

const clusters = new UpClusters('crash');

function seedsToRun(): number[] {
  const given = process.env.STRATA_CRASH_SEED;
  if (given !== undefined && given !== '') return [Number(given)];
  const count = Number(process.env.STRATA_CRASH_SEEDS ?? '1');
  return Array.from({ length: count }, () => Math.floor(Math.random() * 2 ** 31));
}

interface Crash {
  victim: Victim;
  node: string;
  delayMs: number;
}

/** The process of `victim` on `node` (the shard of node k is `md-k`). */
function victimPattern(victim: Exclude<Victim, 'cli'>, node: string): RegExp {
  if (victim === 'metadata-shard') return new RegExp(`metadata-shard/dist/main\\.js --shard md-${node.slice(1)}( |$)`);
  return new RegExp(`${victim}/dist/main\\.js --node ${node}( |$)`);
}

describe('crash injection: after one scan the cluster holds no garbage and no dangling reference', () => {
  let cluster: UpCluster;
  let bus: Bus;
  let config: ConfigClient;
  const seeds = seedsToRun();
  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 3, layout: 'separate', env: ENV });
    bus = await connectBus({ name: 'crash-test', servers: cluster.natsUrl });
    config = new ConfigClient(bus, 10_000);
  }, 120_000);
  afterAll(async () => {
    await bus?.close();
    await clusters.stopAll();
  }, 60_000);

  /** SIGKILL of the victim `delayMs` after the call; resolves once its supervisor has started it again. */
  async function crash(c: Crash, log: string[]): Promise<void> {
    await sleep(c.delayMs);
    if (c.victim === 'cli') {
      // The command's own process: not restarted; what it left is the curator's to clean.
      if (cliPid === undefined) return void log.push(`the CLI had not started ${c.delayMs} ms in`);
      const killed = (() => {
        try {
          process.kill(cliPid, 'SIGKILL');
          return true;
        } catch {
          return false;
        }
      })();
      log.push(killed ? `killed the CLI (pid ${cliPid}) ${c.delayMs} ms in` : `the CLI had exited ${c.delayMs} ms in`);
      return;
    }
    // The curator that matters is the master (a standby does nothing to cut): the seed's node is for the others.
    const master = c.victim === 'curator' ? (await bus.request(subjects.curator(CuratorOp.status), {}, curatorStatusReply, { timeoutMs: 5_000 }).catch(() => undefined))?.master : undefined;
    const node = master ?? c.node;
    const pattern = victimPattern(c.victim, node);
    const pid = await childMatching(cluster.up.pid(), pattern);
    process.kill(pid, 'SIGKILL');
    log.push(`killed ${c.victim}${master === undefined ? '' : ' (the master)'} on ${node} (pid ${pid}) ${c.delayMs} ms in`);
    await waitFor(`${c.victim} on ${node} to be restarted`, 15_000, async () => {
      const next = await childMatching(cluster.up.pid(), pattern).catch(() => undefined);
      return next !== undefined && next !== pid;
    });
  }

  /** The PID of the `strata` command `maker` runs (the victim `cli`). */
  let cliPid: number | undefined;

  /** `strata ...args` as a victim may kill it: fails unless it exits 0. */
  async function maker(args: string[]): Promise<void> {
    cliPid = undefined;
    const { code, stderr } = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, ...args], { timeoutMs: 120_000, onStart: (pid) => (cliPid = pid) });
    if (code !== 0) throw new Error(`strata ${args.join(' ')} exited ${code}: ${stderr.trim()}`);
  }

  /** Runs `op` with `c` injected into it; the operation may fail (the crash is why), and says whether it did. */
  async function withCrash(c: Crash, log: string[], op: () => Promise<unknown>): Promise<{ ok: boolean; error?: string }> {
    const [result] = await Promise.all([
      op().then(
        (): { ok: boolean; error?: string } => ({ ok: true }),
        (err: unknown) => ({ ok: false, error: (err as Error).message.split('\n')[0] }),
      ),
      crash(c, log),
    ]);
    log.push(result.ok ? 'the operation succeeded' : `the operation failed: ${result.error}`);
    return result;
  }

  /** One full scan (the master may be changing after a kill: asked again within a bound), then its copies finished. */
  async function scanOnce(): Promise<void> {
    await waitFor('a curator master to answer a full scan', 60_000, async () => {
      try {
        await bus.request(subjects.curator(CuratorOp.scan), { full: true }, curatorScanReply, { timeoutMs: 30_000 });
        return true;
      } catch {
        return false;
      }
    });
    await waitFor('the copies of the scan to finish', 60_000, async () => {
      const s = await bus.request(subjects.curator(CuratorOp.status), {}, curatorStatusReply, { timeoutMs: 5_000 }).catch(() => undefined);
      return s !== undefined && s.copiesInFlight === 0 && s.progress.bytesToCopy === 0;
    });
  }

  /** After the creating timeout and the grace, one scan; then the checker must find nothing. */
  async function scanAndCheck(what: string, log: string[]): Promise<void> {
    await sleep(Math.max(CREATING_TIMEOUT_MS, GC_GRACE_MS) + 200);
    await scanOnce();
    const findings = await checkLiveCluster(cluster.natsUrl, CREATING_TIMEOUT_MS);
    if (findings.length > 0) throw new Error(`after ${what} (${log.join('; ')}), the checker found:\n${describeFindings(findings)}`);
    console.log(`${what}: ${log.join('; ')}; clean after one scan`);
  }

  async function vdiskId(name: string): Promise<bigint> {
    return (await config.get({ kind: 'vdisk', name })).id;
  }

  async function vdiskState(name: string): Promise<'absent' | 'creating' | 'deleting' | 'live'> {
    const v = (await config.list('vdisk')).find((x) => x.name === name);
    if (v === undefined) return 'absent';
    return v.spec.deletingSinceMs !== undefined ? 'deleting' : v.spec.creatingSinceMs !== undefined ? 'creating' : 'live';
  }

  const uri = (name: string, node = 1): string => `nbd://127.0.0.1:${cluster.nbdPort + node - 1}/${name}`;

  it.each(seeds)('seed %i: create, snapshot, clone, delete, re-replication and drain, each cut by a kill -9', async (seed) => {
    const random = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const next = (maxDelayMs: number, victims: readonly Victim[] = VICTIMS): Crash => ({ victim: pick(victims), node: pick(NODES), delayMs: Math.floor(random() * maxDelayMs) });
    console.log(`crash test seed ${seed} (STRATA_CRASH_SEED=${seed} replays it)`);
    const tag = `s${seed}`;
    const [src, snap, clone] = [`c-${tag}`, `snap-${tag}`, `clone-${tag}`];

    // What a crash between an extent group's placement and its entry leaves: a replica
    // file no entry names (planted, so every seed has garbage the scan must collect).
    const stray = STRAY_BASE + BigInt(seed);
    const disk = (await config.list('disk')).find((d) => d.name === 'n2-d1')!;
    await bus.request(subjects.estore('n2', EstoreOp.write), { disk: disk.id, egroup: stray, vdisk: 1n, epoch: 1, version: 1, sizeBytes: 64 * KiB, pieces: [{ offset: 0, data: new Uint8Array(64 * KiB).fill(9) }] }, egWriteReply, {
      timeoutMs: 10_000,
    });

    // create: a vDisk made and written through node 1 (8 MiB: four extent groups).
    let log = [`create ${src}`];
    const created = await withCrash(next(1500), log, async () => {
      await strata(cluster, ['vdisk', 'create', src, '--size', '16M']);
      await qemuIo(uri(src), ['write -P 0x11 0 8M'], 60_000);
    });
    await scanAndCheck('create', log);
    // The config object is one write and the data an acknowledged write: both there, or the write was never acknowledged.
    expect(await vdiskState(src)).toBe('live');
    if (!created.ok) await qemuIo(uri(src), ['write -P 0x11 0 8M'], 60_000);
    await qemuIo(uri(src), ['read -P 0x11 0 8M']);

    // snapshot: absent or complete, never half; complete, it holds the source's data.
    log = [`snapshot ${src} ${snap}`];
    const snapped = await withCrash(next(1200, MAKERS), log, () => maker(['vdisk', 'snapshot', src, snap]));
    await scanAndCheck('snapshot', log);
    const snapState = await vdiskState(snap);
    expect(snapped.ok ? ['live'] : ['live', 'absent']).toContain(snapState);
    if (snapState === 'absent') await strata(cluster, ['vdisk', 'snapshot', src, snap]);
    await qemuIoReadOnly(uri(snap, 2), ['read -P 0x11 0 8M']);
    // The source moves on: its first 2 MiB rewritten (the snapshot keeps the old extent group).
    await qemuIo(uri(src), ['write -P 0x22 0 2M']);

    // clone: the same.
    log = [`clone ${snap} ${clone}`];
    const cloned = await withCrash(next(1200, MAKERS), log, () => maker(['vdisk', 'clone', snap, clone]));
    await scanAndCheck('clone', log);
    const cloneState = await vdiskState(clone);
    expect(cloned.ok ? ['live'] : ['live', 'absent']).toContain(cloneState);
    if (cloneState === 'absent') await strata(cluster, ['vdisk', 'clone', snap, clone]);
    await qemuIo(uri(clone, 3), ['read -P 0x11 0 8M']);

    // delete: the source removed, the sweep (in the scan) cut. Its extent groups the
    // snapshot names stay (their writer gone); after one more scan nothing else of it is left.
    const srcId = await vdiskId(src);
    await strata(cluster, ['vdisk', 'rm', src]);
    log = [`rm ${src} and a scan`];
    await withCrash(next(1500), log, () => scanOnce());
    await scanAndCheck('delete', log);
    expect(await vdiskState(src)).toBe('absent');
    await qemuIoReadOnly(uri(snap, 2), ['read -P 0x11 0 8M']);
    await qemuIo(uri(clone, 3), ['read -P 0x11 0 8M']);

    // re-replication: one replica of an extent group only the snapshot and clone
    // name (its writer, the source, is gone) lost; a full scan copies it back, cut.
    const kept = await egroupsOf(cluster.natsUrl, srcId);
    // One that holds data: an extent, within the size the entry records. (Its version
    // may be 0: a controller that took over after the direct writes only adopted them.)
    const held = [...kept].find(([, e]) => e.extents.length > 0 && e.sizeBytes > 0);
    if (held === undefined) throw new Error(`no extent group of ${src} holds data: ${[...kept].map(([id, e]) => `${id} (${e.extents.length} extents, ${e.sizeBytes} bytes)`).join(', ')}`);
    const [egroup, entry] = held;
    const lost = entry.replicas[0]!;
    // Lost as a failed disk loses it: deleted through its extent store (which then answers NOT_FOUND).
    await bus.request(subjects.estore(lost.node, EstoreOp.delete), { disk: lost.disk, egroup }, egDeleteReply, { timeoutMs: 10_000 });
    log = [`re-replication of egroup ${egroup} (its replica on ${lost.node} deleted)`];
    await withCrash(next(1500), log, () => scanOnce());
    await scanAndCheck('re-replication', log);
    const after = (await egroupsOf(cluster.natsUrl, srcId)).get(egroup);
    expect(after === undefined ? 'no entry' : protectionProblem(egroup, after, 2, new Set())).toBeUndefined();
    await qemuIo(uri(clone, 3), ['read -P 0x11 0 8M']);

    // drain: a node drained (the curator moves every replica off it), cut; then cancelled.
    const drained = pick(NODES);
    log = [`drain ${drained}`];
    await withCrash(next(1500), log, () => strata(cluster, ['node', 'drain', drained, '--wait', '--timeout', '60']));
    await scanAndCheck('drain', log);
    await strata(cluster, ['node', 'drain', drained, '--wait', '--timeout', '60']);
    await strata(cluster, ['node', 'drain', drained, '--cancel']);
    await qemuIoReadOnly(uri(snap, 2), ['read -P 0x11 0 8M']);
    await qemuIo(uri(clone, 3), ['read -P 0x11 0 8M']);

    // The seed's vDisks removed; one scan leaves nothing of them.
    await strata(cluster, ['vdisk', 'rm', clone]);
    await strata(cluster, ['vdisk', 'rm', snap]);
    await scanAndCheck('the clean-up', ['rm of the seed\'s vdisks']);
    cluster.passed = true;
  }, 240_000);

});
