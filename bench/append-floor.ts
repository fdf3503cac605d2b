// `npm run bench:append-floor`: how fast a 4 KiB write could ever be acknowledged on
// this machine when acknowledging means an R3 JetStream append, as an oplog write does.
//
// It starts three nats-servers (as `npm run bench` does), makes an R3 stream, and
// publishes 4 KiB messages one at a time (QD1) from a bare client connected to the
// stream leader's server, each with Nats-Expected-Last-Subject-Sequence and a
// Nats-Msg-Id like an oplog append, with nothing else running: no NBD, no actors. In
// the same run it measures fio's 4 KiB random writes at QD1 against nbdkit's memory
// plugin, the baseline `npm run bench` divides by. The append's mean latency alone
// then bounds the fraction of nbdkit any such design can reach at QD1 (Ceph reached
// 10.5% on this kind of machine). It also prints the CPU each process spent per
// append: on a 2-core machine that, more than the wire, is where a write's time goes.
//
// A measurement, not a test. Options: --appends N (measured, default 4000; as many
// again are sent first to warm up), --runtime S (fio's seconds, default 5).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startTopology } from '../test/harness';
import { fio, startNbdkit } from './common';

/** CPU time (user + system) a process has used, ms, from /proc. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function nbdkitQd1WriteIops(runtimeS: number): Promise<number> {
  const scratch = mkdtempSync(join(tmpdir(), 'strata-bench-floor-'));
  const nbdkit = await startNbdkit();
  try {
    const f = await fio(nbdkit.uri, { name: 'floor', rw: 'randwrite', bs: '4k', iodepth: 1, size: '64M', runtimeS, rampS: 1 }, scratch);
    return f.iops;
  } finally {
    await nbdkit.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { appends: { type: 'string', default: '4000' }, runtime: { type: 'string', default: '5' } }, strict: true });
  const appends = Number(values.appends);
  const runtimeS = Number(values.runtime);
  if (!Number.isInteger(appends) || appends < 100 || appends > 1_000_000) throw new Error('--appends must be a whole number from 100 to 1000000');
  if (!Number.isInteger(runtimeS) || runtimeS < 1 || runtimeS > 600) throw new Error('--runtime must be a whole number of seconds from 1 to 600');

  const nbdkitIops = await nbdkitQd1WriteIops(runtimeS);
  const topology = await startTopology('cluster');
  try {
    const admin = await connect({ servers: topology.url.split(',') });
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'FLOOR', subjects: ['floor.*'], num_replicas: 3 });
    const leaderName = (await jsm.streams.info('FLOOR')).cluster?.leader;
    await admin.close();
    const leader = topology.servers.find((s) => s.name === leaderName);
    if (leader === undefined) throw new Error(`no server is named ${leaderName ?? '(no leader)'}`);

    const nc = await connect({ servers: leader.url, noAsyncTraces: true });
    const js = jetstream(nc);
    const payload = new Uint8Array(4096 + 64).fill(0xab);
    let last = 0;
    const append = async (n: number): Promise<void> => {
      last = (await js.publish('floor.v', payload, { expect: { lastSubjectSequence: last }, msgID: `floor-${n}` })).seq;
    };
    for (let n = 0; n < appends; n++) await append(n);

    const pids = topology.servers.map((s) => s.pid()!);
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
    const meanUs = latencies.reduce((a, b) => a + b, 0) / latencies.length;
    const ceilingIops = 1e6 / meanUs;
    const leaderIndex = topology.servers.indexOf(leader);
    console.log(`nbdkit memory, fio 4K randwrite QD1: ${nbdkitIops} IOPS (${(1e6 / nbdkitIops).toFixed(0)} µs each)`);
    console.log(`R3 append of 4 KiB through the leader's server, QD1, ${appends} appends: mean ${meanUs.toFixed(0)} µs, p50 ${quantile(latencies, 0.5).toFixed(0)} µs, p99 ${quantile(latencies, 0.99).toFixed(0)} µs`);
    console.log(
      `CPU per append: leader ${serversUs[leaderIndex]!.toFixed(0)} µs, followers ${serversUs
        .filter((_, i) => i !== leaderIndex)
        .map((u) => u.toFixed(0))
        .join(' and ')} µs, client ${((client.user + client.system) / appends).toFixed(0)} µs`,
    );
    console.log(`ceiling at QD1 with nothing but the append: ${ceilingIops.toFixed(0)} IOPS, ${((100 * ceilingIops) / nbdkitIops).toFixed(1)}% of nbdkit (Ceph: 10.5%)`);
  } finally {
    await topology.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
