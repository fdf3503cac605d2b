// `strata up`: a local cluster in the foreground. It starts embedded nats-servers
// (child processes with JetStream, their stores under the data directory) unless
// NATS_URL names an existing cluster, then the config replicas, waits for a config
// leader, starts each node's actors (one node-host process per node, or with
// --separate one process per actor), its HA agent (every node is also a host) and its
// curator, prints `ready`, and runs until Ctrl-C or SIGTERM,
// which stops every child it started. Every child is supervised, the nats-servers
// too: one that dies is started again on the same ports and store, and the actors
// reconnect by themselves (to another server of three meanwhile).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { planNatsServers, requireFsync, waitForJetStream } from '@strata/natsd';
import { ConfigClient } from '@strata/config-client';
import { NATS_URL_FILE } from './client';
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
}

/** The actors every node runs, in start order (node-host's own list, services/node-host/src/host.ts). */
export const NODE_ACTORS = ['metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway'] as const;

/**
 * `colocated`: each node's actors in one node-host process, requests between them
 * dispatched in-process. `separate`: one process per actor, every request over NATS.
 */
export const Layout = { colocated: 'colocated', separate: 'separate' } as const;
export type Layout = (typeof Layout)[keyof typeof Layout];

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

/** Where each actor's entry point is, relative to this file once built (cli/dist). */
function actorScript(actor: string): string {
  return resolve(__dirname, '..', '..', 'services', actor, 'dist', 'main.js');
}

/**
 * `url` (a comma-separated server list) rotated so that server `index` (modulo the
 * count) comes first. Actors connect to the first server they can reach (the bus
 * does not shuffle the list), so giving each node its own first server keeps a
 * node's actors on one server, where a request between them takes no route hop, and
 * spreads the nodes over the servers, as a node's own local server would.
 */
export function preferServer(url: string, index: number): string {
  const servers = url.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (servers.length < 2) return url;
  const first = index % servers.length;
  return [...servers.slice(first), ...servers.slice(0, first)].join(',');
}

/**
 * Node flags of the I/O path's processes (every node actor). A young generation of
 * 32 MiB semi-spaces instead of V8's default 16: every I/O allocates short-lived
 * objects in each layer, and with the default the scavenger ran often enough to take
 * 14% of a colocated node's main thread at 4 KiB random reads (QD32); with 32 MiB it
 * took 5%, and the node served 20k reads a second instead of 17k. It costs at most
 * 32 MiB more memory per process.
 */
export const NODE_ACTOR_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/**
 * The supervised processes of node k (n<k>): one node-host running all its actors,
 * or with the separate layout one process per actor, in start order. Every command
 * line names the node (`--node n2`; the metadata shard's `--shard md-2`) and the
 * node-host's names the actors it hosts, so `ps` shows who is who and `pgrep -f
 * vdisk-controller` finds the process that runs a node's controller in either layout.
 */
export function nodeChildren(k: number, options: Pick<UpOptions, 'nbdPort' | 'layout' | 'dir'>, natsUrl: string): ChildSpec[] {
  const node = `n${k}`;
  const shard = `md-${k}`;
  const nbdPort = String(options.nbdPort + k - 1);
  const env = { NATS_URL: preferServer(natsUrl, k - 1) };
  // Every node is also a host of the same name: its HA agent runs the host's VMs, whose
  // disks the node's gateway serves. It is a process of its own in both layouts.
  const haAgent: ChildSpec = { name: `${node}-ha-agent`, command: process.execPath, args: [actorScript('ha-agent'), '--host', node, '--nbd-port', nbdPort, '--run-dir', join(resolve(options.dir), 'ha', node)], env };
  // Its curator is a process of its own too: it is off the I/O path (nothing gains from
  // in-process dispatch), and a master's copies should not share a thread with the node's I/O.
  const curator: ChildSpec = { name: `${node}-curator`, command: process.execPath, args: [actorScript('curator'), '--node', node], env };
  if ((options.layout ?? Layout.colocated) === Layout.colocated) {
    const args = [...NODE_ACTOR_FLAGS, actorScript('node-host'), '--node', node, '--shard', shard, '--nbd-port', nbdPort, '--actors', NODE_ACTORS.join(',')];
    return [{ name: `${node}-node-host`, command: process.execPath, args, env }, haAgent, curator];
  }
  const actors = NODE_ACTORS.map((actor) => {
    const args = [...NODE_ACTOR_FLAGS, actorScript(actor), actor === 'metadata-shard' ? '--shard' : '--node', actor === 'metadata-shard' ? shard : node];
    if (actor === 'gateway') args.push('--nbd-port', nbdPort);
    return { name: `${node}-${actor}`, command: process.execPath, args, env };
  });
  return [...actors, haAgent, curator];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Registers nodes n1..nN, each with one disk under the data directory and a host of the same name, when missing. */
async function registerNodes(client: ConfigClient, dir: string, options: UpOptions): Promise<void> {
  const nodes = new Set((await client.list('node')).map((n) => n.name));
  const disks = new Set((await client.list('disk')).map((d) => d.name));
  const hosts = new Set((await client.list('host')).map((h) => h.name));
  for (let k = 1; k <= options.nodes; k++) {
    const name = `n${k}`;
    if (!nodes.has(name)) await client.create({ kind: 'node', name, spec: { address: '127.0.0.1' } });
    const diskName = `${name}-d1`;
    if (!disks.has(diskName)) {
      const node = await client.get({ kind: 'node', name });
      const path = join(dir, 'disks', diskName);
      mkdirSync(path, { recursive: true });
      await client.create({ kind: 'disk', name: diskName, spec: { node: node.id, path, tier: 'ssd', capacityBytes: options.diskCapacityBytes } });
    }
    if (!hosts.has(name)) {
      const node = await client.get({ kind: 'node', name });
      await client.create({ kind: 'host', name, spec: { node: node.id, cpuCount: options.hostCpuCount, memoryBytes: options.hostMemoryBytes } });
    }
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

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; fails after `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() >= deadline) throw new Error(`no gateway is listening on 127.0.0.1:${port} after ${timeoutMs} ms; see the gateway logs`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const NATS_CHILD_PREFIX = 'nats-';

function isNatsServer(childName: string): boolean {
  return childName.startsWith(NATS_CHILD_PREFIX);
}

/** Whether something already listens on 127.0.0.1:`port`. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts the embedded nats-servers (nats-1..nats-N on natsPort, natsPort + 1, ...)
 * under the supervisor, so one that dies comes back on the same ports and store;
 * returns their URLs as NATS_URL takes them.
 */
async function superviseNatsServers(supervisor: Supervisor, dir: string, options: UpOptions, say: (line: string) => void): Promise<string> {
  if (![1, 3].includes(options.natsServers)) throw new UsageError('--nats must be 1 or 3');
  const ports = Array.from({ length: options.natsServers }, (_, i) => options.natsPort + i);
  for (const port of ports) {
    if (await portInUse(port)) throw new UsageError(`port ${port} on 127.0.0.1 is in use; pick free ones with --nats-port`);
  }
  const servers = await planNatsServers({ baseDir: join(dir, 'nats'), count: options.natsServers, ports, names: ports.map((_, i) => `${NATS_CHILD_PREFIX}${i + 1}`) });
  say(`starting ${servers.length} nats-server${servers.length > 1 ? 's' : ''} on 127.0.0.1:${ports.join(',')} (data in ${join(dir, 'nats')})`);
  for (const server of servers) supervisor.add({ name: server.name, ...server.command() });
  return servers.map((n) => n.url).join(',');
}

/** One `strata up` per data directory: a second would share the NATS store. */
function takeDirLock(dir: string): () => void {
  const file = join(dir, 'up.pid');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new UsageError(`another "strata up" (pid ${pid}) is using ${dir}; stop it first or pass --dir`);
    }
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => rmSync(file, { force: true });
}

export async function up(options: UpOptions, say: (line: string) => void): Promise<void> {
  const dir = resolve(options.dir);
  if (!(options.configReplicas >= 1 && options.configReplicas <= 7)) throw new UsageError('--config-replicas must be between 1 and 7');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const releaseLock = takeDirLock(dir);

  const supervisor = new Supervisor(join(dir, 'logs'), say);
  const existing = process.env.NATS_URL;
  let url: string;
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
    url = await superviseNatsServers(supervisor, dir, options, say);
  }
  try {
    await waitForJetStream(url);
  } catch (err) {
    await supervisor.stop();
    releaseLock();
    throw new Error(`${(err as Error).message}; see ${join(dir, 'logs')}`);
  }
  writeFileSync(join(dir, NATS_URL_FILE), `${url}\n`);

  for (let i = 1; i <= options.configReplicas; i++) {
    supervisor.add({ name: `config-${i}`, command: process.execPath, args: [actorScript('config'), '--replica', `config-${i}`], env: { NATS_URL: preferServer(url, i - 1) } });
  }

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
    const client = await ConfigClient.connect(url, 30_000);
    try {
      const status = await client.status();
      say(`config leader: ${status.leader} (epoch ${status.epoch})`);
      await registerNodes(client, dir, options);
      if (options.nodes > 0) say(layoutLine(options.nodes, options.layout ?? Layout.colocated));
      for (let k = 1; k <= options.nodes; k++) {
        for (const child of nodeChildren(k, options, url)) supervisor.add(child);
      }
      if (options.nodes > 0) {
        await ensureDemo(client, options);
        // Ready means a client can connect: wait for every gateway's NBD port.
        await Promise.all(Array.from({ length: options.nodes }, (_, i) => waitForPort(options.nbdPort + i, 60_000)));
        exportsLine = (await client.list('vdisk')).map((v) => `nbd://127.0.0.1:${options.nbdPort}/${v.name}`);
      }
    } finally {
      await client.close();
    }
  } catch (err) {
    await stop('start-up failed');
    throw err;
  }
  say('ready');
  for (const line of exportsLine) say(line);
  if (exportsLine.length > 0) say(`try: qemu-io -f raw ${exportsLine[0]} -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k'`);
  say(`NATS_URL=${url}`);
  say(`data and logs: ${dir}`);
  say('try: ./strata status; ./strata node ls; ./strata vdisk ls; ./strata host ls   (Ctrl-C stops the cluster)');
  // Keep running until a signal arrives.
  await new Promise<never>(() => undefined);
}
