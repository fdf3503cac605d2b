// Whole local clusters started by `strata up` for end-to-end and fault tests: three
// nodes, or four (one node-host process each, or with `layout: 'separate'` one process per
// actor, for a test that kills or pauses one actor), one config replica, free ports,
// a data directory that is kept when a test fails. Stopping one stops `strata up`, then kills by PID
// whatever of its children survived, then the harness nats-servers it used.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigClient } from '@strata/config-client';
import type { ClientSecurity } from '@strata/natsd';
import { adminSecurity } from '../../cli/src/local-auth';
import type { NatsTopology } from './nats';
import { startNode, type ActorProcess } from './processes';
import { PLAIN_ENV, seedUpAuth, suiteIsSecure } from './suite-security';
import { childPids, commandLine, freePortRun, killIfUnchanged, type AckedWriter, type DrainSampler } from './strata';

export interface UpCluster {
  dir: string;
  up: ActorProcess;
  /** NBD URI of `demo` at node 1's gateway. */
  nbdUri: string;
  /** Node k's gateway listens on nbdPort + k - 1. */
  nbdPort: number;
  natsUrl: string;
  /** How the test's own clients connect: the admin's credentials and the CA (none when insecure). */
  security: ClientSecurity;
  demoId: bigint;
  writer?: AckedWriter;
  sampler?: DrainSampler;
  /** Set by the test at its end: the data directory is deleted only then. */
  passed: boolean;
}

export interface UpClusterOptions {
  /** Run on these harness nats-servers (NATS_URL) instead of an embedded one. */
  topology?: NatsTopology;
  /** Settings for every actor (STRATA_*), and for `strata up` itself. */
  env?: Record<string, string>;
  /** Embedded nats-servers (`--nats`): 1 (default) or 3. */
  natsServers?: 1 | 3;
  /** Config replicas (default 1). */
  configReplicas?: number;
  /**
   * `strata up`'s process layout: `colocated` (its default, one node-host per node) or
   * `separate` (`--separate`: one process per actor), which a test needs to kill or
   * pause one actor alone.
   */
  layout?: 'colocated' | 'separate';
  /** More arguments for `strata up` (`--host-cpus 1`). */
  upArgs?: string[];
  /** Storage nodes (`--nodes`), each with its own NBD port: 3 (default) or 4. */
  nodes?: 3 | 4;
  /**
   * `strata up`'s default, and the suite's unless it runs insecure
   * (suite-security.ts): TLS and a NATS user per process with its role's permissions,
   * the admin being the suite's, so the test's own clients reach the cluster with the
   * credentials in their environment (also in `cluster.security`). `false` runs the
   * cluster `--insecure`; its clients must then connect plainly (plainBus()).
   */
  secure?: boolean;
}

/** The clusters one test file started, stopped together. */
export class UpClusters {
  private clusters: UpCluster[] = [];
  private topologies: NatsTopology[] = [];

  /** `label` names the data directories (strata-<label>-…). */
  constructor(private readonly label: string) {}

  /** Harness nats-servers to stop after the clusters that use them. */
  track(topology: NatsTopology): NatsTopology {
    this.topologies.push(topology);
    return topology;
  }

  /** Starts `strata up --nodes 3` (or as many as asked; one config replica and the default layout unless asked) and waits for `ready`. */
  async start(options: UpClusterOptions = {}): Promise<UpCluster> {
    const dir = mkdtempSync(join(tmpdir(), `strata-${this.label}-`));
    const nodes = options.nodes ?? 3;
    const nbdPort = await freePortRun(nodes);
    const natsServers = options.natsServers ?? 1;
    const natsPort = await freePortRun(natsServers);
    const secure = (options.secure ?? suiteIsSecure) && options.topology === undefined;
    // Secure, it is the suite's admin; on the harness's servers, `up` and its children connect as the environment says.
    const security = secure ? seedUpAuth(dir) : undefined;
    const up = startNode(
      'cli/dist/main.js',
      [
        ...['--dir', dir, 'up', '--nodes', String(nodes), '--nats', String(natsServers), '--config-replicas', String(options.configReplicas ?? 1)],
        ...['--nbd-port', String(nbdPort), '--nats-port', String(natsPort), ...(options.layout === 'separate' ? ['--separate'] : []), ...(secure || options.topology !== undefined ? [] : ['--insecure']), ...(options.upArgs ?? [])],
      ],
      { name: 'strata up', env: { ...(secure || options.topology !== undefined ? {} : PLAIN_ENV), NATS_URL: options.topology?.url ?? '', STRATA_NATS_MONITOR_URL: options.topology?.monitorUrls ?? '', ...options.env } },
    );
    const cluster: UpCluster = { dir, up, nbdUri: `nbd://127.0.0.1:${nbdPort}/demo`, nbdPort, natsUrl: '', security: {}, demoId: 0n, passed: false };
    this.clusters.push(cluster);
    await up.waitForOutput(/^ready$/m, 90_000);
    cluster.natsUrl = readFileSync(join(dir, 'nats.url'), 'utf8').trim();
    if (security !== undefined) cluster.security = adminSecurity(dir) ?? security;
    else if (options.topology !== undefined) cluster.security = options.topology.security;
    const client = await ConfigClient.connect(cluster.natsUrl, undefined, cluster.security);
    try {
      cluster.demoId = (await client.get({ kind: 'vdisk', name: 'demo' })).id;
    } finally {
      await client.close();
    }
    return cluster;
  }

  /** Stops every cluster, then the nats-servers they ran on. */
  async stopAll(): Promise<void> {
    const all = this.clusters;
    this.clusters = [];
    for (const c of all) await this.stop(c);
    const servers = this.topologies;
    this.topologies = [];
    for (const t of servers) await t.stop();
  }

  /** Stops the writer, `strata up` and everything it started (by PID). */
  private async stop(cluster: UpCluster): Promise<void> {
    const writerStopped = cluster.writer?.stop();
    const upPid = cluster.up.child.pid;
    const snapshot = new Map<number, string>();
    if (upPid !== undefined && cluster.up.child.exitCode === null) {
      for (const pid of await childPids(upPid).catch(() => [])) {
        const cmd = commandLine(pid);
        if (cmd !== undefined) snapshot.set(pid, cmd);
      }
    }
    // A paused child would hold up the graceful stop: wake everything first.
    for (const pid of snapshot.keys()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone already
      }
    }
    await cluster.up.stop(20_000);
    // `strata up` stops its children itself; whatever survived it (a hung child, or
    // all of them if `up` died first) is killed here, by PID.
    const leftovers = killIfUnchanged(snapshot);
    if (leftovers.length > 0) console.warn(`killed ${leftovers.length} processes left by strata up: ${leftovers.join(' ')}`);
    await writerStopped;
    await cluster.sampler?.stop();
    reportViolations(cluster.dir);
    if (cluster.passed) rmSync(cluster.dir, { recursive: true, force: true });
    else console.warn(`${this.label}: the failed test's data and logs are kept in ${cluster.dir}`);
  }
}

/**
 * Names the permissions violations the cluster's nats-servers logged: a role's grant
 * (PROTOCOL.md section 14) that lacks a subject its process needs shows there first,
 * as a failed request in the process's own log. A warning, not a failure: the test's
 * own assertions say whether the cluster worked.
 */
function reportViolations(dir: string): void {
  const logs = join(dir, 'logs');
  if (!existsSync(logs)) return;
  const lines = readdirSync(logs)
    .filter((f) => f.startsWith('nats-'))
    .flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l.includes('Violation')));
  if (lines.length > 0) console.warn(`permissions violations logged by the nats-servers of ${dir} (${lines.length}):\n${[...new Set(lines.map((l) => l.replace(/^.*?\] /, '')))].slice(0, 10).join('\n')}`);
}
