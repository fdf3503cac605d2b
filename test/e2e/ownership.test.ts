// vDisk ownership end to end (design.md, "Ownership, liveness, fencing"): a real
// cluster started by `strata up --separate` (three nodes, one process per actor, so
// that one actor can be killed or paused alone), real NBD
// clients (qemu-io and fio with crc32c verification), and kill -9 or SIGSTOP of
// the owner. Timings are shortened for the tests: heartbeat 500 ms, fence 2 s,
// dead 3 s. It proves that:
//  - a shared vDisk written through gateways on two nodes (disjoint ranges) reads
//    the same from both: I/O at a node that does not own it is forwarded;
//  - an unshared vDisk whose client moves from node 1 to node 3 (a VM migration)
//    moves to node 3 by relinquish, with the move and its reason in the events;
//  - kill -9 of an unshared vDisk's owner controller during fio: the restarted
//    controller replays the oplog, fio sees no error, every write verifies;
//  - kill -9 of a shared vDisk's owner controller (node 2) during fio through node 1;
//  - the owner's vdisk-controller paused (SIGSTOP) past the dead timeout: its vDisk
//    fails over to the volunteer, and after SIGCONT nothing it sends is accepted:
//    every oplog entry after the new owner's marker carries the new epoch; data verifies;
//  - every process of the owner node paused (its metadata shard, extent store and
//    gateway too) under a verifying writer on another node's gateway: writes resume
//    after the failover, and with the node still paused every acknowledged write,
//    and data drained before the pause (extent groups with a replica on the paused
//    node and none on the new owner, map rows in partitions its shard held), reads
//    back through both other gateways with no error; after SIGCONT the old owner is
//    fenced and it all still reads back, through all three gateways;
//  - the coordinator (the config leader) killed -9 while a takeover waits at its
//    replay step: the restarted leader resumes it from its record in `own`, gives
//    up on the unresponsive node and finishes on the next one;
//  - every process of node 2 killed, its metadata shard included (and kept down): its
//    vDisk fails over to the live volunteer (epoch + 1, a failover event), fio sees no
//    error, data verifies.
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { decode } from '@strata/codec';
import { openBucket } from '@strata/kv';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { leaseRecord } from '@strata/lease';
import { EventType, buckets, keys, mdValue, oplogEntry, partitionOf, streams, subjects, takeoverRecord, type OplogEntry, type VdiskOwnership } from '@strata/proto';
import { UpClusters, AckedWriter, childMatching, createdId, readOwnership, children, connectClient, qemuIo, readEvents, run, sleep, waitFor, waitForDrained, type UpCluster, type WrittenBlock } from '../harness';
import { qemuIoChecked, readBack, readCommand } from '../harness/verify';

/** Short liveness timings for every actor and the config service. */
const TIMINGS = { STRATA_HEARTBEAT_INTERVAL_MS: '500', STRATA_FENCE_TIMEOUT_MS: '2000', STRATA_DEAD_TIMEOUT_MS: '3000', STRATA_TAKEOVER_STEP_TIMEOUT_MS: '3000' };

const clusters = new UpClusters('ownership');

function uri(cluster: UpCluster, node: number, vdisk: string): string {
  return `nbd://127.0.0.1:${cluster.nbdPort + node - 1}/${vdisk}`;
}

/** Creates a vDisk (64 MiB unless `size` says otherwise) with the CLI; returns its id. */
async function createVdisk(cluster: UpCluster, name: string, shared: boolean, size = '64M'): Promise<bigint> {
  const created = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, 'vdisk', 'create', name, '--size', size, ...(shared ? ['--shared'] : [])], { timeoutMs: 30_000 });
  expect(created.stdout + created.stderr).toMatch(new RegExp(`vdisk ${name} created`));
  return createdId(created.stdout);
}

const ownership = (cluster: UpCluster, vdisk: bigint): Promise<VdiskOwnership | undefined> => readOwnership(cluster.natsUrl, vdisk);

async function ownerEvents(cluster: UpCluster, vdisk: bigint): ReturnType<typeof readEvents> {
  const nc = await connectClient(cluster.natsUrl);
  try {
    return (await readEvents(nc)).filter((e) => e.type === EventType.ownerChanged && e.id === vdisk);
  } finally {
    await nc.close();
  }
}

/**
 * Records every oplog entry of the vDisk as it is stored, from now on (drain purges
 * the stream behind it, so reading it afterwards would miss entries).
 */
async function watchOplog(cluster: UpCluster, vdisk: bigint): Promise<{ entries: Array<{ seq: number; entry: OplogEntry }>; stop(): Promise<void> }> {
  const nc = await connectClient(cluster.natsUrl);
  const consumer = await jetstream(nc).consumers.get(streams.oplog, { filter_subjects: subjects.oplog(vdisk), deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume();
  const entries: Array<{ seq: number; entry: OplogEntry }> = [];
  const loop = (async () => {
    for await (const m of messages) entries.push({ seq: m.seq, entry: decode(m.data, oplogEntry) });
  })();
  return {
    entries,
    stop: async () => {
      if (nc.isClosed()) return;
      await messages.close();
      await loop.catch(() => undefined);
      await nc.close();
    },
  };
}

/**
 * What reading a vDisk's drained data depends on, from the metadata buckets: each
 * row of the vDisk map with the holder of its partition's lease, and each extent
 * group the rows name with the nodes of its replicas.
 */
async function drainedLayout(cluster: UpCluster, vdisk: bigint): Promise<{ rows: Array<{ key: string; holder: string }>; egroups: Array<{ egroup: bigint; nodes: string[] }> }> {
  const nc = await connectClient(cluster.natsUrl);
  try {
    const rowsBucket = await openBucket(nc, buckets.mdVdisk, mdValue.vdisk);
    const groups = await openBucket(nc, buckets.mdEgroup, mdValue.egroup);
    const leases = await openBucket(nc, buckets.own, leaseRecord);
    const rows: Array<{ key: string; holder: string }> = [];
    const named = new Set<bigint>();
    for (const key of await rowsBucket.keys(`${vdisk}.*`)) {
      const row = await rowsBucket.get(key);
      for (const b of Object.values(row?.value.blocks ?? {})) named.add(b.egroup);
      rows.push({ key, holder: (await leases.get(keys.mdPartition(partitionOf(key))))?.value.holder ?? '' });
    }
    const egroups: Array<{ egroup: bigint; nodes: string[] }> = [];
    for (const egroup of named) {
      const entry = await groups.get(keys.egroup(egroup));
      egroups.push({ egroup, nodes: entry?.value.replicas.map((r) => r.node) ?? [] });
    }
    return { rows, egroups };
  } finally {
    await nc.close();
  }
}

/** The PID of one actor process of a node. */
function actorPid(cluster: UpCluster, actor: string, node: string): Promise<number> {
  return childMatching(cluster.up.pid(), new RegExp(`${actor}/dist/main\\.js --node ${node}( |$)`));
}

/** The processes every node runs with --separate: its six actors and its curator, one process each (sorted). */
const NODE_ACTORS = ['admission', 'curator', 'extent-store', 'gateway', 'io-director', 'metadata-shard', 'vdisk-controller'];

/**
 * Every process of node k, with its actor's name: the actors named `--node n<k>` and
 * the metadata shard, named `--shard md-<k>`.
 */
async function nodeProcesses(cluster: UpCluster, k: number): Promise<Array<{ pid: number; args: string; actor: string }>> {
  const mine = new RegExp(` (--node n${k}|--shard md-${k})( |$)`);
  return (await children(cluster.up.pid())).filter((c) => mine.test(c.args)).map((c) => ({ ...c, actor: /services\/([a-z-]+)\//.exec(c.args)?.[1] ?? c.args }));
}

/** Sends `signal` to each process; returns those it reached. */
function signalAll(pids: readonly number[], signal: NodeJS.Signals): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  });
}

/** Opens the vDisk through node `node`'s gateway: the node volunteers (and claims it when nobody owns it). */
async function attach(cluster: UpCluster, node: number, vdisk: string): Promise<void> {
  // `ready` means node 1's gateway listens; the others may be a moment behind. Only
  // that (NotReady: the device did not open) is waited for; a failed read fails.
  await waitFor(`node ${node}'s gateway to open ${vdisk}`, 20_000, () => qemuIoChecked(uri(cluster, node, vdisk), ['read 0 4k'], 10_000).then(() => true));
}

const MiB = 2 ** 20;

/** The events of a node's liveness verdicts. */
const NODE_LIVENESS: readonly string[] = [EventType.nodeDead, EventType.nodeAlive, EventType.nodeRestarted];

/** The state letter of /proc/<pid>/stat (R, S, D, T for stopped, …), or '' once it is gone. */
function processState(pid: number): string {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

// 8 MiB of 4 KiB random writes at QD8: about 5 s in the separate layout, so a kill 1.5 s in lands mid-run.
const FIO_COMMON = ['--name=verify', '--bs=4k', '--size=8m', '--verify=crc32c', '--randrepeat=1', '--randseed=11'];

/**
 * A shared vDisk that node 2 opens first, so it owns it, and node 1 then opens too (a
 * volunteer); returns its id and node 1's URI for it.
 */
async function sharedOwnedByNode2(cluster: UpCluster, name: string): Promise<{ id: bigint; target: string }> {
  const id = await createVdisk(cluster, name, true);
  await attach(cluster, 2, name);
  await attach(cluster, 1, name);
  return { id, target: uri(cluster, 1, name) };
}

/** fio's random-write workload (crc32c headers), started now; resolves with its result and when it ended. */
function fioWrite(target: string): Promise<{ code: number | string; out: string; endedAtMs: number }> {
  return run('fio', ['--ioengine=nbd', `--uri=${target}`, ...FIO_COMMON, '--rw=randwrite', '--iodepth=8', '--do_verify=0', '--verify_state_save=0'], { timeoutMs: 120_000 }).then((r) => ({
    code: r.code,
    out: r.stdout + r.stderr,
    endedAtMs: Date.now(),
  }));
}

/** fio's verifying read of everything fioWrite wrote. */
async function fioVerify(target: string): Promise<void> {
  const read = await run('fio', ['--ioengine=nbd', `--uri=${target}`, ...FIO_COMMON, '--rw=randread', '--iodepth=8', '--verify_only', '--verify_state_load=0'], { timeoutMs: 120_000 });
  expect(read.stdout + read.stderr).not.toMatch(/verify: bad|verify failed|err=\s*[1-9]/i);
  expect(read.stdout).toMatch(/err= 0/);
  expect(read.code).toBe(0);
}

function expectFioClean(result: { code: number | string; out: string }): void {
  expect(result.out).not.toMatch(/err=\s*[1-9]|error/i);
  expect(result.out).toMatch(/err= 0/);
  expect(result.code).toBe(0);
}

/**
 * Runs fioWrite against `target`, kills node's vdisk-controller with kill -9 1.5 s in
 * (strata up restarts it), then checks that fio saw no error, that the kill landed
 * while fio was writing, and that every write verifies.
 */
async function killControllerDuringFio(cluster: UpCluster, node: string, target: string): Promise<void> {
  const pid = await actorPid(cluster, 'vdisk-controller', node);
  const fio = fioWrite(target);
  await sleep(1_500);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await cluster.up.waitForOutput(new RegExp(`${node}-vdisk-controller exited \\(SIGKILL\\); restarting`), 10_000);
  const result = await fio;
  expectFioClean(result);
  expect(result.endedAtMs).toBeGreaterThan(killedAt);
  await fioVerify(target);
}

describe('vDisk ownership with real NBD clients', () => {
  let cluster: UpCluster;
  // The cluster's data and logs are kept unless every case passed.
  let cases = 0;
  let passed = 0;
  /** A case of this group, counted: `it` that records its passing. */
  const counted = (name: string, fn: () => Promise<void>, timeoutMs?: number): void => {
    cases++;
    it(name, async () => {
      await fn();
      passed++;
    }, timeoutMs);
  };

  beforeAll(async () => {
    cluster = await clusters.start({ env: TIMINGS, layout: 'separate' });
  }, 120_000);
  afterAll(async () => {
    if (cluster !== undefined) cluster.passed = passed === cases;
    await clusters.stopAll();
  }, 60_000);

  counted('a shared vDisk written through gateways on two nodes (disjoint ranges): each reads the other data', async () => {
    const id = await createVdisk(cluster, 'shared-2gw', true);
    await Promise.all([
      qemuIo(uri(cluster, 1, 'shared-2gw'), ['write -P 0x11 0 1M', 'write -P 0x12 4M 64k']),
      qemuIo(uri(cluster, 3, 'shared-2gw'), ['write -P 0x33 8M 1M', 'write -P 0x34 12M 64k']),
    ]);
    await qemuIo(uri(cluster, 1, 'shared-2gw'), ['read -P 0x33 8M 1M', 'read -P 0x34 12M 64k', 'read -P 0x11 0 1M']);
    await qemuIo(uri(cluster, 3, 'shared-2gw'), ['read -P 0x11 0 1M', 'read -P 0x12 4M 64k', 'read -P 0x33 8M 1M']);
    const own = await ownership(cluster, id);
    // One owner served both gateways: nobody relinquished a shared vDisk.
    expect(own?.epoch).toBe(1);
    expect(own?.volunteers).toEqual(expect.arrayContaining(['n1', 'n3']));
  });

  counted('an unshared vDisk whose client moves from node 1 to node 3 moves by relinquish, and the move is in the events', async () => {
    const id = await createVdisk(cluster, 'vm-disk', false);
    await qemuIo(uri(cluster, 1, 'vm-disk'), ['write -P 0x41 0 1M', 'write -P 0x42 32M 256k']);
    expect(await ownership(cluster, id)).toMatchObject({ owner: 'n1', epoch: 1 });
    // The VM now runs on host 3: its first I/O there takes the vDisk over.
    await qemuIo(uri(cluster, 3, 'vm-disk'), ['read -P 0x41 0 1M', 'write -P 0x43 16M 64k', 'read -P 0x42 32M 256k', 'read -P 0x43 16M 64k']);
    expect(await ownership(cluster, id)).toMatchObject({ owner: 'n3', epoch: 2 });
    const events = await waitFor('the relinquish event', 10_000, async () => {
      const found = await ownerEvents(cluster, id);
      return found.length > 0 ? found : false;
    });
    expect(events).toEqual([expect.objectContaining({ cause: 'relinquish', owner: 'n3', previousOwner: 'n1', ownerEpoch: 2, name: 'vm-disk' })]);
  });

  counted('kill -9 of an unshared vDisk owner controller during fio: the restarted controller replays the oplog, fio sees no error, every write verifies', async () => {
    await createVdisk(cluster, 'unshared-kill', false);
    const target = uri(cluster, 1, 'unshared-kill');
    await attach(cluster, 1, 'unshared-kill');
    await killControllerDuringFio(cluster, 'n1', target);
  });

  counted('kill -9 of a shared vDisk owner controller (node 2) during fio through node 1: I/O resumes, fio sees no error, every write verifies', async () => {
    const { id, target } = await sharedOwnedByNode2(cluster, 'shared-kill');
    expect(await ownership(cluster, id)).toMatchObject({ owner: 'n2', volunteers: ['n2', 'n1'] });
    await killControllerDuringFio(cluster, 'n2', target);
  });

  counted("the owner's vdisk-controller paused past the dead timeout: the vDisk fails over, and after SIGCONT nothing the old owner sends is accepted", async () => {
    const { id, target } = await sharedOwnedByNode2(cluster, 'shared-pause');
    const before = await ownership(cluster, id);
    expect(before).toMatchObject({ owner: 'n2', volunteers: ['n2', 'n1'] });
    const pid = await actorPid(cluster, 'vdisk-controller', 'n2');
    const watched = await watchOplog(cluster, id);
    const fio = fioWrite(target);
    await sleep(1_500);
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    try {
      const after = await waitFor('the vDisk to fail over to n1', 20_000, async () => {
        const own = await ownership(cluster, id);
        return own !== undefined && own.owner === 'n1' && own.epoch > before!.epoch ? own : false;
      });
      // Let the new owner serve a while, then wake the old one with whatever it had queued.
      await sleep(1_000);
      process.kill(pid, 'SIGCONT');
      resumed = true;
      const result = await fio;
      expectFioClean(result);
      await fioVerify(target);
      // The oplog: the old owner's writes, then the takeover marker of the new epoch,
      // then only the new owner's entries, even after the old one woke up.
      await watched.stop();
      const entries = watched.entries;
      const markerAt = entries.findIndex((e) => e.entry.kind === 'marker' && e.entry.epoch === after.epoch);
      expect(markerAt).toBeGreaterThan(0);
      expect(entries.slice(0, markerAt).some((e) => e.entry.kind === 'ops' && e.entry.epoch === before!.epoch)).toBe(true);
      const later = entries.slice(markerAt);
      expect(later.filter((e) => e.entry.kind === 'ops').length).toBeGreaterThan(10);
      for (const e of later) expect(e.entry.epoch).toBeGreaterThanOrEqual(after.epoch);
      // The old owner noticed its heartbeat had lapsed and dropped the vDisk before serving anything.
      await waitFor('the paused controller to drop its vdisks', 10_000, () => readFileSync(join(cluster.dir, 'logs', 'n2-vdisk-controller.log'), 'utf8').includes('no longer serving any vdisk'));
      const events = await ownerEvents(cluster, id);
      expect(events).toEqual([expect.objectContaining({ cause: 'failover', owner: 'n1', previousOwner: 'n2', ownerEpoch: after.epoch })]);
    } finally {
      if (!resumed) process.kill(pid, 'SIGCONT');
      await watched.stop();
    }
  });

  counted('the coordinator killed -9 in the middle of a takeover: the next leader resumes it from its record and finishes it', async () => {
    const { id } = await sharedOwnedByNode2(cluster, 'coord-kill');
    await qemuIo(uri(cluster, 3, 'coord-kill'), ['write -P 0x77 0 1M', 'write -P 0x78 20M 64k']);
    const before = await ownership(cluster, id);
    expect(before).toMatchObject({ owner: 'n2', volunteers: ['n2', 'n1', 'n3'] });
    const n2 = await actorPid(cluster, 'vdisk-controller', 'n2');
    const n1 = await actorPid(cluster, 'vdisk-controller', 'n1');
    const stopped: number[] = [];
    const stop = (pid: number): void => {
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    };
    try {
      // n2 (the owner) goes silent; a moment later so does n1, the first volunteer, which is
      // still alive when n2 is declared dead: the takeover goes to n1 and waits at its replay.
      stop(n2);
      await sleep(1_500);
      stop(n1);
      const nc = await connectClient(cluster.natsUrl);
      let seen;
      try {
        const takeovers = await openBucket(nc, buckets.own, takeoverRecord);
        seen = await waitFor('the takeover to wait at its replay step', 20_000, async () => {
          const t = (await takeovers.get(keys.takeover(id)))?.value;
          return t !== undefined && t.step === 'replay' && t.to === 'n1' ? t : false;
        }, 100);
      } finally {
        await nc.close();
      }
      const coordinator = await childMatching(cluster.up.pid(), /config\/dist\/main\.js --replica /);
      process.kill(coordinator, 'SIGKILL');
      await cluster.up.waitForOutput(/config-1 exited \(SIGKILL\); restarting/, 10_000);
      // The restarted leader resumes the record: n1 never answers, so it moves on to n3.
      // n3 owns it from the claim step on; the takeover is over once its record is gone (after its event).
      const after = await waitFor('the takeover to finish on n3', 60_000, async () => {
        const own = await ownership(cluster, id);
        if (own?.owner !== 'n3') return false;
        const nc3 = await connectClient(cluster.natsUrl);
        try {
          return (await (await openBucket(nc3, buckets.own, takeoverRecord)).get(keys.takeover(id))) === null ? own : false;
        } finally {
          await nc3.close();
        }
      }, 250);
      expect(after.epoch).toBe(seen.epoch + 1);
      const events = await ownerEvents(cluster, id);
      expect(events).toEqual([expect.objectContaining({ cause: 'failover', owner: 'n3', previousOwner: 'n2', ownerEpoch: after.epoch })]);
      expect(events[0]!.message).toMatch(/after n1 could not/);
      // The takeover's record went with its last step, and the resumed leader was another process.
      const nc2 = await connectClient(cluster.natsUrl);
      try {
        expect(await (await openBucket(nc2, buckets.own, takeoverRecord)).get(keys.takeover(id))).toBeNull();
      } finally {
        await nc2.close();
      }
      const resumedBy = await childMatching(cluster.up.pid(), /config\/dist\/main\.js --replica /);
      expect(resumedBy).not.toBe(coordinator);
      await qemuIo(uri(cluster, 3, 'coord-kill'), ['read -P 0x77 0 1M', 'read -P 0x78 20M 64k']);
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
    }
  });
});

// One cluster for the two whole-node cases: the pause first (nothing is killed, so the
// long restart delay does not matter to it), then the kill, once node 2, declared dead
// in the pause, has rejoined.
describe('the whole owner node paused, then killed and kept down', () => {
  let cluster: UpCluster;
  let pausePassed = false;

  beforeAll(async () => {
    // Extent groups of one block (1 MiB): the data drained before the pause spreads
    // over many extent groups, each with its own pair of replicas. The supervisor
    // waits two minutes before restarting a killed process: in the last case the
    // failover happens first.
    cluster = await clusters.start({ env: { ...TIMINGS, STRATA_EGROUP_SIZE_BYTES: String(MiB), STRATA_RESTART_DELAY_MS: '120000' }, layout: 'separate' });
  }, 120_000);
  afterAll(() => clusters.stopAll(), 60_000);

  it('every process of the owner node paused past the dead timeout: writes through another node resume after the failover, and with the node still paused every acknowledged write reads back through both other gateways; after SIGCONT the old owner is fenced', async () => {
    const name = 'node-pause';
    const id = await createVdisk(cluster, name, true, '1G');
    await attach(cluster, 2, name);
    // Written and drained before the pause: 256 KiB at the start of each of 32 rows
    // (16 MiB apart), so the rows fall in many metadata partitions and the blocks in
    // 32 extent groups, each with a replica on node 2 (drain puts the owner's own
    // disk first) and one on node 1 or node 3.
    const drainedFirst: WrittenBlock[] = Array.from({ length: 32 }, (_, i) => ({ index: i, offset: i * 16 * MiB, length: 256 * 1024, pattern: 0x80 + i }));
    await qemuIoChecked(uri(cluster, 2, name), drainedFirst.map((b) => `write -P ${b.pattern} ${b.offset} ${b.length}`));
    await waitForDrained(cluster.natsUrl, id, 30_000);
    // The new owner is the node that holds the fewer of those second replicas: it
    // must read them from node 2 (paused) or the third node. It volunteers by opening
    // the vDisk, and the writer goes through its gateway.
    const layout = await drainedLayout(cluster, id);
    const onNode = (n: string): number => layout.egroups.filter((e) => e.nodes.includes(n)).length;
    const [next, other] = onNode('n1') <= onNode('n3') ? [1, 3] : [3, 1];
    const notLocal = layout.egroups.filter((e) => e.nodes.includes('n2') && !e.nodes.includes(`n${next}`));
    const md2Rows = layout.rows.filter((r) => r.holder === 'md-2');
    const premise = `${layout.egroups.length} extent groups (${notLocal.length} on n2 and not on n${next}), ${layout.rows.length} rows (${md2Rows.length} in partitions md-2 holds)`;
    // What the test is about: reads the new owner can serve only by going around node 2.
    if (notLocal.length === 0 || md2Rows.length === 0) throw new Error(`the drained data does not depend on node 2 as this test needs: ${premise}`);
    await attach(cluster, next, name);
    const before = await ownership(cluster, id);
    expect(before).toMatchObject({ owner: 'n2', volunteers: ['n2', `n${next}`] });
    const target = uri(cluster, next, name);

    const node2 = await nodeProcesses(cluster, 2);
    expect(node2.map((p) => p.actor).sort()).toEqual(NODE_ACTORS);
    const watched = await watchOplog(cluster, id);
    // 64 KiB blocks from 600 MiB on, each round reading back the one before.
    const writer = new AckedWriter({ uri: target, base: 600 * MiB, strideBytes: 256 * 1024, blockBytes: 64 * 1024, perRound: 8, blocks: 360, verifyPrevious: true, deadlineMs: 120_000 });
    writer.start();
    let paused: number[] = [];
    try {
      await writer.waitForAcked(24, 30_000);
      const pausedAt = Date.now();
      paused = signalAll(node2.map((p) => p.pid), 'SIGSTOP');
      expect(paused).toHaveLength(NODE_ACTORS.length);

      const after = await waitFor(`the vDisk to fail over to n${next}`, 20_000, async () => {
        const own = await ownership(cluster, id);
        return own !== undefined && own.owner === `n${next}` && own.epoch > before!.epoch ? own : false;
      });
      const failedOverAt = Date.now();
      // Writes resume through the new owner's gateway: 24 more acknowledged after the failover.
      await writer.waitForAckedSince(failedOverAt, 24, 40_000);
      await writer.stop();
      await writer.finished(); // rejects if a read-back in a round saw a wrong pattern

      // Node 2 is still stopped (SIGSTOP holds until SIGCONT), yet every acknowledged
      // write and the drained data read back through both other gateways: any EIO
      // (IoFailed) or wrong pattern (WrongData) fails here at once.
      const everything = [...drainedFirst, ...writer.acked];
      const readStartedAt = Date.now();
      for (const gateway of [next, other]) await readBack(uri(cluster, gateway, name), everything, 90_000);
      const readMs = Date.now() - readStartedAt;
      expect(node2.map((p) => processState(p.pid))).toEqual(node2.map(() => 'T'));
      console.info(
        `ownership: ${premise}; node 2 paused ${failedOverAt - pausedAt} ms before the failover to n${next}@${after.epoch}; ` +
          `${writer.acked.length} writes acknowledged (${writer.failures.length} failed rounds retried); ${everything.length} blocks read back through n${next} and n${other} in ${readMs} ms with node 2 paused`,
      );

      signalAll(paused, 'SIGCONT');
      paused = [];
      // The old owner wakes, finds its heartbeat lapsed and drops the vDisk; nothing it
      // had queued lands after the new owner's marker.
      await waitFor('the paused controller to drop its vdisks', 10_000, () => readFileSync(join(cluster.dir, 'logs', 'n2-vdisk-controller.log'), 'utf8').includes('no longer serving any vdisk'));
      await sleep(1_000);
      // A write through node 2's own gateway after the wake-up reaches the new owner.
      const late: WrittenBlock = { index: 9_999, offset: 590 * MiB, length: 64 * 1024, pattern: 0x5e };
      await qemuIoChecked(uri(cluster, 2, name), [`write -P ${late.pattern} ${late.offset} ${late.length}`, readCommand(late)]);
      await watched.stop();
      const entries = watched.entries;
      const markerAt = entries.findIndex((e) => e.entry.kind === 'marker' && e.entry.epoch === after.epoch);
      expect(markerAt).toBeGreaterThan(0);
      expect(entries.slice(0, markerAt).some((e) => e.entry.kind === 'ops' && e.entry.epoch === before!.epoch)).toBe(true);
      for (const e of entries.slice(markerAt)) expect(e.entry.epoch).toBeGreaterThanOrEqual(after.epoch);
      expect(await ownership(cluster, id)).toMatchObject({ owner: `n${next}`, epoch: after.epoch });
      expect(await ownerEvents(cluster, id)).toEqual([expect.objectContaining({ cause: 'failover', owner: `n${next}`, previousOwner: 'n2', ownerEpoch: after.epoch })]);
      // And it all still reads back, now through every gateway, node 2's included.
      for (const gateway of [1, 2, 3]) await readBack(uri(cluster, gateway, name), [...everything, late], 90_000);
      pausePassed = true;
    } finally {
      signalAll(paused, 'SIGCONT');
      await writer.stop();
      await watched.stop();
    }
  }, 300_000);

  it('every process of node 2 killed during fio through node 1: the shared vDisk fails over to the volunteer, fio sees no error, every write verifies', async () => {
    // The pause case had node 2 declared dead: it owns nothing new until it has rejoined.
    await waitFor('node 2 alive again after the pause (its last liveness event node.alive or node.restarted)', 30_000, async () => {
      const nc = await connectClient(cluster.natsUrl);
      try {
        const last = (await readEvents(nc)).filter((e) => NODE_LIVENESS.includes(e.type) && e.name === 'n2').at(-1);
        return last !== undefined && last.type !== EventType.nodeDead;
      } finally {
        await nc.close();
      }
    }, 250);
    const { id, target } = await sharedOwnedByNode2(cluster, 'node-kill');
    const before = await ownership(cluster, id);
    expect(before).toMatchObject({ owner: 'n2', volunteers: ['n2', 'n1'] });
    // Every process of the node: its five `--node n2` actors, its curator and its metadata shard (`--shard md-2`).
    const node2 = await nodeProcesses(cluster, 2);
    expect(node2.map((c) => c.actor).sort()).toEqual(NODE_ACTORS);
    const fio = fioWrite(target);
    await sleep(1_500);
    const killedAt = Date.now();
    expect(signalAll(node2.map((c) => c.pid), 'SIGKILL')).toHaveLength(NODE_ACTORS.length);
    // None of node 2 is left running (the supervisor waits two minutes to restart it).
    await waitFor('every process of node 2 to be gone', 5_000, async () => (await nodeProcesses(cluster, 2)).length === 0);
    const result = await fio;
    expectFioClean(result);
    expect(result.endedAtMs).toBeGreaterThan(killedAt);
    // Kept down throughout: the failover and the rest of fio ran with none of node 2.
    expect(await nodeProcesses(cluster, 2)).toEqual([]);
    expect(await ownership(cluster, id)).toMatchObject({ owner: 'n1', epoch: before!.epoch + 1 });
    const events = await ownerEvents(cluster, id);
    expect(events).toEqual([expect.objectContaining({ cause: 'failover', owner: 'n1', previousOwner: 'n2', ownerEpoch: before!.epoch + 1 })]);
    await fioVerify(target);
    // The data and logs are kept unless both cases passed.
    cluster.passed = pausePassed;
  });
});
