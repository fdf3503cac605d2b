// Scaling one instance at a time under load, end to end. One cluster: three
// nats-servers (the harness's, so each can be restarted), `strata up --separate` with
// three nodes (one process per actor, a metadata shard on each node, disks of
// 512 MiB), three config replicas, RF 2 (the default container). RF 2 on three nodes
// survives every step: each step takes at most one instance away at a time, and no
// step takes a disk away before the curator moved its replicas off it.
//
// One verifying client runs throughout: a long-lived qemu-io (QEMU's NBD reconnect,
// as a VM holds its disk) writing 64 KiB blocks through node 1's gateway and reading
// each back right after. Steps, in order:
//  1. add a node (`strata node run --node n4`): its disk receives replicas through the
//     rebalance (curator.rebalance.move to n4-d1) until the disks are within the
//     threshold (curator.rebalance.done, `strata curator status`);
//  2. drain it (`strata node drain n4 --wait`), stop its run, `strata node rm n4`, and
//     `strata host rm n4` (refused before the node is removed; done once the HA
//     master no longer hears n4's agent);
//  3. add a metadata shard (`strata shard run --shard md-9`), then SIGTERM it;
//  4. add a config replica (`strata config run --replica config-4`), then SIGTERM it;
//  5. restart every process `strata up` supervises (config replicas, metadata shards,
//     each node's actors, HA agents and curators), one by one: SIGTERM, and the next
//     only once the new process runs and the client made progress;
//  6. restart every nats-server, one by one (stop, start on the same port and store,
//     the next once it reports healthy).
// After each step: no client-visible error and no wrong read; its longest I/O pause
// goes in the table printed at the end. At the end every acknowledged write, and a
// region written before the steps, read back.
//
// Teeth: SCALE_TEST_REBALANCE=off runs the cluster with STRATA_REBALANCE=off: n4's
// disk never receives a replica and step 1 fails.
import { join } from 'node:path';
import { EventType } from '@strata/proto';
import { children, connectClient, freePort, readEvents, startNode, startTopology, UpClusters, waitFor, type ActorProcess, type NatsTopology, type UpCluster } from '../harness';
import { egroupsOf } from '../harness/curator';
import { HA_TEST_ENV, strata } from '../harness/ha';
import { createdId, qemuIo } from '../harness/strata';
import { QemuIoSession } from '../soak/qemu-io-session';
import { VerifyingWriter } from '../soak/writer';

const KiB = 1024;
const MiB = 1024 * KiB;
const CLI = 'cli/dist/main.js';

const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_EGROUP_SIZE_BYTES: String(MiB),
  STRATA_CURATOR_COPY_BYTES_PER_SEC: String(8 * MiB),
  // 3 points of a 512 MiB disk: 15 MiB.
  STRATA_REBALANCE_THRESHOLD_PCT: '3',
  STRATA_REBALANCE: process.env.SCALE_TEST_REBALANCE ?? 'on',
  STRATA_RESTART_DELAY_MS: '200',
};

interface StepRow {
  step: string;
  seconds: number;
  pauseMs: number;
  writes: number;
  errors: string[];
  wrong: string[];
}

const clusters = new UpClusters('scale');

describe('scaling one instance at a time under a verifying workload', () => {
  let topology: NatsTopology;
  let cluster: UpCluster;
  let writer: VerifyingWriter;
  const runs: ActorProcess[] = [];
  const rows: StepRow[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    topology = clusters.track(await startTopology('cluster'));
    cluster = await clusters.start({ topology, configReplicas: 3, layout: 'separate', env: ENV, upArgs: ['--disk-capacity', '512M'] });
    env = { NATS_URL: topology.url, STRATA_NATS_MONITOR_URL: topology.monitorUrls, ...ENV };
  }, 150_000);

  afterAll(async () => {
    await writer?.stop();
    for (const r of runs.reverse()) await r.stop(15_000);
    console.log(formatTable(rows));
    await clusters.stopAll();
  }, 90_000);

  /** Starts `strata --dir DIR <args>` on the cluster's NATS and waits for its `ready` line. */
  async function startRun(args: string[], ready: RegExp): Promise<ActorProcess> {
    const p = startNode(CLI, ['--dir', cluster.dir, ...args], { name: `strata ${args.slice(0, 3).join(' ')}`, env });
    runs.push(p);
    await p.waitForOutput(ready, 60_000);
    return p;
  }

  /** SIGTERM to a run; it must exit 0 within 20 s. */
  async function stopRun(p: ActorProcess): Promise<void> {
    p.signal('SIGTERM');
    expect(await Promise.race([p.exited(), new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000))])).toBe(0);
  }

  /** Waits for `count` more writes acknowledged by the client (it makes progress). */
  async function progress(count: number, timeoutMs = 60_000): Promise<void> {
    const target = writer.writes + count;
    await waitFor(`${count} more acknowledged writes (client errors so far: ${writer.errors.length})`, timeoutMs, () => writer.writes >= target, 50);
  }

  /** Runs one step under the workload and records its row: time, longest I/O pause, errors and wrong reads during it. */
  async function step(name: string, work: () => Promise<void>): Promise<void> {
    const started = Date.now();
    const before = { writes: writer.writes, errors: writer.errors.length, wrong: writer.wrong.length };
    writer.takePause();
    await work();
    await progress(5);
    const row: StepRow = {
      step: name,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      pauseMs: writer.takePause(),
      writes: writer.writes - before.writes,
      errors: writer.errors.slice(before.errors).map((e) => e.what),
      wrong: writer.wrong.slice(before.wrong).map((e) => e.what),
    };
    rows.push(row);
    expect({ step: name, errors: row.errors, wrong: row.wrong }).toEqual({ step: name, errors: [], wrong: [] });
  }

  it('adds and removes a node, a metadata shard and a config replica, restarts every actor and every nats-server: no client error, no lost write', async () => {
    const vdisk = createdId(await strata(cluster, ['vdisk', 'create', 'scale', '--size', '256M']));
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/scale`;
    // Data written before: 96 extent groups that the rebalance has to spread (node 1,
    // the owner, holds a replica of each: about 19% of its disk, the others half that).
    await qemuIo(uri, ['write -P 0x3c 128M 96M']);
    writer = new VerifyingWriter({ name: 'scale@n1', port: cluster.nbdPort, exportName: 'scale', base: 0, blocks: 64, strideBytes: 64 * KiB, blockBytes: 64 * KiB });
    writer.start();
    await progress(20);

    const nodeRun = ['node', 'run', '--node', 'n4', '--disk', `${join(cluster.dir, 'disks', 'n4-d1')}:512M`, '--nbd-port', String(await freePort()), '--host-cpus', '1', '--host-memory', '1G'];
    let n4: ActorProcess | undefined;
    let n4Disk = 0n;
    const since = Date.now();
    await step('add a node (n4), rebalance gives it a share', async () => {
      n4 = await startRun(nodeRun, /^ready: node n4$/m);
      n4Disk = BigInt((JSON.parse(await strata(cluster, ['--json', 'disk', 'ls'])) as Array<{ name: string; id: string }>).find((d) => d.name === 'n4-d1')!.id);
      // Moves to n4's disk, then the disks within the threshold (placement alone puts only new extent groups there).
      // The first three nodes may rebalance among themselves before n4 comes (node 1, the
      // owner, holds a replica of every extent group): only a done after a move to n4 counts.
      const events = await waitFor('curator.rebalance.move to n4-d1, then curator.rebalance.done', 60_000, async () => {
        // A read of the stream that fails (no responders while a stream leader moves) is no answer yet.
        const nc = await connectClient(cluster.natsUrl);
        const read = await readEvents(nc).catch(() => undefined).finally(() => nc.close());
        if (read === undefined) return false;
        const all = read.filter((ev) => ev.atMs >= since);
        const firstMove = all.findIndex((ev) => ev.type === EventType.curatorRebalanceMove && ev.toDisk === n4Disk);
        return firstMove >= 0 && all.slice(firstMove).some((ev) => ev.type === EventType.curatorRebalanceDone) ? all : false;
      }, 500);
      const moves = events.filter((ev) => ev.type === EventType.curatorRebalanceMove);
      expect(moves.length).toBeGreaterThan(0);
      const onN4 = [...(await egroupsOf(cluster.natsUrl, vdisk)).entries()].filter(([, e]) => e.replicas.some((r) => r.disk === n4Disk)).map(([id]) => id);
      expect(moves.filter((m) => onN4.includes(m.id!)).length).toBeGreaterThan(0);
      expect(moves.filter((m) => m.toDisk === n4Disk).length).toBeGreaterThan(0);
      for (const m of moves) expect(m.reason).toMatch(/^rebalance: disk \d+ \(n\d\) at [\d.]+% used, disk \d+ \(n\d\) at [\d.]+%: more than 3 points apart$/);
      expect(await strata(cluster, ['curator', 'status'])).toMatch(/^rebalance: on, threshold 3 points; disks (\d|[0-2]\.\d|3) points apart .*; 0 moves queued or running, [1-9]\d* done$/m);
    });

    await step('drain and remove the node (n4) and its host', async () => {
      const out = await strata(cluster, ['node', 'drain', 'n4', '--wait', '--timeout', '60'], 90_000);
      expect(out).toMatch(/^node n4: drained, it holds no replica$/m);
      await stopRun(n4!);
      // Its host goes after its node: refused while the node is registered, then once the HA master no longer hears it.
      await expect(strata(cluster, ['host', 'rm', 'n4'])).rejects.toThrow(/host n4 still has storage node n4; remove it first \(strata node rm n4\)/);
      expect(await strata(cluster, ['node', 'rm', 'n4'])).toMatch(/^node n4 removed with its disk n4-d1/m);
      await waitFor('the HA master to hear n4 no more', 15_000, async () => {
        const { status } = JSON.parse(await strata(cluster, ['--json', 'host', 'ls'])) as { status: Array<{ host: string; state: string }> | null };
        return ['dead', 'unknown', undefined].includes(status?.find((h) => h.host === 'n4')?.state) && status !== null;
      }, 250);
      expect(await strata(cluster, ['host', 'rm', 'n4'])).toBe('host n4 removed\n');
      expect((JSON.parse(await strata(cluster, ['--json', 'host', 'ls'])) as { hosts: Array<{ name: string }> }).hosts.map((h) => h.name).sort()).toEqual(['n1', 'n2', 'n3']);
      const left = [...(await egroupsOf(cluster.natsUrl, vdisk)).values()];
      expect(left.filter((e) => e.replicas.length !== 2 || e.replicas.some((r) => r.node === 'n4') || new Set(e.replicas.map((r) => r.node)).size !== 2)).toEqual([]);
    });

    await step('add a metadata shard (md-9), then remove it', async () => {
      const shard = await startRun(['shard', 'run', '--shard', 'md-9'], /^ready: metadata shard md-9$/m);
      await progress(10);
      await stopRun(shard);
    });

    await step('add a config replica (config-4), then remove it', async () => {
      const replica = await startRun(['config', 'run', '--replica', 'config-4'], /^ready: config replica config-4$/m);
      await progress(10);
      await stopRun(replica);
    });

    const upPid = cluster.up.pid();
    const supervised = (await children(upPid)).filter((c) => /dist\/main\.js/.test(c.args));
    expect(supervised.length).toBeGreaterThanOrEqual(3 + 3 * 8);
    for (const proc of supervised) {
      const role = roleOf(proc.args);
      await step(`restart ${role}`, async () => {
        process.kill(proc.pid, 'SIGTERM');
        await waitFor(`${role} to run again`, 30_000, async () => (await children(upPid)).some((c) => c.args === proc.args && c.pid !== proc.pid), 100);
        await progress(3);
      });
    }

    for (const [i, server] of topology.servers.entries()) {
      await step(`restart nats-server ${i + 1}`, async () => {
        await server.stop();
        await topology.restart(server);
        await waitFor(`nats-server ${i + 1} healthy`, 60_000, async () => (await fetch(`${server.monitorUrl}/healthz`).catch(() => undefined))?.status === 200, 200);
      });
    }

    await writer.stop();
    expect({ errors: writer.errors, wrong: writer.wrong }).toEqual({ errors: [], wrong: [] });
    // Every acknowledged write, and the region written before the steps, read back.
    const session = new QemuIoSession({ port: cluster.nbdPort, exportName: 'scale', reconnectDelayS: 30 });
    try {
      await session.ready(30_000);
      for (const [block, pattern] of writer.acked) {
        expect(await session.run(`read -P ${pattern} ${block * 64 * KiB} ${64 * KiB}`, 60_000)).toMatch(/^read 65536\/65536 bytes at offset \d+$/m);
      }
    } finally {
      session.close();
    }
    await qemuIo(uri, ['read -P 0x3c 128M 96M']);
    expect(writer.acked.size).toBe(64);
    cluster.passed = true;
  }, 600_000);
});

/** `n2-vdisk-controller`, `config-3`, `md-1`: a supervised process named from its command line. */
function roleOf(args: string): string {
  const actor = /services\/([a-z-]+)\/dist\/main\.js/.exec(args)?.[1] ?? args;
  const who = /--(?:node|host|replica|shard) (\S+)/.exec(args)?.[1] ?? '?';
  return `${who} ${actor}`;
}

function formatTable(rows: readonly StepRow[]): string {
  const width = Math.max(4, ...rows.map((r) => r.step.length));
  const lines = [`${'step'.padEnd(width)}  ${'time s'.padStart(6)}  ${'pause ms'.padStart(8)}  ${'writes'.padStart(6)}  errors  wrong`];
  for (const r of rows) lines.push(`${r.step.padEnd(width)}  ${String(r.seconds).padStart(6)}  ${String(r.pauseMs).padStart(8)}  ${String(r.writes).padStart(6)}  ${String(r.errors.length).padStart(6)}  ${String(r.wrong.length).padStart(5)}`);
  return `scale steps under a verifying writer (longest I/O pause of each):\n${lines.join('\n')}`;
}
