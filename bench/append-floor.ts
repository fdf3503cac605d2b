// `npm run bench:append-floor`: how fast a 4 KiB write could ever be acknowledged on
// this machine when acknowledging means an R3 JetStream append, as an oplog write does,
// and what fsync before every acknowledgement costs.
//
// For each of three servers it measures the append of bench/r3-append.ts (three
// nats-servers in one cluster, an R3 stream, 4 KiB appends one at a time from a bare
// client on the stream leader's server, nothing else running). The servers:
//  - the pinned release with `sync_interval: always` (what Strata runs: fsync on every
//    replica before the acknowledgement);
//  - the pinned release without it (the default: flushed every two minutes, so a power
//    cut loses acknowledged appends; shown only to price the fsync);
//  - Debian's nats-server 2.9.10 (no sync_interval at all), when installed
//    (`apt-get install nats-server`, or NATS_SERVER_OLD_BIN).
// In the same run it measures fio's 4 KiB random writes at QD1 against nbdkit's memory
// plugin, the baseline `npm run bench` divides by: an append's mean latency bounds the
// fraction of nbdkit any design that acknowledges after it can reach at QD1 (Ceph
// reached 7.5% on this kind of machine, 10.5% on an earlier day). It also prints the CPU each process spent per
// append: on a 2-core machine that, more than the wire, is where a write's time goes.
//
// A measurement, not a test. Options: --appends N (measured, default 4000; as many
// again are sent first to warm up), --runtime S (fio's seconds, default 5).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NATS_SERVER_PINNED, natsServerVersion, versionAtLeast } from '@strata/natsd';
import { run } from '../test/harness';
import { fio, startNbdkit } from './common';
import { measureR3Appends, type AppendVariant } from './r3-append';

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

/** Debian's nats-server 2.9 (NATS_SERVER_OLD_BIN, else the one on PATH if it is older than 2.12), or undefined. */
async function debianServer(): Promise<string | undefined> {
  const candidates = [process.env.NATS_SERVER_OLD_BIN, (await run('sh', ['-c', 'command -v nats-server'], { timeoutMs: 5_000 })).stdout.trim(), '/usr/sbin/nats-server', '/usr/bin/nats-server'];
  for (const c of candidates) {
    if (c === undefined || c === '') continue;
    const v = natsServerVersion(c);
    if (v !== undefined && !versionAtLeast(v, '2.10.0')) return c;
  }
  return undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { appends: { type: 'string', default: '4000' }, runtime: { type: 'string', default: '5' } }, strict: true });
  const appends = Number(values.appends);
  const runtimeS = Number(values.runtime);
  if (!Number.isInteger(appends) || appends < 100 || appends > 1_000_000) throw new Error('--appends must be a whole number from 100 to 1000000');
  if (!Number.isInteger(runtimeS) || runtimeS < 1 || runtimeS > 600) throw new Error('--runtime must be a whole number of seconds from 1 to 600');

  const nbdkitIops = await nbdkitQd1WriteIops(runtimeS);
  console.log(`nbdkit memory, fio 4K randwrite QD1: ${nbdkitIops} IOPS (${(1e6 / nbdkitIops).toFixed(0)} µs each)`);
  const variants: AppendVariant[] = [
    { label: `nats-server ${NATS_SERVER_PINNED}, sync_interval: always (Strata)`, syncAlways: true },
    { label: `nats-server ${NATS_SERVER_PINNED}, default sync (every 2 min)`, syncAlways: false },
  ];
  const old = await debianServer();
  if (old === undefined) console.log('Debian nats-server 2.9: not installed (apt-get install nats-server, or NATS_SERVER_OLD_BIN); skipped');
  else variants.push({ label: `nats-server ${natsServerVersion(old)} (Debian, no sync_interval)`, syncAlways: false, binary: old });

  for (const variant of variants) {
    const f = await measureR3Appends(variant, appends);
    const ceilingIops = 1e6 / f.meanUs;
    console.log(`${variant.label}:`);
    console.log(`  R3 append of 4 KiB through the leader's server, QD1, ${appends} appends: mean ${f.meanUs.toFixed(0)} µs, p50 ${f.p50Us.toFixed(0)} µs, p99 ${f.p99Us.toFixed(0)} µs`);
    console.log(`  CPU per append: leader ${f.leaderCpuUs.toFixed(0)} µs, followers ${f.followersCpuUs.map((u) => u.toFixed(0)).join(' and ')} µs, client ${f.clientCpuUs.toFixed(0)} µs`);
    console.log(`  ceiling at QD1 with nothing but the append: ${ceilingIops.toFixed(0)} IOPS, ${((100 * ceilingIops) / nbdkitIops).toFixed(1)}% of nbdkit (Ceph: 7.5%)`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
