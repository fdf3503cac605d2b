// The processes of each role a machine can run, as command lines (pure: no I/O):
// a config replica (`strata config run`), a metadata shard (`strata shard run`) and a
// storage node's actors (`strata node run`). `strata up` starts the same pieces on one
// machine, so a cluster started by `up` and one started host by host run the same
// processes with the same flags.
import { resolve } from 'node:path';
import { configGrant, curatorGrant, haAgentGrant, metadataShardGrant, NODE_ACTOR_GRANTS, nodeHostGrant, type Grant, type NodeActorRole, type NodeScope } from '@strata/natsd';
import type { ChildSpec } from './supervisor';

/** The actors every node runs, in start order (node-host's own list, services/node-host/src/host.ts). */
export const NODE_ACTORS = ['metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway'] as const;
type NodeActor = (typeof NODE_ACTORS)[number];

/**
 * `colocated`: each node's actors in one node-host process, requests between them
 * dispatched in-process. `separate`: one process per actor, every request over NATS.
 */
export const Layout = { colocated: 'colocated', separate: 'separate' } as const;
export type Layout = (typeof Layout)[keyof typeof Layout];

/** Where each actor's entry point is, relative to this file once built (cli/dist). */
export function actorScript(actor: string): string {
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

/** One config replica (`config-1`). */
export function configChild(replica: string, natsUrl: string): ChildSpec {
  return { name: replica, command: process.execPath, args: [actorScript('config'), '--replica', replica], env: { NATS_URL: natsUrl } };
}

/** One metadata shard (`md-4`) in a process of its own. */
export function shardChild(shard: string, natsUrl: string, metricsPort?: number): ChildSpec {
  const env: Record<string, string> = { NATS_URL: natsUrl, ...(metricsPort === undefined ? {} : { STRATA_METRICS_PORT: String(metricsPort) }) };
  return { name: shard, command: process.execPath, args: [...NODE_ACTOR_FLAGS, actorScript('metadata-shard'), '--shard', shard], env };
}

/** What one storage node runs, as `strata node run` flags give it. */
export interface NodeProcesses {
  /** The node's name in the config service (`n2`); its host has the same name. */
  node: string;
  layout: Layout;
  /** The NBD listener of the node's gateway; undefined host: the gateway's default (loopback). */
  nbdHost?: string;
  nbdPort: number;
  /** The gateway's NBD TLS directory (ca-cert.pem, server-cert.pem, server-key.pem); plain NBD when undefined. */
  nbdTlsDir?: string;
  /** The NBD client certificates the HA agent's VMs connect with when the gateway requires TLS. */
  nbdTlsClientDir?: string;
  /** Serve plain NBD on a non-loopback nbdHost anyway. */
  nbdInsecure?: boolean;
  /** A metadata shard to run with the node's actors (in its node-host when colocated); none when undefined. */
  shard?: string;
  /** Where the HA agent keeps its VMs' consoles. */
  haRunDir: string;
  /** The first of the metrics ports: each process of the node gets the next one, in start order. */
  metricsPort?: number;
  natsUrl: string;
}

/** The address the HA agent's VMs reach the gateway at: loopback when it listens on every address. */
function localAddress(listen: string): string {
  return listen === '0.0.0.0' || listen === '::' ? '127.0.0.1' : listen;
}

/**
 * The supervised processes of a node: one node-host running all its actors, or with
 * the separate layout one process per actor, in start order; then its HA agent (every
 * node is also a host) and its curator, each a process of its own in both layouts.
 * Every command line names the node (`--node n2`; the metadata shard's `--shard
 * md-2`) and the node-host's names the actors it hosts, so `ps` shows who is who and
 * `pgrep -f vdisk-controller` finds the process that runs a node's controller in
 * either layout.
 */
export function nodeChildren(p: NodeProcesses): ChildSpec[] {
  const { node } = p;
  const nbdPort = String(p.nbdPort);
  // The gateway reads its NBD settings from the environment, in its own process or in the node-host.
  const env: Record<string, string> = {
    NATS_URL: p.natsUrl,
    ...(p.nbdHost === undefined ? {} : { STRATA_NBD_HOST: p.nbdHost }),
    ...(p.nbdTlsDir === undefined ? {} : { STRATA_NBD_TLS_DIR: p.nbdTlsDir }),
    ...(p.nbdInsecure === true ? { STRATA_NBD_INSECURE: 'true' } : {}),
  };
  const actors = NODE_ACTORS.filter((actor) => actor !== 'metadata-shard' || p.shard !== undefined);
  const nbdHostFlag = p.nbdHost === undefined ? [] : ['--nbd-host', localAddress(p.nbdHost)];
  const nbdTlsFlag = p.nbdTlsClientDir === undefined ? [] : ['--nbd-tls-client-dir', p.nbdTlsClientDir];
  const haAgent: ChildSpec = { name: `${node}-ha-agent`, command: process.execPath, args: [actorScript('ha-agent'), '--host', node, ...nbdHostFlag, '--nbd-port', nbdPort, ...nbdTlsFlag, '--run-dir', p.haRunDir], env };
  // The curator is off the I/O path (nothing gains from in-process dispatch), and a
  // master's copies should not share a thread with the node's I/O.
  const curator: ChildSpec = { name: `${node}-curator`, command: process.execPath, args: [actorScript('curator'), '--node', node], env };
  let io: ChildSpec[];
  if (p.layout === Layout.colocated) {
    const shardFlag = p.shard === undefined ? [] : ['--shard', p.shard];
    const args = [...NODE_ACTOR_FLAGS, actorScript('node-host'), '--node', node, ...shardFlag, '--nbd-port', nbdPort, '--actors', actors.join(',')];
    io = [{ name: `${node}-node-host`, command: process.execPath, args, env }];
  } else {
    io = actors.map((actor) => ({ name: `${node}-${actor}`, command: process.execPath, args: [...NODE_ACTOR_FLAGS, actorScript(actor), ...actorFlags(actor, p)], env }));
  }
  return withMetricsPorts([...io, haAgent, curator], p.metricsPort);
}

/** The flags of one actor's own program in the separate layout. */
function actorFlags(actor: NodeActor, p: NodeProcesses): string[] {
  if (actor === 'metadata-shard') return ['--shard', p.shard ?? ''];
  return ['--node', p.node, ...(actor === 'gateway' ? ['--nbd-port', String(p.nbdPort)] : [])];
}

/** `children` with STRATA_METRICS_PORT first, first + 1, ... in order; unchanged without a first port. */
export function withMetricsPorts(children: ChildSpec[], first: number | undefined): ChildSpec[] {
  if (first === undefined) return children;
  return children.map((c, i) => ({ ...c, env: { ...c.env, STRATA_METRICS_PORT: String(first + i) } }));
}

/** The NATS grant of a config replica's process (its user has the child's name, `config-1`). */
export function configGrants(replica: string): Record<string, Grant> {
  return { [replica]: configGrant(replica) };
}

/**
 * The NATS grant of each of nodeChildren(p)'s processes, by child name (each connects
 * as the user of that name): the node-host gets the union of the actors it hosts.
 * `scope` carries the node's id and disk ids once registered (permissions.ts).
 */
export function nodeGrants(p: NodeProcesses, scope: NodeScope): Record<string, Grant> {
  const { node } = p;
  const ioActors = NODE_ACTORS.filter((a): a is NodeActorRole => a !== 'metadata-shard');
  const grants: Record<string, Grant> = { [`${node}-ha-agent`]: haAgentGrant(scope), [`${node}-curator`]: curatorGrant(scope) };
  if (p.layout === Layout.colocated) {
    grants[`${node}-node-host`] = nodeHostGrant(scope, ioActors, p.shard);
  } else {
    for (const actor of ioActors) grants[`${node}-${actor}`] = NODE_ACTOR_GRANTS[actor](scope);
    if (p.shard !== undefined) grants[`${node}-metadata-shard`] = metadataShardGrant(p.shard);
  }
  return grants;
}
