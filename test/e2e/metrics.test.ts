// Every actor process of `strata up` answers a Prometheus scrape on a port of its own,
// in both process layouts: `--separate` (one process per actor: config replicas,
// gateways, io-directors, admissions, vdisk-controllers, extent stores, metadata
// shards, HA agents, curators) and the default (one node-host per node beside its HA
// agent and curator). For each cluster the test proves that:
//  - the targets file `strata up` writes (Prometheus file_sd) names every process it
//    started but the nats-servers, each at the port in that process's environment;
//  - every target answers /metrics with the process series and the series of the
//    actors it runs (the vdisk-controller's oplog backlog, replication lag, drain and
//    opens after a write; the config leader and its failover counters; the curator
//    and HA masters; the io-director's, admission's, gateway's, extent store's and
//    shard's request series), one config leader, one curator master, one HA master;
//  - no process was restarted (`strata up` says so when one exits).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UpClusters, children, qemuIo, waitFor, type UpCluster } from '../harness';
import { waitForDrained } from '../harness/strata';

const clusters = new UpClusters('metrics');

interface Target {
  targets: string[];
  labels: { job: string; process: string };
}

/** The series every process has, and those of each actor (by the process names `strata up` gives). */
const PROCESS_SERIES = 'process_cpu_user_seconds_total';
const ACTOR_SERIES: Array<[RegExp, string[]]> = [
  [/^config-\d$/, ['strata_config_leader', 'strata_failover_takeovers_in_progress', 'strata_failover_takeovers_total']],
  [/-gateway$|-node-host$/, ['strata_gateway_requests_total', 'strata_gateway_connections']],
  [/-io-director$|-node-host$/, ['strata_director_requests_total', 'strata_director_request_seconds']],
  [/-admission$|-node-host$/, ['strata_admission_queue_depth']],
  [/-vdisk-controller$|-node-host$/, ['strata_vdisks_served', 'strata_vdisk_opens_total', 'strata_vdisk_open_seconds']],
  [/-extent-store$|-node-host$/, ['strata_estore_requests_total']],
  [/-metadata-shard$|-node-host$/, ['strata_md_requests_total']],
  [/-curator$/, ['strata_curator_master']],
  [/-ha-agent$/, ['strata_ha_master', 'strata_ha_vms_running']],
];

async function scrape(target: string): Promise<string> {
  const response = await fetch(`http://${target}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect({ target, status: response.status }).toEqual({ target, status: 200 });
  return response.text();
}

/** The value of the one series `name` (any labels) in a scrape; undefined when absent. */
function valueOf(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** STRATA_METRICS_PORT in a live process's environment. */
function metricsPortOf(pid: number): string | undefined {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return env.find((e) => e.startsWith('STRATA_METRICS_PORT='))?.slice('STRATA_METRICS_PORT='.length);
}

async function checkEveryProcess(cluster: UpCluster, layout: string): Promise<void> {
  // A write through node 1 (below the direct-write size: it goes through the oplog), drained.
  await qemuIo(cluster.nbdUri, ['write -P 7 0 16k']);
  await waitForDrained(cluster.natsUrl, cluster.demoId, 30_000);

  const targets = JSON.parse(readFileSync(join(cluster.dir, 'metrics-targets.json'), 'utf8')) as Target[];
  const actors = (await children(cluster.up.pid())).filter((c) => !c.args.includes('nats-server'));
  expect(targets).toHaveLength(actors.length);
  const names = new Set(targets.map((t) => t.labels.process));
  expect(names.size).toBe(targets.length);
  for (const actor of actors) {
    const port = metricsPortOf(actor.pid);
    expect({ actor: actor.args, port }).toEqual({ actor: actor.args, port: expect.stringMatching(/^\d+$/) });
    expect(targets.filter((t) => t.targets[0] === `127.0.0.1:${port}`)).toHaveLength(1);
  }

  const leaders = { config: 0, curator: 0, ha: 0 };
  let backlogSeen = false;
  for (const t of targets) {
    const text = await scrape(t.targets[0]!);
    const name = t.labels.process;
    expect({ name, process: text.includes(PROCESS_SERIES) }).toEqual({ name, process: true });
    for (const [pattern, series] of ACTOR_SERIES) {
      if (!pattern.test(name)) continue;
      // Registered: its TYPE line is there even before it has a series.
      for (const s of series) expect({ name, series: s, registered: text.includes(`\n# TYPE ${s} `) }).toEqual({ name, series: s, registered: true });
    }
    leaders.config += valueOf(text, 'strata_config_leader') ?? 0;
    leaders.curator += valueOf(text, 'strata_curator_master') ?? 0;
    leaders.ha += valueOf(text, 'strata_ha_master') ?? 0;
    // The owner of demo (node 1, which the write went through) reports its oplog.
    if (/^n1-(vdisk-controller|node-host)$/.test(name)) {
      expect(valueOf(text, 'strata_vdisks_served')).toBe(1);
      expect(valueOf(text, 'strata_vdisk_opens_total')).toBeGreaterThanOrEqual(1);
      expect(valueOf(text, 'strata_oplog_backlog_bytes', 'vdisk="demo"')).toBe(0);
      expect(valueOf(text, 'strata_oplog_replication_lag_seconds', 'vdisk="demo"')).toBe(0);
      expect(valueOf(text, 'strata_drain_bytes_total', 'vdisk="demo"')).toBe(16 * 1024);
      backlogSeen = true;
    }
  }
  expect(leaders).toEqual({ config: 1, curator: 1, ha: 1 });
  expect(backlogSeen).toBe(true);
  expect(cluster.up.output()).not.toMatch(/exited .*; restarting/);
  console.log(`${layout}: ${targets.length} processes scraped`);
}

describe.each([{ layout: 'separate' as const }, { layout: 'colocated' as const }])('strata up ($layout layout): every actor process answers a scrape', ({ layout }) => {
  let cluster: UpCluster;
  beforeAll(async () => {
    cluster = await clusters.start({ layout, configReplicas: 3 });
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  it('lists every process in the targets file, and each answers with its series', async () => {
    // The HA and curator masters are elected within a few lease periods.
    await waitFor('a curator master and an HA master', 30_000, async () => {
      const targets = JSON.parse(readFileSync(join(cluster.dir, 'metrics-targets.json'), 'utf8')) as Target[];
      const texts = await Promise.all(targets.filter((t) => /-(curator|ha-agent)$/.test(t.labels.process)).map((t) => scrape(t.targets[0]!)));
      return texts.some((t) => valueOf(t, 'strata_curator_master') === 1) && texts.some((t) => valueOf(t, 'strata_ha_master') === 1);
    });
    await checkEveryProcess(cluster, layout);
    cluster.passed = true;
  }, 120_000);
});
