// `strata up`: a local cluster in the foreground. It starts embedded nats-servers
// (child processes with JetStream, their stores under the data directory) unless
// NATS_URL names an existing cluster, then the config replicas, waits for a config
// leader, starts each node's actors (one node-host process per node, or with
// --separate one process per actor), its HA agent (every node is also a host) and its
// curator, prints `ready`, and runs until Ctrl-C or SIGTERM,
// which stops every child it started. Every child is supervised, the nats-servers
// too: one that dies is started again on the same ports and store, and the actors
// reconnect by themselves (to another server of three meanwhile). The config replicas
// and the nodes are the pieces `strata config run` and `strata node run` start
// (roles.ts, node-register.ts), so a cluster of `up` and one started host by host run
// the same processes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { planNatsServers, requireFsync, securityEnv, waitForJetStream, type ClientSecurity, type Grant, type NatsServerProcess, type NodeScope } from '@strata/natsd';
import { ConfigClient } from '@strata/config-client';
import { Tier } from '@strata/proto';
import { NATS_URL_FILE, UP_PID_FILE } from './client';
import { planRegistration, readRegistered, register } from './node-register';
import { ADMIN_USER, ensureLocalAuth, localAuthorization, securityOf, type LocalAuth } from './local-auth';
import { METRICS_TARGETS_FILE, metricsPortRun, writeMetricsTargets } from './metrics-ports';
import { tracingEnv, tracingLine, withEnv } from './tracing';
import { Layout, configChild, configGrants, nodeChildren, nodeGrants, preferServer, withMetricsPorts, type NodeProcesses } from './roles';
import { portOpen, takePidLock, waitForPort } from './serve';
import { Supervisor, type ChildSpec } from './supervisor';
import { UsageError } from './units';

export interface UpOptions {
  dir: string;
  natsPort: number;
  /** Embedded nats-servers: 1, or 3 forming one cluster (streams and buckets R3). */
  natsServers: number;
  configReplicas: number;
  /** Storage nodes n1..nN. */
  nodes: number;
  /** How a node's actors are spread over processes (default: colocated). */
  layout?: Layout;
  /** NBD port of node 1's gateway; node k listens on nbdPort + k - 1. */
  nbdPort: number;
  /** Capacity of each node's disk. */
  diskCapacityBytes: number;
  /** Every node is also a host with this capacity for VMs. */
  hostCpuCount: number;
  hostMemoryBytes: number;
  /** The first metrics port (--metrics-port); undefined: the first free run from 9464. */
  metricsPort?: number;
  /** A Zipkin server every process sends its spans to (--tracing), e.g. http://127.0.0.1:9411. */
  tracingUrl?: string;
  /**
   * Plain, anonymous NATS connections (--insecure) instead of the default on its own
   * servers: a user per process with its role's permissions, TLS on every connection.
   */
  insecure?: boolean;
}

export { Layout } from './roles';

/**
 * Why colocated is the default, as `strata up` says it at start: the measurement
 * behind the choice. npm run bench (3 nodes, 3 nats-servers, RF 3, fio through NBD,
 * a 2-core machine) gave the colocated layout 1.7x (4 KiB random writes at QD1, where
 * the R3 append bounds both layouts) to 9.3x (4 KiB random reads at QD1) the IOPS of
 * one process per actor, and earlier runs 2x to 10x; no workload was faster with one
 * process per actor. Every hop between processes costs a NATS round trip, encoding
 * on both sides and another process's wake-up: the separate layout spent 1.8x to 12x
 * the CPU per I/O, and on two cores the CPU is what runs out.
 */
export const LAYOUT_SPEEDUP = '1.7x to 9.3x';
const LAYOUT_REASON = `in npm run bench it served ${LAYOUT_SPEEDUP} the IOPS of one process per actor, on every workload`;

/** The line `strata up` prints before it starts the nodes: which layout runs, and why. */
export function layoutLine(nodes: number, layout: Layout): string {
  const started = `starting ${nodes} node${nodes > 1 ? 's' : ''}: `;
  if (layout === Layout.separate) return `${started}one process per actor (--separate; the default runs one node-host process per node: ${LAYOUT_REASON})`;
  return `${started}each node's actors in one node-host process (the default: ${LAYOUT_REASON}; --separate runs one process per actor)`;
}

/**
 * Node k of `strata up` (n<k>) as `strata node run` would run it: its metadata shard
 * md-<k> in its node-host (`--shard`), its gateway on nbdPort + k - 1, its own first
 * server of a NATS cluster.
 */
export function upNode(k: number, options: Pick<UpOptions, 'nbdPort' | 'layout' | 'dir'>, natsUrl: string): NodeProcesses {
  const node = `n${k}`;
  return { node, layout: options.layout ?? Layout.colocated, nbdPort: options.nbdPort + k - 1, shard: `md-${k}`, haRunDir: join(resolve(options.dir), 'ha', node), natsUrl: preferServer(natsUrl, k - 1) };
}

/**
 * Registers nodes n1..nN as `strata node run` does, each with one disk under the data
 * directory (n<k>-d1) and a host of the same name; what exists is kept.
 */
async function registerNodes(client: ConfigClient, dir: string, options: UpOptions): Promise<void> {
  for (let k = 1; k <= options.nodes; k++) {
    const node = `n${k}`;
    const path = join(dir, 'disks', `${node}-d1`);
    mkdirSync(path, { recursive: true });
    const disks = [{ path, tier: Tier.ssd, capacityBytes: options.diskCapacityBytes }];
    const plan = planRegistration({ node, address: '127.0.0.1', disks, host: { cpuCount: options.hostCpuCount, memoryBytes: options.hostMemoryBytes } }, await readRegistered(client));
    await register(client, node, plan.steps);
  }
}

/** A container `default` (RF 2, or 1 on a one-node cluster) and a vDisk `demo` (1 GiB), when there are none. */
async function ensureDemo(client: ConfigClient, options: UpOptions): Promise<void> {
  if ((await client.list('container')).length === 0) {
    await client.create({ kind: 'container', name: 'default', spec: { replicationFactor: Math.min(2, options.nodes) } });
  }
  if ((await client.list('vdisk')).length === 0) {
    const container = await client.get({ kind: 'container', name: 'default' });
    await client.create({ kind: 'vdisk', name: 'demo', spec: { container: container.id, sizeBytes: 2 ** 30 } });
  }
}

const NATS_CHILD_PREFIX = 'nats-';

function isNatsServer(childName: string): boolean {
  return childName.startsWith(NATS_CHILD_PREFIX);
}

/**
 * Starts the embedded nats-servers (nats-1..nats-N on natsPort, natsPort + 1, ...)
 * under the supervisor, so one that dies comes back on the same ports and store;
 * returns their URLs as NATS_URL takes them.
 */
async function superviseNatsServers(supervisor: Supervisor, dir: string, options: UpOptions, secure: Secure | undefined, say: (line: string) => void): Promise<NatsServerProcess[]> {
  if (![1, 3].includes(options.natsServers)) throw new UsageError('--nats must be 1 or 3');
  const ports = Array.from({ length: options.natsServers }, (_, i) => options.natsPort + i);
  for (const port of ports) {
    if (await portOpen('127.0.0.1', port)) throw new UsageError(`port ${port} on 127.0.0.1 is in use; pick free ones with --nats-port`);
  }
  const security = secure === undefined ? {} : { tls: secure.auth.tls, authorization: localAuthorization(secure.auth, secure.grants(new Map())), probe: secure.admin };
  const servers = await planNatsServers({ baseDir: join(dir, 'nats'), count: options.natsServers, ports, names: ports.map((_, i) => `${NATS_CHILD_PREFIX}${i + 1}`), ...security });
  say(`starting ${servers.length} nats-server${servers.length > 1 ? 's' : ''} on 127.0.0.1:${ports.join(',')} (data in ${join(dir, 'nats')})`);
  if (secure !== undefined) say(`NATS: TLS on every connection (CA ${secure.auth.tls.caFile}); each process connects as its own user with its role's permissions, the CLI as ${ADMIN_USER} (${join(dir, 'auth')})`);
  for (const server of servers) supervisor.add({ name: server.name, ...server.command() });
  return servers;
}

/** A local cluster's users and certificates, and the grant of each user given the registered nodes. */
interface Secure {
  auth: LocalAuth;
  admin: ClientSecurity;
  /** Every process's grant, by user; node-scoped keys exact for the nodes in `registered`. */
  grants(registered: Map<string, NodeScope>): Record<string, Grant>;
}

function secureCluster(dir: string, options: UpOptions, url: string): Secure {
  const grants = (registered: Map<string, NodeScope>): Record<string, Grant> => {
    let all: Record<string, Grant> = {};
    for (let i = 1; i <= options.configReplicas; i++) all = { ...all, ...configGrants(`config-${i}`) };
    for (let k = 1; k <= options.nodes; k++) {
      const p = upNode(k, options, url);
      all = { ...all, ...nodeGrants(p, registered.get(p.node) ?? { node: p.node }) };
    }
    return all;
  };
  const auth = ensureLocalAuth(dir, Object.keys(grants(new Map())));
  return { auth, admin: securityOf(auth, ADMIN_USER), grants };
}

/**
 * Each node's id, as registered: what its node-scoped permissions name. Not its disk
 * ids: a disk added while the cluster runs (`strata disk add`) reports its usage
 * from its first minute, and servers reloading their grants under load refuse the
 * replies in flight; so a node's extent store may write any disk's usage key.
 */
async function nodeScopes(client: ConfigClient): Promise<Map<string, NodeScope>> {
  const { nodes } = await readRegistered(client);
  return new Map(nodes.map((n) => [n.name, { node: n.name, nodeId: n.id }]));
}

/**
 * Narrows the servers' permissions to the registered nodes' ids (a heartbeat only
 * for one's own node, disk usage only for one's own disks): rewrites their configs
 * and has each running server reload it (SIGHUP). One that restarts later reads it.
 */
function narrowToRegistered(servers: readonly NatsServerProcess[], supervisor: Supervisor, secure: Secure, registered: Map<string, NodeScope>): void {
  const authorization = localAuthorization(secure.auth, secure.grants(registered));
  const pids = supervisor.pids();
  for (const server of servers) {
    server.setAuthorization(authorization);
    const pid = pids[server.name];
    if (pid !== undefined) process.kill(pid, 'SIGHUP');
  }
}

/** `child` connecting as its own user, when the cluster is secure. */
function withCredentials(child: ChildSpec, secure: Secure | undefined): ChildSpec {
  if (secure === undefined) return child;
  return { ...child, env: { ...child.env, ...securityEnv(securityOf(secure.auth, child.name)) } };
}

/** One `strata up` per data directory: a second would share the NATS store. */
function takeDirLock(dir: string): () => void {
  return takePidLock(join(dir, UP_PID_FILE), (pid) => `another "strata up" (pid ${pid}) is using ${dir}; stop it first or pass --dir`);
}

export async function up(options: UpOptions, say: (line: string) => void): Promise<void> {
  const dir = resolve(options.dir);
  if (!(options.configReplicas >= 1 && options.configReplicas <= 7)) throw new UsageError('--config-replicas must be between 1 and 7');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const releaseLock = takeDirLock(dir);

  const supervisor = new Supervisor(join(dir, 'logs'), say);
  const existing = process.env.NATS_URL;
  let url: string;
  let secure: Secure | undefined;
  let servers: NatsServerProcess[] = [];
  if (existing !== undefined && existing !== '') {
    url = existing;
    say(`using the NATS cluster at ${url} (NATS_URL)`);
    // Our own servers fsync every write (natsd writes their config); someone else's must say so.
    try {
      const warning = await requireFsync();
      if (warning !== null) say(warning);
    } catch (err) {
      releaseLock();
      throw err;
    }
  } else {
    const ports = Array.from({ length: options.natsServers }, (_, i) => `nats://127.0.0.1:${options.natsPort + i}`);
    try {
      secure = options.insecure === true ? undefined : secureCluster(dir, options, ports.join(','));
    } catch (err) {
      releaseLock();
      throw err;
    }
    servers = await superviseNatsServers(supervisor, dir, options, secure, say);
    url = servers.map((n) => n.url).join(',');
  }
  try {
    await waitForJetStream(url, 30_000, secure?.admin);
  } catch (err) {
    await supervisor.stop();
    releaseLock();
    throw new Error(`${(err as Error).message}; see ${join(dir, 'logs')}`);
  }
  writeFileSync(join(dir, NATS_URL_FILE), `${url}\n`);

  // Every process, planned once in start order: each gets a metrics port of its own
  // (the targets file says where), the tracing settings and its credentials. The
  // config replicas start now, the nodes once they are registered.
  const configs = Array.from({ length: options.configReplicas }, (_, i) => configChild(`config-${i + 1}`, preferServer(url, i)));
  const nodes = Array.from({ length: options.nodes }, (_, i) => nodeChildren(upNode(i + 1, options, url))).flat();
  let firstMetricsPort: number;
  try {
    firstMetricsPort = await metricsPortRun(configs.length + nodes.length, options.metricsPort);
  } catch (err) {
    await supervisor.stop();
    releaseLock();
    throw err;
  }
  const planned = withEnv(withMetricsPorts([...configs, ...nodes], firstMetricsPort), tracingEnv(options.tracingUrl)).map((c) => withCredentials(c, secure));
  for (const child of planned.slice(0, configs.length)) supervisor.add(child);

  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      say(`stopping (${why})`);
      // The actors first, then the nats-servers they use: they stop cleanly while the bus is up.
      await supervisor.stop((name) => !isNatsServer(name));
      await supervisor.stop();
      releaseLock();
      say('stopped');
    })());
  process.on('SIGINT', () => void stop('SIGINT').then(() => process.exit(0)));
  process.on('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));

  let exportsLine: string[] = [];
  try {
    const client = await ConfigClient.connect(url, 30_000, secure?.admin);
    try {
      const status = await client.status();
      say(`config leader: ${status.leader} (epoch ${status.epoch})`);
      await registerNodes(client, dir, options);
      if (secure !== undefined) narrowToRegistered(servers, supervisor, secure, await nodeScopes(client));
      if (options.nodes > 0) say(layoutLine(options.nodes, options.layout ?? Layout.colocated));
      for (const child of planned.slice(configs.length)) supervisor.add(child);
      if (options.nodes > 0) {
        await ensureDemo(client, options);
        // Ready means a client can connect: wait for every gateway's NBD port.
        await Promise.all(Array.from({ length: options.nodes }, (_, i) => waitForPort('127.0.0.1', options.nbdPort + i, 60_000)));
        exportsLine = (await client.list('vdisk')).map((v) => `nbd://127.0.0.1:${options.nbdPort}/${v.name}`);
      }
    } finally {
      await client.close();
    }
  } catch (err) {
    await stop('start-up failed');
    throw err;
  }
  const targets = writeMetricsTargets(join(dir, METRICS_TARGETS_FILE), planned);
  say('ready');
  for (const line of exportsLine) say(line);
  if (exportsLine.length > 0) say(`try: qemu-io -f raw ${exportsLine[0]} -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k'`);
  say(`NATS_URL=${url}`);
  say(`data and logs: ${dir}`);
  if (options.tracingUrl !== undefined) say(await tracingLine(options.tracingUrl));
  say(`metrics: ${targets} processes on 127.0.0.1:${firstMetricsPort}-${firstMetricsPort + targets - 1} (Prometheus file_sd targets: ${join(dir, METRICS_TARGETS_FILE)})`);
  say('try: ./strata status; ./strata node ls; ./strata vdisk ls; ./strata host ls   (Ctrl-C stops the cluster)');
  // Keep running until a signal arrives.
  await new Promise<never>(() => undefined);
}
