// `npm run bench:ha`: how long from the death of a host to the next console line of its
// protected QEMU guest on another host? A local 3-node cluster (one process per actor,
// default timings: node heartbeat 1 s, fence 4 s, dead 6 s; HA agents' heartbeat
// 500 ms, power-on lease 4 s, master lease 3 s), every node also a host, and one
// protected QEMU guest writing a counter to its vDisk (O_DIRECT and fsync) and printing
// it on its console. Five times: every process of the host running the guest is killed
// (node actors, agent, guest; `strata up` brings them back after 25 s), and the time from
// the kill to the guest's first console line on another host is measured by reading the
// console files every 10 ms; also to its first counter there (its disk served again).
// It records whether the HA master died with the host (a new master must first watch a
// whole lease TTL). Prints each run, the median and the maximum, and writes them to
// bench/results/ha.json. A measurement, not a test: it fails only when something does
// not run.
//
// Options: --runs N (default 5), --out FILE.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, sleep, waitFor } from '../test/harness';
import { consoleLines, hostProcesses, killAll } from '../test/harness/ha';
import { startCluster, strata, type LocalCluster } from './common';

/** How long `strata up` keeps a killed host down: the guest must come back on another host. */
const HOST_DOWN_MS = 25_000;
const POLL_MS = 10;

interface Run {
  run: number;
  killed: string;
  masterDied: boolean;
  restartedOn: string;
  toConsoleLineMs: number;
  toCounterMs: number;
  counterBefore: number;
  counterAfter: number;
}

function options(): { runs: number; out: string } {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, out: { type: 'string' } }, strict: true });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--runs must be a whole number from 1 to 20');
  return { runs, out: values.out ?? join(repoRoot, 'bench', 'results', 'ha.json') };
}

/** The host the guest runs on and the master, from `strata vm ls` and `strata ha status`. */
async function whereIs(cluster: LocalCluster): Promise<{ host: string; master: string }> {
  const host = /^g1 +(\S+) +running /m.exec(await strata(cluster.dir, ['vm', 'ls']))?.[1];
  const master = /^master: (\S+)/.exec(await strata(cluster.dir, ['ha', 'status']))?.[1];
  if (host === undefined || master === undefined) throw new Error('the guest is not running, or no HA master answers');
  return { host, master };
}

/** The guest's console lines so far, per host. */
function linesByHost(cluster: LocalCluster): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of consoleLines(cluster.dir, 'g1')) out.set(l.host, [...(out.get(l.host) ?? []), l.line]);
  return out;
}

async function everyHostAlive(cluster: LocalCluster): Promise<void> {
  await waitFor('every host alive', 120_000, async () => {
    const ls = await strata(cluster.dir, ['host', 'ls']).catch(() => '');
    return ['n1', 'n2', 'n3'].every((h) => new RegExp(`^${h}( \\(master\\))? +n\\d +alive `, 'm').test(ls));
  }, 1_000);
}

async function oneRun(cluster: LocalCluster, run: number): Promise<Run> {
  await everyHostAlive(cluster);
  const { host, master } = await whereIs(cluster);
  const counterBefore = Math.max(0, ...consoleLines(cluster.dir, 'g1').map((l) => Number(/^counter (\d+)$/.exec(l.line)?.[1] ?? 0)));
  const before = linesByHost(cluster);
  const victims = await hostProcesses(cluster.up.pid(), host);
  const killedAt = performance.now();
  killAll(victims.keys());
  let toConsoleLineMs: number | undefined;
  let restartedOn = '';
  const counterAfter = await waitFor('the guest to print a counter on another host', 120_000, () => {
    // Lines printed since the kill on the other hosts.
    const fresh = [...linesByHost(cluster)].filter(([h]) => h !== host).flatMap(([h, lines]) => lines.slice(before.get(h)?.length ?? 0).map((line) => ({ host: h, line })));
    if (fresh.length > 0 && toConsoleLineMs === undefined) {
      toConsoleLineMs = performance.now() - killedAt;
      restartedOn = fresh[0]!.host;
    }
    const counter = fresh.map((l) => /^counter (\d+)$/.exec(l.line)?.[1]).find((c) => c !== undefined);
    return counter === undefined ? undefined : Number(counter);
  }, POLL_MS);
  const r: Run = { run, killed: host, masterDied: master === host, restartedOn, toConsoleLineMs: Math.round(toConsoleLineMs!), toCounterMs: Math.round(performance.now() - killedAt), counterBefore, counterAfter };
  process.stdout.write(`run ${run}: host ${host} killed${r.masterDied ? ' (the master)' : ` (master ${master})`}; the guest's next console line came from ${restartedOn} after ${r.toConsoleLineMs} ms, its next counter (${counterAfter}, last before ${counterBefore}) after ${r.toCounterMs} ms\n`);
  return r;
}

function summary(values: number[]): { medianMs: number; maxMs: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return { medianMs: sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2), maxMs: sorted[sorted.length - 1]! };
}

async function main(): Promise<void> {
  const o = options();
  const cluster = await startCluster('ha', [], { STRATA_RESTART_DELAY_MS: String(HOST_DOWN_MS) });
  let ok = false;
  try {
    await strata(cluster.dir, ['vdisk', 'create', 'g1', '--size', '64M']);
    await strata(cluster.dir, ['vm', 'create', 'g1', '--host', 'n1', '--cpus', '1', '--memory', '256M', '--vdisk', 'g1', '--driver', 'qemu', '--ha-protected', '--restart-priority', 'high']);
    await strata(cluster.dir, ['vm', 'start', 'g1']);
    await sleep(3_000);
    const runs: Run[] = [];
    for (let i = 1; i <= o.runs; i++) runs.push(await oneRun(cluster, i));
    const result = {
      measuredAt: new Date().toISOString(),
      timings: { heartbeatIntervalMs: 1000, fenceTimeoutMs: 4000, deadTimeoutMs: 6000, haHeartbeatIntervalMs: 500, powerOnLeaseTtlMs: 4000, masterLeaseTtlMs: 3000, hostDownMs: HOST_DOWN_MS },
      toConsoleLine: summary(runs.map((r) => r.toConsoleLineMs)),
      toCounter: summary(runs.map((r) => r.toCounterMs)),
      runs,
    };
    process.stdout.write(
      `\nfrom the kill of the guest's host to (${o.runs} runs):\n` +
        `  its next console line on another host: median ${result.toConsoleLine.medianMs} ms, max ${result.toConsoleLine.maxMs} ms\n` +
        `  its next counter there (its disk served): median ${result.toCounter.medianMs} ms, max ${result.toCounter.maxMs} ms\n`,
    );
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`written to ${o.out}\n`);
    ok = true;
  } finally {
    await cluster.stop(!ok);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:ha: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
