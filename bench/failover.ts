// `npm run bench:failover`: how long does I/O stop when a vDisk's owner dies? A
// local 3-node cluster (default liveness timings: heartbeat 1 s, fence 4 s, dead
// 6 s), a shared vDisk written by fio (4 KiB random writes at QD1) through the
// gateway of a node that does not own it. The I/O pause is fio's slowest write: at
// QD1 every write waits for the one before it, so the slowest one spans the whole
// outage. Two faults, five times each:
//
//   controller  kill -9 of the owner's vdisk-controller alone (`strata up
//               --separate`: one process per actor); `strata up` restarts it and
//               the restarted controller replays the oplog on the next I/O.
//   node        kill -9 of the owner node's node-host (`strata up`'s default
//               layout: all the node's actors, its metadata shard included), kept
//               down for 15 s: the config leader declares it dead and moves the
//               vDisk to a volunteer (the client's node), which replays the oplog.
//
// Prints each pause, the median and the maximum, and writes them to
// bench/results/failover.json. A measurement, not a test: it fails only when
// something does not run (fio reporting an error included).
//
// Options: --runs N (per fault, default 5), --out FILE.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigClient } from '@strata/config-client';
import { children, readOwnership, repoRoot, run, sleep, waitFor } from '../test/harness';
import { isUnavailable } from '../test/harness/verify';
import { createdId, fio, startCluster, strata, type LocalCluster } from './common';

type Fault = 'controller' | 'node';

/** Seconds fio runs; the fault comes KILL_AFTER_S seconds in. */
const RUNTIME_S: Record<Fault, number> = { controller: 12, node: 20 };
const KILL_AFTER_S = 3;
/** `strata up`'s layout flags per fault: the controller fault needs the controller in a process of its own. */
const LAYOUT_ARGS: Record<Fault, string[]> = { controller: ['--separate'], node: [] };
/** How long `strata up` keeps a killed node down in the node fault. */
const NODE_DOWN_MS = 15_000;

interface Run {
  fault: Fault;
  run: number;
  owner: string;
  client: string;
  newOwner: string;
  pauseMs: number;
  p50us: number;
}

function options(): { runs: number; out: string } {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, out: { type: 'string' } }, strict: true });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error('--runs must be a whole number from 1 to 50');
  return { runs, out: values.out ?? join(repoRoot, 'bench', 'results', 'failover.json') };
}

async function ownerOf(cluster: LocalCluster, vdisk: bigint): Promise<string> {
  const owner = (await readOwnership(cluster.natsUrl, vdisk, cluster.security))?.owner;
  if (owner === undefined) throw new Error(`vdisk ${vdisk} has no owner`);
  return owner;
}

/** Waits until every node is alive in the config service (a killed node is back). */
async function allAlive(cluster: LocalCluster): Promise<void> {
  const client = await ConfigClient.connect(cluster.natsUrl, undefined, cluster.security);
  try {
    // The config leader may still be being elected: UNAVAILABLE means not yet.
    await waitFor('every node to be alive', 60_000, async () => (await client.list('node')).every((n) => n.status.liveness === 'alive'), { intervalMs: 500, retryIf: isUnavailable });
  } finally {
    await client.close();
  }
}

async function killOwner(cluster: LocalCluster, fault: Fault, owner: string): Promise<void> {
  const pattern = fault === 'controller' ? new RegExp(`vdisk-controller/dist/main\\.js --node ${owner}( |$)`) : new RegExp(` --node ${owner}( |$)`);
  const victims = (await children(cluster.up.pid())).filter((c) => pattern.test(c.args));
  if (victims.length === 0) throw new Error(`no process of ${owner} to kill`);
  for (const v of victims) process.kill(v.pid, 'SIGKILL');
}

async function measure(fault: Fault, runs: number, scratch: string): Promise<Run[]> {
  const cluster = await startCluster(`failover-${fault}`, LAYOUT_ARGS[fault], fault === 'node' ? { STRATA_RESTART_DELAY_MS: String(NODE_DOWN_MS) } : {});
  let ok = false;
  try {
    const vdisk = createdId(await strata(cluster.dir, ['vdisk', 'create', 'fo', '--size', '1G', '--shared']));
    const uriAt = (node: string): string => `nbd://127.0.0.1:${cluster.nbdPort + Number(node.slice(1)) - 1}/fo`;
    // Node 2 owns it: its gateway opens it first.
    const opened = await run('qemu-io', ['-f', 'raw', uriAt('n2'), '-c', 'write -P 0x5a 0 1M'], { timeoutMs: 60_000 });
    if (opened.code !== 0) throw new Error(`qemu-io through n2 failed: ${opened.stdout}${opened.stderr}`);
    const results: Run[] = [];
    for (let i = 1; i <= runs; i++) {
      await allAlive(cluster);
      const owner = await ownerOf(cluster, vdisk);
      // The client writes through another node: the owner's own gateway dies with it in the node fault.
      const client = ['n1', 'n2', 'n3'].find((n) => n !== owner)!;
      const job = fio(uriAt(client), { name: `${fault}-${i}`, rw: 'randwrite', bs: '4k', iodepth: 1, size: '64M', runtimeS: RUNTIME_S[fault], rampS: 0 }, scratch);
      await sleep(KILL_AFTER_S * 1000);
      await killOwner(cluster, fault, owner);
      const figures = await job;
      const newOwner = await ownerOf(cluster, vdisk);
      const r: Run = { fault, run: i, owner, client, newOwner, pauseMs: Math.round(figures.maxUs / 1000), p50us: figures.p50us };
      results.push(r);
      process.stdout.write(`${fault.padEnd(10)} run ${i}: owner ${owner} killed, client on ${client}, now owned by ${newOwner}: I/O paused ${r.pauseMs} ms (p50 write ${r.p50us} µs)\n`);
    }
    ok = true;
    return results;
  } finally {
    await cluster.stop(!ok);
  }
}

function summary(runs: Run[]): { medianMs: number; maxMs: number; pausesMs: number[] } {
  const pausesMs = runs.map((r) => r.pauseMs);
  const sorted = [...pausesMs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
  return { medianMs, maxMs: sorted[sorted.length - 1]!, pausesMs };
}

async function main(): Promise<void> {
  const o = options();
  const scratch = mkdtempSync(join(tmpdir(), 'strata-bench-failover-'));
  try {
    const controller = await measure('controller', o.runs, scratch);
    const node = await measure('node', o.runs, scratch);
    const result = {
      measuredAt: new Date().toISOString(),
      timings: { heartbeatIntervalMs: 1000, fenceTimeoutMs: 4000, deadTimeoutMs: 6000, nodeDownMs: NODE_DOWN_MS },
      controller: { layout: 'separate', ...summary(controller), runs: controller },
      node: { layout: 'colocated', ...summary(node), runs: node },
    };
    process.stdout.write(
      `\nI/O pause after kill -9 of the owner (${o.runs} runs each):\n` +
        `  vdisk-controller (restarted by strata up): median ${result.controller.medianMs} ms, max ${result.controller.maxMs} ms\n` +
        `  whole node (kept down; failover):          median ${result.node.medianMs} ms, max ${result.node.maxMs} ms\n`,
    );
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`written to ${o.out}\n`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:failover: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
