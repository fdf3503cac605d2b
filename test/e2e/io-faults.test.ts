// Faults under the I/O path, end to end: a real cluster started by `strata up
// --separate` (three nodes, one process per actor), real NBD clients (qemu-io), and kill -9 of one
// backend process while a writer runs. The writer (AckedWriter) writes distinct
// patterns at distinct offsets through node 1's gateway, records a write as
// acknowledged only once qemu-io printed it done, and reads back the previous round's
// blocks in each round. Drain is made to run all the time (100 ms idle, drain from
// 1 MiB undrained, 4 MiB extent groups), so the metadata shards are in the write path.
// It proves that:
//  - kill -9 of the metadata shard serving the vDisk map row being written: not one
//    NBD request fails, every partition the shard held is served again under a new
//    lease epoch, drain catches up with the oplog afterwards, and every acknowledged
//    write reads back, from the extents once drained;
//  - kill -9 of the nats-server leading the OPLOG stream (R3, three servers): writes
//    stop for a bounded pause and then continue, the config service answers again
//    (drain needs it to place new extent groups), no acknowledged write is lost, and
//    everything reads back (before and after drain) with that server still down;
//  - the same server kill together with kill -9 of the owner's controller, under
//    writes to a shared vDisk through a gateway on another node: the owner's
//    controller comes back (or the vDisk fails over) and replays its oplog while
//    JetStream elects a new leader, and no acknowledged write is lost.
//
// The three tests share one cluster, in order, each on a vDisk of its own: `strata up`
// runs on the harness's own three-server cluster (handed over through NATS_URL), so
// a killed server stays down (strata up would restart its own embedded servers:
// bus-faults.test.ts covers that). The server the second test killed is started
// again, and reports healthy, before the third kills the OPLOG leader.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { ConfigClient } from '@strata/config-client';
import { openBucket } from '@strata/kv';
import { leaseRecord, type LeaseRecord } from '@strata/lease';
import { MD_PARTITIONS, buckets, keys, partitionOf, streams } from '@strata/proto';
import {
  AckedWriter,
  longestAckGap,
  readBackAcked,
  childMatching,
  createdId,
  readOwnership,
  run,
  connectClient,
  qemuIo,
  readDrainState,
  sampleDrain,
  startTopology,
  waitFor,
  waitForDrained,
  type NatsTopology,
  type UpCluster,
  UpClusters,
} from '../harness';
import { isConnectionError, isUnavailable } from '../harness/verify';

const MiB = 2 ** 20;
/** Blocks per vDisk map row (the controller's default rowBlocks) times the 1 MiB block. */
const ROW_BYTES = 16 * MiB;
/** The writers below put block i at 64 MiB + i * 256 KiB: 64 writes per row. */
const ROW_WRITES = ROW_BYTES / (256 * 1024);

const clusters = new UpClusters('io-faults');

/**
 * Starts `strata up --nodes 3 --config-replicas 1 --separate` with drain running all
 * the time, on `topology`: one process per actor, so a test can kill one metadata
 * shard or one controller alone.
 */
function startCluster(topology: NatsTopology): Promise<UpCluster> {
  return clusters.start({
    topology,
    layout: 'separate',
    env: { STRATA_DRAIN_IDLE_MS: '100', STRATA_DRAIN_START_BYTES: String(MiB), STRATA_EGROUP_SIZE_BYTES: String(4 * MiB) },
  });
}

/** The lease records of every metadata partition, from the `own` bucket. */
async function partitionLeases(natsUrl: string): Promise<Array<{ partition: number; record: LeaseRecord | undefined; revision: number }>> {
  const nc = await connectClient(natsUrl);
  try {
    const own = await openBucket(nc, buckets.own, leaseRecord);
    return await Promise.all(
      Array.from({ length: MD_PARTITIONS }, async (_, partition) => {
        const e = await own.get(keys.mdPartition(partition));
        return { partition, record: e?.value, revision: e?.revision ?? 0 };
      }),
    );
  } finally {
    await nc.close();
  }
}

/** `serving metadata partition` log lines of every shard (all incarnations: the logs are appended to). */
function servingLines(dir: string): Array<{ partition: number; epoch: number; pid: number; file: string }> {
  const logs = join(dir, 'logs');
  const lines = [];
  for (const file of readdirSync(logs).filter((f) => f.endsWith('-metadata-shard.log'))) {
    for (const line of readFileSync(join(logs, file), 'utf8').split('\n')) {
      if (!line.includes('"serving metadata partition"')) continue;
      const j = JSON.parse(line) as { partition: number; epoch: number; pid: number };
      lines.push({ partition: j.partition, epoch: j.epoch, pid: j.pid, file });
    }
  }
  return lines;
}

/** The longest time the drained sequence stayed put (while the oplog grew) in the samples from `fromMs` on. */
function longestStall(samples: ReadonlyArray<{ atMs: number; drained: number; lastSeq: number }>, fromMs: number): number {
  let longest = 0;
  let since: { atMs: number; drained: number } | undefined;
  for (const x of samples) {
    if (x.atMs < fromMs) continue;
    if (since === undefined || x.drained !== since.drained) since = x;
    else if (x.lastSeq > x.drained) longest = Math.max(longest, x.atMs - since.atMs);
  }
  return longest;
}

/** Creates a vDisk of 1 GiB with the CLI; returns its id. */
async function createVdisk(cluster: UpCluster, name: string, shared: boolean): Promise<bigint> {
  const created = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, 'vdisk', 'create', name, '--size', '1G', ...(shared ? ['--shared'] : [])], { timeoutMs: 30_000 });
  return createdId(created.stdout);
}

describe('faults under the I/O path with real NBD clients', () => {
  let topology: NatsTopology;
  let cluster: UpCluster;
  let passed = 0;

  beforeAll(async () => {
    topology = clusters.track(await startTopology('cluster'));
    cluster = await startCluster(topology);
  }, 120_000);
  // A test that failed leaves its writer or sampler running: stop them before the next.
  afterEach(async () => {
    await cluster?.writer?.stop();
    await cluster?.sampler?.stop();
  }, 60_000);
  afterAll(async () => {
    if (cluster !== undefined) cluster.passed = passed === 3;
    await clusters.stopAll();
  }, 60_000);

  it('kill -9 of the metadata shard serving the row being written: no NBD request fails, its partitions are served again under new epochs, drain catches up, and every acknowledged write reads back', async () => {
    const { natsUrl, demoId, nbdUri } = cluster;
    // Block i: 64 KiB of pattern (i % 255) + 1 at 64 MiB + i * 256 KiB, so each 1 MiB
    // block gets four writes and a vDisk map row fills every 64 writes.
    const writer = new AckedWriter({ uri: nbdUri, base: 64 * MiB, strideBytes: 256 * 1024, blockBytes: 64 * 1024, perRound: 8, blocks: 2_400, verifyPrevious: true, deadlineMs: 100_000 });
    const sampler = (cluster.sampler = await sampleDrain(natsUrl, demoId));
    cluster.writer = writer.start();

    // Drain is running (the own record's drained sequence has moved), and the writer
    // has just entered a vDisk map row: it stays in it for about 50 more writes, and
    // every drain until they are drained must write that row (and its new extent groups).
    await writer.waitForAcked(48, 30_000);
    await waitFor('a first drain to complete', 20_000, async () => (await readDrainState(natsUrl, demoId)).drained > 0, { intervalMs: 200, retryIf: isConnectionError });
    await writer.waitFor('the writer to enter a new vDisk map row', 30_000, () => writer.acked.length >= 64 && writer.acked[writer.acked.length - 1]!.index % ROW_WRITES < 12);

    // The victim: the shard holding the lease of that row's partition.
    const latest = writer.acked[writer.acked.length - 1]!;
    const row = Math.floor(latest.offset / ROW_BYTES);
    const rowPartition = partitionOf(keys.vdiskRow(demoId, row));
    // The shards may still be balancing their partitions (a released lease names no
    // holder until another shard takes it): wait for the row's partition to be held.
    const before = await waitFor(
      "the row's partition to have a holder",
      15_000,
      async () => {
        const leases = await partitionLeases(natsUrl);
        return leases[rowPartition]!.record?.holder ? leases : false;
      },
      { intervalMs: 200, retryIf: isConnectionError },
    );
    const victim = before[rowPartition]!.record?.holder;
    expect(victim).toMatch(/^md-[123]$/);
    const held = before.filter((p) => p.record?.holder === victim).map((p) => ({ partition: p.partition, epoch: p.record!.epoch }));
    expect(held.map((h) => h.partition)).toContain(rowPartition);
    const node = `n${victim!.slice(3)}`;
    const pid = await childMatching(cluster.up.pid(), new RegExp(`metadata-shard/dist/main\\.js --shard ${victim}$`));
    const drainBefore = await readDrainState(natsUrl, demoId);

    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const drainedAtKill = drainBefore.drained;
    await cluster.up.waitForOutput(new RegExp(`${node}-metadata-shard exited \\(SIGKILL\\); restarting`), 10_000);

    // Every partition the victim held has a new holder (its restarted incarnation, or a
    // survivor) under a higher epoch, and that shard logged serving it at that epoch.
    const after = await waitFor(`partitions ${held.map((h) => h.partition).join(',')} of ${victim} to be served again`, 30_000, async () => {
      const leases = await partitionLeases(natsUrl);
      const serving = servingLines(cluster.dir);
      const taken = held.map((h) => {
        const r = leases[h.partition]!.record;
        const ok = r !== undefined && r.holder !== '' && r.epoch > h.epoch && serving.some((s) => s.partition === h.partition && s.epoch === r.epoch);
        return ok ? { partition: h.partition, holder: r.holder, epoch: r.epoch } : undefined;
      });
      return taken.every((t) => t !== undefined) ? taken : false;
    }, { intervalMs: 200, retryIf: isConnectionError });
    const recoveredAt = Date.now();

    // Writes keep being acknowledged, and a drain that started after the recovery completes.
    const drainAtRecovery = await readDrainState(natsUrl, demoId);
    expect(drainAtRecovery.lastSeq).toBeGreaterThan(drainBefore.lastSeq);
    await writer.waitForAckedSince(recoveredAt, 64, 40_000);
    await waitFor(`a drain past oplog sequence ${drainAtRecovery.lastSeq}`, 30_000, async () => (await readDrainState(natsUrl, demoId)).drained >= drainAtRecovery.lastSeq, {
      intervalMs: 200,
      retryIf: isConnectionError,
    });

    await writer.stop();
    await writer.finished(); // rejects if a read-back during the run saw a wrong pattern
    // Not one NBD request failed: writes never wait for metadata, and reads of drained
    // blocks use the controller's cached rows and extent groups.
    expect(writer.failures).toEqual([]);

    // Everything is drained (no takeover: the oplog's last message is writes)...
    const drained = await waitForDrained(natsUrl, demoId, 30_000);
    expect(drained.lastKind).toBe('ops');
    expect(drained.drained).toBe(drained.lastSeq);
    // ... and every acknowledged write reads back, now from the extents.
    await readBackAcked(nbdUri, writer.acked);
    await sampler.stop();
    // The kill was in the write path: drain stood still while the row's partition had no
    // shard (at least a lease TTL, 3 s, minus the time for a drain already past the row).
    const stallMs = longestStall(sampler.samples, killedAt);
    expect(stallMs).toBeGreaterThanOrEqual(2_000);
    const firstAdvance = sampler.samples.find((x) => x.atMs > killedAt && x.drained > drainedAtKill);
    console.info(
      `io-faults: drained ${drainedAtKill} at the kill; first advance ${firstAdvance === undefined ? 'never' : `to ${firstAdvance.drained} ${firstAdvance.atMs - killedAt} ms after it`}; ` +
        `longest drain stall after the kill ${stallMs} ms`,
    );
    console.info(
      `io-faults: killed ${victim} (pid ${pid}, partitions ${held.map((h) => h.partition).join(',')}) after ${writer.acked.filter((b) => b.ackedAtMs <= killedAt).length} acked writes; ` +
        `served again after ${recoveredAt - killedAt} ms by ${after.map((a) => `${a!.partition}:${a!.holder}@${a!.epoch}`).join(' ')}; ` +
        `${writer.acked.length} writes acked in ${writer.rounds} rounds; drained ${drained.drained}/${drained.lastSeq}`,
    );
    passed++;
  }, 150_000);

  it('kill -9 of the nats-server leading the OPLOG stream (R3): writes resume after a bounded pause, the config service answers again, drain catches up, and every acknowledged write reads back with that server still down', async () => {
    const { natsUrl } = cluster;
    // A vDisk of its own (node 1 opens it first, so it owns it): the first test's writes
    // to demo are not this test's to read back.
    const demoId = await createVdisk(cluster, 'oplog-kill', false);
    const nbdUri = `nbd://127.0.0.1:${cluster.nbdPort}/oplog-kill`;
    const writer = new AckedWriter({ uri: nbdUri, base: 64 * MiB, strideBytes: 256 * 1024, blockBytes: 64 * 1024, perRound: 8, blocks: 2_400, verifyPrevious: true, deadlineMs: 110_000 });
    cluster.writer = writer.start();
    await writer.waitForAcked(48, 30_000);

    const nc = await connectClient(natsUrl);
    let leader: string | undefined;
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(streams.oplog);
      expect(info.config.num_replicas).toBe(3);
      leader = info.cluster?.leader;
    } finally {
      await nc.close();
    }
    // The OPLOG stream's leader: the server whose loss stops every append until the
    // other two elect a new one.
    const victim = topology.servers.find((s) => s.name === leader);
    expect(victim).toBeDefined();
    const killedAt = Date.now();
    victim!.signal('SIGKILL');
    await victim!.exited();
    // The survivors elect another OPLOG leader (measured for the report: writes may wait longer).
    const survivors = topology.servers.filter((s) => s !== victim).map((s) => s.url).join(',');
    const nc2 = await connectClient(survivors);
    let electedMs: number;
    try {
      // No account check up front: it fails outright until JetStream has re-elected.
      const jsm = await jetstreamManager(nc2, { timeout: 2_000, checkAPI: false });
      // Until JetStream has re-elected, stream info times out or answers 503: "not yet".
      const newLeader = await waitFor(
        'a new OPLOG stream leader',
        30_000,
        async () => {
          const l = (await jsm.streams.info(streams.oplog)).cluster?.leader;
          return l !== undefined && l !== victim!.name ? l : false;
        },
        { intervalMs: 100, retryIf: isConnectionError },
      );
      electedMs = Date.now() - killedAt;
      expect(newLeader).not.toBe(victim!.name);
    } finally {
      await nc2.close();
    }

    // Writes resume: 64 more are acknowledged after the kill, within a bounded pause.
    await writer.waitForAckedSince(killedAt, 64, 60_000);
    const pauseMs = longestAckGap(writer.acked, killedAt);
    expect(pauseMs).toBeLessThan(30_000);

    // The config service answers again: drain needs it (a new extent group is placed
    // on the disks and nodes it lists), so without it undrained data only grows.
    const configClient = await ConfigClient.connect(survivors, 5_000);
    let configMs: number;
    try {
      await waitFor('the config service to answer status after the kill (see config-1.log: "cache did not catch up with the takeover marker")', 30_000, async () => (await configClient.status()).leader !== '', {
        intervalMs: 250,
        retryIf: isUnavailable,
      });
      configMs = Date.now() - killedAt;
    } finally {
      await configClient.close();
    }

    await writer.stop();
    await writer.finished(); // rejects if a read-back during the run saw a wrong pattern

    // Every acknowledged write reads back with the server still down: first from the
    // oplog and extents as they are, then once everything is drained.
    await readBackAcked(nbdUri, writer.acked);
    const drained = await waitForDrained(natsUrl, demoId, 45_000);
    await readBackAcked(nbdUri, writer.acked);
    expect(victim!.isRunning()).toBe(false);
    console.info(
      `io-faults: killed nats-server ${victim!.name} (OPLOG leader) after ${writer.acked.filter((b) => b.ackedAtMs <= killedAt).length} acked writes; ` +
        `new OPLOG leader after ${electedMs} ms; config answering after ${configMs} ms; longest pause between acks after the kill ${pauseMs} ms; ${writer.acked.length} writes acked in ${writer.rounds} rounds, ` +
        `${writer.failures.length} failed rounds retried; drained ${drained.drained}/${drained.lastSeq} (${drained.lastKind})`,
    );
    passed++;
  }, 170_000);

  it('kill -9 of the OPLOG-leading nats-server and of the owner controller together, under writes to a shared vDisk through another node: the owner replays its oplog while JetStream re-elects, and every acknowledged write reads back', async () => {
    // The server the second test killed runs again, and reports healthy (its JetStream
    // caught up), before this one kills the OPLOG leader.
    for (const [i, server] of topology.servers.entries()) {
      if (server.isRunning()) continue;
      await topology.restart(server);
      await waitFor(`nats-server ${i + 1} healthy again`, 60_000, async () => (await fetch(`${server.monitorUrl}/healthz`).catch(() => undefined))?.status === 200, 200);
    }
    const { natsUrl } = cluster;
    const id = await createVdisk(cluster, 'shared-nats', true);
    // Node 2 opens it first and owns it; node 1's gateway forwards every write to node 2.
    await qemuIo(`nbd://127.0.0.1:${cluster.nbdPort + 1}/shared-nats`, ['read 0 4k'], 20_000);
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/shared-nats`;
    const writer = new AckedWriter({ uri, base: 0, strideBytes: 256 * 1024, blockBytes: 64 * 1024, perRound: 8, blocks: 2_400, verifyPrevious: true, deadlineMs: 110_000 });
    cluster.writer = writer.start();
    await writer.waitForAcked(48, 30_000);
    const before = await readOwnership(natsUrl, id);
    expect(before).toMatchObject({ owner: 'n2' });

    const nc = await connectClient(natsUrl);
    let leader: string | undefined;
    try {
      leader = (await (await jetstreamManager(nc)).streams.info(streams.oplog)).cluster?.leader;
    } finally {
      await nc.close();
    }
    const victim = topology.servers.find((s) => s.name === leader);
    expect(victim).toBeDefined();
    const controller = await childMatching(cluster.up.pid(), /vdisk-controller\/dist\/main\.js --node n2( |$)/);
    const killedAt = Date.now();
    victim!.signal('SIGKILL');
    process.kill(controller, 'SIGKILL');
    await victim!.exited();

    // Writes resume through node 1 once the oplog has a leader and the vDisk an owner
    // that has replayed it (the restarted controller, or a volunteer after a failover).
    await writer.waitForAckedSince(killedAt, 64, 60_000);
    const pauseMs = longestAckGap(writer.acked, killedAt);
    expect(pauseMs).toBeLessThan(45_000);
    await writer.stop();
    await writer.finished(); // rejects if a read-back during the run saw a wrong pattern

    const survivors = topology.servers.filter((s) => s !== victim).map((s) => s.url).join(',');
    const after = await readOwnership(survivors, id);
    expect(after?.owner).toMatch(/^n[123]$/);
    expect(after!.epoch).toBeGreaterThanOrEqual(before!.epoch);
    // Every acknowledged write reads back through node 1 and through node 3, with
    // the server still down, before drain and after it.
    await readBackAcked(uri, writer.acked);
    await readBackAcked(`nbd://127.0.0.1:${cluster.nbdPort + 2}/shared-nats`, writer.acked);
    const drained = await waitForDrained(survivors, id, 60_000);
    await readBackAcked(uri, writer.acked);
    expect(victim!.isRunning()).toBe(false);
    console.info(
      `io-faults: killed nats-server ${victim!.name} (OPLOG leader) and n2's controller after ${writer.acked.filter((b) => b.ackedAtMs <= killedAt).length} acked writes; ` +
        `owner ${before!.owner}@${before!.epoch} -> ${after!.owner}@${after!.epoch}; longest pause between acks after the kills ${pauseMs} ms; ` +
        `${writer.acked.length} writes acked, ${writer.failures.length} failed rounds retried; drained ${drained.drained}/${drained.lastSeq}`,
    );
    passed++;
  }, 200_000);
});
