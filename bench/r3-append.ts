// The QD1 write floor: an R3 JetStream append of 4 KiB, as an oplog write makes it,
// from a bare client on the stream leader's server, with nothing else running (no
// NBD, no actors). Three nats-servers in one cluster, an R3 stream, and appends one
// at a time, each with Nats-Expected-Last-Subject-Sequence and a Nats-Msg-Id like an
// oplog append. A write acknowledged after such an append can never be faster than
// it, so `npm run bench` subtracts it from its QD1 write latency to show what the
// rest of the path costs, and `npm run bench:append-floor` compares server variants.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNatsServers } from '@strata/natsd';
import { processCpuMs } from './cpu';

export interface AppendVariant {
  label: string;
  /** `sync_interval: always`: fsync on every replica before the acknowledgement (what Strata runs). */
  syncAlways: boolean;
  /** A nats-server binary other than the pinned one. */
  binary?: string;
}

export interface AppendFigures {
  /** Measured appends (as many again were sent first to warm up). */
  appends: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  /** CPU (user + system) per append of the leader's server, each follower's, and the client. */
  leaderCpuUs: number;
  followersCpuUs: number[];
  clientCpuUs: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Three servers of `variant`, an R3 stream, and `appends` QD1 appends of 4 KiB from a client on the leader's server. */
export async function measureR3Appends(variant: AppendVariant, appends: number): Promise<AppendFigures> {
  const baseDir = mkdtempSync(join(tmpdir(), 'strata-bench-floor-nats-'));
  const servers = await startNatsServers({ baseDir, count: 3, syncAlways: variant.syncAlways, ...(variant.binary === undefined ? {} : { binary: variant.binary }) });
  try {
    const admin = await connect({ servers: servers.map((s) => s.url) });
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'FLOOR', subjects: ['floor.*'], num_replicas: 3 });
    const leaderName = (await jsm.streams.info('FLOOR')).cluster?.leader;
    await admin.close();
    const leader = servers.find((s) => s.name === leaderName);
    if (leader === undefined) throw new Error(`no server is named ${leaderName ?? '(no leader)'}`);

    const nc = await connect({ servers: leader.url, noAsyncTraces: true });
    const js = jetstream(nc);
    const payload = new Uint8Array(4096 + 64).fill(0xab);
    let last = 0;
    const append = async (n: number): Promise<void> => {
      last = (await js.publish('floor.v', payload, { expect: { lastSubjectSequence: last }, msgID: `floor-${n}` })).seq;
    };
    for (let n = 0; n < appends; n++) await append(n);

    const pids = servers.map((s) => s.pid()!);
    const cpuMs = (pid: number): number => processCpuMs(pid) ?? Number.NaN;
    const serversBefore = pids.map(cpuMs);
    const clientBefore = process.cpuUsage();
    const latencies: number[] = [];
    for (let n = appends; n < 2 * appends; n++) {
      const t = performance.now();
      await append(n);
      latencies.push((performance.now() - t) * 1000);
    }
    const client = process.cpuUsage(clientBefore);
    const serversUs = pids.map((pid, i) => ((cpuMs(pid) - serversBefore[i]!) * 1000) / appends);
    await nc.close();
    latencies.sort((a, b) => a - b);
    const leaderIndex = servers.indexOf(leader);
    return {
      appends,
      meanUs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
      p50Us: quantile(latencies, 0.5),
      p99Us: quantile(latencies, 0.99),
      leaderCpuUs: serversUs[leaderIndex]!,
      followersCpuUs: serversUs.filter((_, i) => i !== leaderIndex),
      clientCpuUs: (client.user + client.system) / appends,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(baseDir, { recursive: true, force: true });
  }
}
