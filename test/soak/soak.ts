// The nemesis soak: a `strata up --separate` cluster (three nodes with one process
// per actor, three nats-servers, three config replicas), verifying writers on several
// vDisks (a shared one written through two gateways, unshared ones through others),
// and a seeded schedule of single faults (kill -9, or SIGSTOP then SIGCONT, of any
// one process: actors, config replicas, metadata shards, nats-servers), one at a
// time. At the end every acknowledged write is read back through every gateway. The
// report gives the seed, every fault with its time, the longest I/O pause, and the
// client-visible errors and wrong reads; a run is clean when both are zero. Used by
// `npm run soak` (test/soak/main.ts) and, short and with a fixed seed, by
// test/faults/soak.test.ts.
import { ConfigClient } from '@strata/config-client';
import { childMatching, sleep, UpClusters, waitFor, type UpCluster } from '../harness';
import { clusterRoles, planFaults, roleCommandLine, type PlannedFault } from './nemesis';
import { QemuIoSession } from './qemu-io-session';
import { VerifyingWriter, type Finding, type WriterSpec } from './writer';

const MiB = 2 ** 20;
const KiB = 1024;
/** Writes each writer must have acknowledged after the last fault before the final check. */
const SETTLE_WRITES = 16;

export interface SoakOptions {
  minutes: number;
  seed: number;
  log: (line: string) => void;
  /** Mean time between faults (default 8 s). */
  meanGapMs?: number;
}

export interface FaultRecord extends PlannedFault {
  /** Wall-clock time the fault was applied, and the pid it hit (none: the role had no process then). */
  appliedAt: string;
  pid?: number;
}

export interface SoakReport {
  seed: number;
  minutes: number;
  faults: FaultRecord[];
  writes: number;
  reads: number;
  /** Blocks read back at the end, through every gateway. */
  verified: number;
  errors: Finding[];
  wrong: Finding[];
  connectFailures: Finding[];
  longestPause: { ms: number; writer: string; endedAt: string };
  clean: boolean;
  /** Where the cluster's data and logs are kept (a run that was not clean). */
  keptIn?: string;
}

/** The vDisks and who writes them: a shared one through two gateways, unshared ones through the others. */
function writerSpecs(nbdPort: number): WriterSpec[] {
  return [
    { name: 'shared@n1', port: nbdPort, exportName: 'soak-shared', base: 0, blocks: 96, strideBytes: 256 * KiB, blockBytes: 64 * KiB },
    { name: 'shared@n3', port: nbdPort + 2, exportName: 'soak-shared', base: 64 * MiB, blocks: 96, strideBytes: 256 * KiB, blockBytes: 64 * KiB },
    { name: 'small@n2', port: nbdPort + 1, exportName: 'soak-small', base: 0, blocks: 256, strideBytes: 64 * KiB, blockBytes: 4 * KiB },
    { name: 'large@n3', port: nbdPort + 2, exportName: 'soak-large', base: 0, blocks: 48, strideBytes: MiB, blockBytes: MiB },
  ];
}

async function createVdisks(natsUrl: string): Promise<void> {
  const client = await ConfigClient.connect(natsUrl);
  try {
    const container = (await client.get({ kind: 'container', name: 'default' })).id;
    await client.create({ kind: 'vdisk', name: 'soak-shared', spec: { container, sizeBytes: 256 * MiB, shared: true } });
    await client.create({ kind: 'vdisk', name: 'soak-small', spec: { container, sizeBytes: 256 * MiB } });
    await client.create({ kind: 'vdisk', name: 'soak-large', spec: { container, sizeBytes: 256 * MiB } });
  } finally {
    await client.close();
  }
}

/** Applies one fault; resolves when it is over (a paused process continued, a killed one running again). */
async function applyFault(cluster: UpCluster, fault: PlannedFault, log: (line: string) => void): Promise<number | undefined> {
  const upPid = cluster.up.pid();
  const pid = await childMatching(upPid, roleCommandLine(fault.role)).catch(() => undefined);
  if (pid === undefined) {
    log(`  ${fault.role} has no process now (still being restarted?); fault skipped`);
    return undefined;
  }
  if (fault.kind === 'kill') {
    process.kill(pid, 'SIGKILL');
    await waitFor(`${fault.role} to run again after kill -9`, 60_000, async () => {
      const now = await childMatching(upPid, roleCommandLine(fault.role)).catch(() => undefined);
      return now !== undefined && now !== pid;
    }, 200);
  } else {
    process.kill(pid, 'SIGSTOP');
    try {
      await sleep(fault.pauseMs);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }
  return pid;
}

/** Reads every acknowledged block of `writer` through the gateway on `port`; wrong ones are findings. */
async function verifyThrough(writer: VerifyingWriter, port: number): Promise<{ verified: number; wrong: Finding[] }> {
  const session = new QemuIoSession({ port, exportName: writer.spec.exportName, reconnectDelayS: 30 });
  const wrong: Finding[] = [];
  let verified = 0;
  try {
    const greeting = await session.ready(30_000);
    if (!session.alive) throw new Error(`cannot connect to port ${port}: ${greeting}`);
    for (const [block, pattern] of writer.acked) {
      const offset = writer.spec.base + block * writer.spec.strideBytes;
      const out = await session.run(`read -P ${pattern} ${offset} ${writer.spec.blockBytes}`, 90_000);
      if (!/^read (\d+)\/\1 bytes at offset/m.test(out) || /failed|error/i.test(out)) {
        wrong.push({ atMs: Date.now(), writer: writer.spec.name, what: `final read of block ${block} through port ${port}: ${out.trim().slice(0, 200)}` });
      } else verified++;
    }
  } finally {
    session.close();
  }
  return { verified, wrong };
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { seed, minutes, log } = options;
  const clusters = new UpClusters('soak');
  // One process per actor: each fault hits one actor (or server, or replica) alone.
  const cluster = await clusters.start({ natsServers: 3, configReplicas: 3, layout: 'separate' });
  const report: SoakReport = { seed, minutes, faults: [], writes: 0, reads: 0, verified: 0, errors: [], wrong: [], connectFailures: [], longestPause: { ms: 0, writer: '', endedAt: '' }, clean: false };
  const writers = writerSpecs(cluster.nbdPort).map((spec) => new VerifyingWriter(spec));
  try {
    await createVdisks(cluster.natsUrl);
    for (const w of writers) w.start();
    await waitFor('every writer to have 8 acknowledged writes', 60_000, () => writers.every((w) => w.writes >= 8), 200);

    const plan = planFaults({ seed, durationMs: Math.max(10_000, minutes * 60_000 - 30_000), roles: clusterRoles(3, 3, 3), meanGapMs: options.meanGapMs ?? 8_000, pauseMinMs: 1_000, pauseMaxMs: 10_000 });
    log(`soak: seed ${seed}, ${minutes} min, ${plan.length} faults planned; cluster in ${cluster.dir}`);
    const start = Date.now();
    for (const fault of plan) {
      const wait = start + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      const appliedAt = new Date().toISOString();
      log(`${appliedAt} +${Math.round((Date.now() - start) / 1000)}s ${fault.kind === 'kill' ? 'kill -9' : `SIGSTOP ${fault.pauseMs} ms`} ${fault.role}`);
      const pid = await applyFault(cluster, fault, log);
      report.faults.push({ ...fault, appliedAt, ...(pid === undefined ? {} : { pid }) });
    }
    // Let the last fault's effects settle (a failover, a replay, a drain) under the
    // workload: every writer must get SETTLE_WRITES more writes acknowledged (each read
    // back) after it. A writer that stays stuck fails here.
    const afterLastFault = writers.map((w) => w.writes);
    await waitFor(`every writer to have ${SETTLE_WRITES} acknowledged writes after the last fault`, 60_000, () => writers.every((w, i) => w.writes >= afterLastFault[i]! + SETTLE_WRITES), 200);
    for (const w of writers) await w.stop();

    // Every writer's blocks through every gateway: the writers' checks run side by side
    // (one qemu-io session each), each gateway in turn.
    const checks = await Promise.all(
      writers.map(async (w) => {
        const results = [];
        for (const port of [cluster.nbdPort, cluster.nbdPort + 1, cluster.nbdPort + 2]) results.push(await verifyThrough(w, port));
        return results;
      }),
    );
    for (const { verified, wrong } of checks.flat()) {
      report.verified += verified;
      report.wrong.push(...wrong);
    }
  } finally {
    for (const w of writers) {
      await w.stop();
      report.writes += w.writes;
      report.reads += w.reads;
      report.errors.push(...w.errors);
      report.wrong.push(...w.wrong);
      report.connectFailures.push(...w.connectFailures);
      if (w.longestPause.ms > report.longestPause.ms) report.longestPause = { ms: w.longestPause.ms, writer: w.spec.name, endedAt: new Date(w.longestPause.endedAtMs).toISOString() };
    }
    report.clean = report.errors.length === 0 && report.wrong.length === 0 && report.verified > 0;
    cluster.passed = report.clean;
    if (!report.clean) report.keptIn = cluster.dir;
    await clusters.stopAll();
  }
  return report;
}

/** The report as text: one line per fault, then the totals. */
export function formatReport(r: SoakReport): string {
  const lines = [
    `seed ${r.seed}, ${r.minutes} min: ${r.faults.length} faults (${r.faults.filter((f) => f.kind === 'kill').length} kill -9, ${r.faults.filter((f) => f.kind === 'pause').length} SIGSTOP/SIGCONT)`,
    ...r.faults.map((f) => `  ${f.appliedAt} ${f.kind === 'kill' ? 'kill -9' : `SIGSTOP ${f.pauseMs} ms`} ${f.role}${f.pid === undefined ? ' (no process: skipped)' : ` (pid ${f.pid})`}`),
    `writes acknowledged: ${r.writes}; reads verified during the run: ${r.reads}; blocks verified at the end through every gateway: ${r.verified}`,
    `longest I/O pause: ${r.longestPause.ms} ms (${r.longestPause.writer}, ended ${r.longestPause.endedAt})`,
    `client-visible errors: ${r.errors.length}`,
    ...r.errors.slice(0, 20).map((e) => `  ${new Date(e.atMs).toISOString()} ${e.writer}: ${e.what}`),
    `acknowledged writes lost or wrong: ${r.wrong.length}`,
    ...r.wrong.slice(0, 20).map((e) => `  ${new Date(e.atMs).toISOString()} ${e.writer}: ${e.what}`),
    `new connections refused (gateway restarting; no I/O issued): ${r.connectFailures.length}`,
    r.clean ? 'CLEAN' : `NOT CLEAN${r.keptIn === undefined ? '' : `; data and logs kept in ${r.keptIn}`}`,
  ];
  return lines.join('\n');
}
