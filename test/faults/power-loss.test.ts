// Power loss of every machine at once. Strata acknowledges an NBD write once its
// vDisk's oplog append is acknowledged by JetStream, and its nats-servers fsync before
// every acknowledgement (sync_interval: always); extent stores fsync before they
// acknowledge a drain write. This file proves that every write an NBD client saw
// acknowledged survives a power cut of the whole cluster, and that the cut is real:
//  - lazyfs itself (test/powercut/lazyfs, a FUSE file system that keeps unflushed
//    file data in its own memory; its Go unit tests run first): after a write/fsync/
//    kill/remount cycle, files hold exactly their fsynced bytes;
//  - sync on: `strata up` (3 nodes, its embedded nats-server) with its whole data
//    directory on lazyfs takes 4 KiB and 1 MiB writes through NBD (AckedWriter:
//    distinct patterns at distinct offsets, only acknowledged writes recorded) while
//    drain runs, until the power cut freezes and SIGKILLs every process of the cluster
//    and lazyfs at once. After a remount and a new `strata up` on the same directory,
//    every acknowledged write reads back through another node's gateway, drain
//    catches up, and every write reads back again through node 1's gateway;
//  - sync off (the teeth): the same with a nats-server of the test's, started with
//    syncAlways: false, loses acknowledged writes, so the cut really discards what was
//    not fsynced. (That server fsyncs nothing within the run, so the cut loses the
//    whole JetStream store, the cluster's configuration included, and `strata up`
//    starts a new cluster on the surviving extent-store files.)
// Each run prints its figures: writes acknowledged, read back or lost, and timings.
import { constants } from 'node:fs';
import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '@strata/natsd';
import { AckedWriter, readDrainState, run, sleep, waitFor, waitForDrained, type AckedBlock } from '../harness';
import { PowerCutRig, cutPower, lazyFsSupport, readBack, runLazyFsUnitTests, type LazyFs, type ReadBack, type StrataUp } from '../harness/powercut';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Drain all the time, so some acknowledged writes are in the extent stores at the cut. */
const drainEnv = { STRATA_DRAIN_IDLE_MS: '100', STRATA_DRAIN_START_BYTES: String(MiB) };
/** How long the writers run before the power is cut. */
const WRITE_MS = 6_000;

const support = lazyFsSupport();
if (support.skip !== undefined) console.warn(`power-loss tests skipped: ${support.skip}`);
const describeWithFuse = support.skip === undefined ? describe : describe.skip;

/** Both writers of a run: 4 KiB writes from 0, 1 MiB writes from 256 MiB (the demo vDisk is 1 GiB). */
function startWriters(uri: string): AckedWriter[] {
  return [
    new AckedWriter({ uri, base: 0, strideBytes: 64 * KiB, blockBytes: 4 * KiB, perRound: 16, blocks: 4_000, deadlineMs: 120_000 }).start(),
    new AckedWriter({ uri, base: 256 * MiB, strideBytes: MiB, blockBytes: MiB, perRound: 4, blocks: 700, deadlineMs: 120_000 }).start(),
  ];
}

function summary(acked: readonly AckedBlock[]): string {
  const small = acked.filter((b) => b.length === 4 * KiB).length;
  return `${acked.length} acknowledged writes (${small} of 4 KiB, ${acked.length - small} of 1 MiB)`;
}

function describeReadBack(r: ReadBack): string {
  const first = [...r.lost, ...r.unreadable].slice(0, 5).map((b) => `${b.length}@${b.offset}`);
  return `${r.intact} intact, ${r.lost.length} lost, ${r.unreadable.length} unreadable${first.length > 0 ? ` (first: ${first.join(', ')})` : ''}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A file's content as a separate process (`cat`) reads it. */
async function cat(path: string): Promise<string> {
  const { code, stdout, stderr } = await run('cat', [path], { timeoutMs: 10_000 });
  if (code !== 0) throw new Error(`cat ${path} failed (${code}): ${stderr}`);
  return stdout;
}

/** The bytes of the regular files under `dir` (the backing directory's view of a store). */
async function fileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/**
 * Waits (bounded) until the restarted cluster answers a read of `block` at `uri`
 * (the owner may still be replaying its oplog); wrong data ends the wait too: the
 * read-back that follows reports it. Only availability is waited for, never an answer.
 */
async function waitUntilServing(uri: string, block: AckedBlock): Promise<void> {
  await waitFor(`${uri} to answer a read`, 60_000, async () => {
    const r = await readBack(uri, [block], 20_000);
    return r.unreadable.length === 0;
  });
}

interface WrittenThenCut {
  acked: AckedBlock[];
  /** qemu-io rounds that failed: the ones the cut interrupted (and their retries until the writers stopped). */
  failedRounds: number;
  /** The vDisk's drained sequence and its oplog's last one, read just before the cut. */
  drained: number;
  lastSeq: number;
}

/**
 * Writes through node 1's gateway for WRITE_MS, then cuts the power of the cluster
 * (`strata up`'s process tree, and `extraRoots`: a nats-server of the test's) and of
 * lazyfs while the writers are still writing.
 */
async function writeThenCut(cluster: StrataUp, fs: LazyFs, extraRoots: number[] = []): Promise<WrittenThenCut> {
  const writers = startWriters(`nbd://127.0.0.1:${cluster.nbdPort}/demo`);
  let drain;
  try {
    await Promise.all(writers.map((w) => w.waitForAcked(1, 30_000)));
    await sleep(WRITE_MS);
    drain = await readDrainState(cluster.natsUrl, cluster.demoId, cluster.security);
    await cutPower([cluster.up.pid(), ...extraRoots], fs);
  } finally {
    // Their qemu-io runs fail once the gateways are gone; what they recorded is final.
    await Promise.all(writers.map((w) => w.stop()));
  }
  return { acked: writers.flatMap((w) => w.acked), failedRounds: writers.reduce((n, w) => n + w.failures.length, 0), drained: drain.drained, lastSeq: drain.lastSeq };
}

describeWithFuse('power loss of the whole cluster', () => {
  const rig = new PowerCutRig(support.binary!, 'power-loss');

  beforeAll(() => runLazyFsUnitTests(), 200_000);
  afterEach(() => rig.cleanup(), 60_000);

  it('lazyfs: after a power cut every file holds exactly its fsynced bytes', async () => {
    const dirs = rig.dirs();
    const fs = await rig.mount(dirs);
    const at = (name: string): string => join(dirs.mount, name);

    // a: 10000 bytes fsynced, then 5000 more over its end, not fsynced.
    const a = await open(at('a'), 'w+');
    await a.write(Buffer.alloc(10_000, 0x11), 0, 10_000, 0);
    await a.sync();
    await a.write(Buffer.alloc(5_000, 0x22), 0, 5_000, 8_000);
    await a.close();
    // b: written and closed, never fsynced. c: 8192 bytes fdatasynced, then truncated to 100.
    await writeFile(at('b'), Buffer.alloc(3_000, 0x33));
    const c = await open(at('c'), 'w+');
    await c.write(Buffer.alloc(8_192, 0x44), 0, 8_192, 0);
    await c.datasync();
    await c.truncate(100);
    await c.close();
    // d: written through an O_SYNC descriptor, which makes every write durable.
    const d = await open(at('d'), constants.O_CREAT | constants.O_WRONLY | constants.O_SYNC);
    await d.write(Buffer.alloc(3_000, 0x55), 0, 3_000, 0);
    await d.close();

    // Through the mount every write shows, also once the kernel's cached entries and
    // attributes (1 s) have expired and it has looked the files up again; `cat` reads
    // up to the size the kernel holds. In the backing directory: only what is durable.
    await sleep(1_500);
    expect(await cat(at('a'))).toBe('\x11'.repeat(8_000) + '\x22'.repeat(5_000));
    expect(await cat(at('b'))).toBe('3'.repeat(3_000));
    expect((await stat(at('c'))).size).toBe(100);
    expect((await stat(join(dirs.backing, 'a'))).size).toBe(10_000);
    expect((await stat(join(dirs.backing, 'b'))).size).toBe(0);
    expect((await stat(join(dirs.backing, 'c'))).size).toBe(8_192);

    await cutPower([], fs);
    await rig.remount(fs);
    expect(await readFile(at('a'))).toEqual(Buffer.alloc(10_000, 0x11));
    expect(await readFile(at('b'))).toEqual(Buffer.alloc(0));
    expect(await readFile(at('c'))).toEqual(Buffer.alloc(8_192, 0x44));
    expect(await readFile(at('d'))).toEqual(Buffer.alloc(3_000, 0x55));
    dirs.passed = true;
  });

  it('sync on: every write acknowledged before a power cut of the whole cluster reads back after it, through another node and after drain', async () => {
    const t0 = Date.now();
    const dirs = rig.dirs();
    const fs = await rig.mount(dirs);
    const dataDir = rig.dataDir(dirs, 'strata');
    const first = await rig.startStrataUp({ dir: dataDir, env: drainEnv });

    const written = await writeThenCut(first, fs);
    const { acked } = written;
    const cutAtMs = Date.now();
    // Both sizes were acknowledged, and drain had moved some of them to the extent stores.
    expect(acked.filter((b) => b.length === 4 * KiB).length).toBeGreaterThan(20);
    expect(acked.filter((b) => b.length === MiB).length).toBeGreaterThan(5);
    expect(written.drained).toBeGreaterThan(0);

    const jetStreamBytes = await fileBytes(join(dirs.backing, 'strata', 'nats'));
    await rig.remount(fs);
    const second = await rig.startStrataUp({ dir: dataDir, env: drainEnv });
    expect(second.demoId).toBe(first.demoId);
    const readyAtMs = Date.now();

    // Through node 2's gateway first: the oplog node 1 wrote is replayed wherever the vDisk is served now.
    const node2 = `nbd://127.0.0.1:${second.nbdPort + 1}/demo`;
    await waitUntilServing(node2, acked[0]!);
    const viaNode2 = await readBack(node2, acked);
    expect(describeReadBack(viaNode2)).toBe(`${acked.length} intact, 0 lost, 0 unreadable`);
    const drained = await waitForDrained(second.natsUrl, second.demoId, 60_000, second.security);
    const viaNode1 = await readBack(`nbd://127.0.0.1:${second.nbdPort}/demo`, acked);
    expect(describeReadBack(viaNode1)).toBe(`${acked.length} intact, 0 lost, 0 unreadable`);

    console.log(
      `power loss, sync on: ${summary(acked)}, all read back after the cut (through node 2, then through node 1 once drained to ${drained.drained}); ` +
        `at the cut the oplog was drained to ${written.drained} of ${written.lastSeq}, ${written.failedRounds} qemu-io rounds were interrupted, ${mib(jetStreamBytes)} of JetStream store survived. ` +
        `Start to cut ${seconds(cutAtMs - t0)}, cut to ready ${seconds(readyAtMs - cutAtMs)}, whole run ${seconds(Date.now() - t0)}`,
    );
    dirs.passed = true;
  }, 170_000);

  it('sync off: the same power cut loses acknowledged writes when nats-server does not fsync before it acknowledges', async () => {
    const t0 = Date.now();
    const dirs = rig.dirs();
    const fs = await rig.mount(dirs);
    const dataDir = rig.dataDir(dirs, 'strata');
    const natsDir = join(dirs.mount, 'nats', 'nats-1');
    // `strata up` starts its own servers with sync on: this one is the test's, handed over through NATS_URL.
    const env = { ...drainEnv, STRATA_ALLOW_LAZY_FSYNC: '1' };
    const nats = await rig.startNatsServer(natsDir, await freePort(), false);
    const first = await rig.startStrataUp({ dir: dataDir, natsUrl: nats.url, env });

    const written = await writeThenCut(first, fs, [nats.pid()!]);
    const { acked } = written;
    const cutAtMs = Date.now();
    expect(acked.length).toBeGreaterThan(20);

    const jetStreamBytes = await fileBytes(join(dirs.backing, 'nats'));
    await rig.remount(fs);
    const natsAgain = await rig.startNatsServer(natsDir, await freePort(), false);
    const second = await rig.startStrataUp({ dir: dataDir, natsUrl: natsAgain.url, env });
    const readyAtMs = Date.now();
    const node1 = `nbd://127.0.0.1:${second.nbdPort}/demo`;
    await waitUntilServing(node1, acked[0]!);
    const after = await readBack(node1, acked);

    console.log(
      `power loss, sync off: of ${summary(acked)}, ${after.lost.length + after.unreadable.length} were lost (${describeReadBack(after)}); ` +
        `demo is vDisk ${second.demoId} after the cut, ${first.demoId} before; at the cut the oplog was drained to ${written.drained} of ${written.lastSeq}, ` +
        `${written.failedRounds} qemu-io rounds were interrupted, ${mib(jetStreamBytes)} of JetStream store survived. ` +
        `Start to cut ${seconds(cutAtMs - t0)}, cut to ready ${seconds(readyAtMs - cutAtMs)}, whole run ${seconds(Date.now() - t0)}`,
    );
    // The cut discards what was not fsynced: without fsync before acknowledgement, acknowledged writes are gone.
    expect(after.lost.length + after.unreadable.length).toBeGreaterThan(0);
    dirs.passed = true;
  }, 170_000);
});
