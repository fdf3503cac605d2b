// The bus is supervised like every other process of `strata up`: losing a nats-server
// never stops the cluster, and no acknowledged write is lost.
//  - `--nats 1`: kill -9 of the one embedded nats-server. `strata up` starts it again
//    on the same port and store; the actors reconnect by themselves; writes through
//    NBD resume; every write acknowledged before and after reads back. The server
//    fsyncs before it acknowledges, so its restart loses nothing.
//  - `--nats 3`: kill -9 of the server leading the OPLOG stream, kept down (a long
//    restart delay): the other two carry on, writes resume, and everything reads back
//    through two gateways with that server still down.
// The writer (AckedWriter) records a write only once qemu-io reported it done, and
// reads back the previous round's blocks in every round.
import { jetstreamManager } from '@nats-io/jetstream';
import { streams } from '@strata/proto';
import {
  AckedWriter,
  childMatching,
  connectClient,
  longestAckGap,
  readBackAcked,
  waitFor,
  type UpCluster,
  UpClusters,
} from '../harness';

const MiB = 2 ** 20;
const clusters = new UpClusters('bus-faults');

function writerFor(cluster: UpCluster): AckedWriter {
  const writer = new AckedWriter({ uri: cluster.nbdUri, base: 64 * MiB, strideBytes: 256 * 1024, blockBytes: 64 * 1024, perRound: 8, blocks: 2_400, verifyPrevious: true, deadlineMs: 110_000 });
  cluster.writer = writer.start();
  return writer;
}

/** Stops the writer and reads everything it got acknowledged through node 1's and node 2's gateways. */
async function verifyAll(cluster: UpCluster, writer: AckedWriter): Promise<void> {
  await writer.stop();
  await writer.finished(); // rejects if a read-back during the run saw a wrong pattern
  await readBackAcked(cluster.nbdUri, writer.acked);
  await readBackAcked(`nbd://127.0.0.1:${cluster.nbdPort + 1}/demo`, writer.acked);
}

/** The pid of embedded server `name` (nats-1..3). */
function natsServerPid(cluster: UpCluster, name: string): Promise<number> {
  return childMatching(cluster.up.pid(), new RegExp(`nats-server -c \\S*/nats/${name}/nats\\.conf`));
}

describe('losing a nats-server under strata up', () => {
  afterEach(() => clusters.stopAll(), 60_000);

  it('--nats 1: kill -9 of the embedded nats-server; it comes back on the same store, I/O resumes, every acknowledged write reads back', async () => {
    const cluster = await clusters.start();
    const writer = writerFor(cluster);
    await writer.waitForAcked(48, 30_000);

    const pid = await natsServerPid(cluster, 'nats-1');
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await cluster.up.waitForOutput(/nats-1 exited \(SIGKILL\); restarting/, 10_000);
    const restarted = await waitFor('nats-1 to run again under a new pid', 20_000, async () => {
      const now = await natsServerPid(cluster, 'nats-1').catch(() => undefined);
      return now !== undefined && now !== pid ? now : false;
    });

    await writer.waitForAckedSince(killedAt, 64, 60_000);
    const pauseMs = longestAckGap(writer.acked, killedAt);
    await verifyAll(cluster, writer);
    expect(cluster.up.output()).not.toMatch(/stopping/);
    console.info(
      `bus-faults: nats-1 (pid ${pid}) killed after ${writer.acked.filter((b) => b.ackedAtMs <= killedAt).length} acked writes, back as pid ${restarted}; ` +
        `longest pause between acks ${pauseMs} ms; ${writer.acked.length} writes acked, ${writer.failures.length} failed rounds retried`,
    );
    cluster.passed = true;
  }, 180_000);

  it('--nats 3: kill -9 of the OPLOG leader, kept down: the other two carry on, and every acknowledged write reads back', async () => {
    // No actor is killed here: the long restart delay only keeps the server down.
    const cluster = await clusters.start({ natsServers: 3, env: { STRATA_RESTART_DELAY_MS: '120000' } });
    const writer = writerFor(cluster);
    await writer.waitForAcked(48, 30_000);

    const nc = await connectClient(cluster.natsUrl);
    let leader: string | undefined;
    try {
      const info = await (await jetstreamManager(nc)).streams.info(streams.oplog);
      expect(info.config.num_replicas).toBe(3);
      leader = info.cluster?.leader;
    } finally {
      await nc.close();
    }
    expect(leader).toMatch(/^nats-[123]$/);
    const pid = await natsServerPid(cluster, leader!);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await cluster.up.waitForOutput(new RegExp(`${leader} exited \\(SIGKILL\\); restarting in 120000 ms`), 10_000);

    await writer.waitForAckedSince(killedAt, 64, 60_000);
    const pauseMs = longestAckGap(writer.acked, killedAt);
    await verifyAll(cluster, writer);
    // Still down: the reads above were served by the other two.
    await expect(natsServerPid(cluster, leader!)).rejects.toThrow();
    expect(cluster.up.output()).not.toMatch(/stopping/);
    console.info(
      `bus-faults: ${leader} (OPLOG leader) killed after ${writer.acked.filter((b) => b.ackedAtMs <= killedAt).length} acked writes and kept down; ` +
        `longest pause between acks ${pauseMs} ms; ${writer.acked.length} writes acked, ${writer.failures.length} failed rounds retried`,
    );
    cluster.passed = true;
  }, 180_000);
});
