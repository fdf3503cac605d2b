#!/usr/bin/env node
// strata: the operator's command line. Errors are one line on stderr and a non-zero
// exit code (1 for a failure reported by the cluster, 2 for a usage error).
import type { NatsConnection } from '@nats-io/transport-node';
import { Command, CommanderError } from 'commander';
import { connectBus } from '@strata/bus';
import { StrataError } from '@strata/errors';
import type { CfgObjectWithRevision, EventType, Kind, QosSpec } from '@strata/proto';
import { ConfigClient } from '@strata/config-client';
import { DEFAULT_DIR, clusterUrl } from './client';
import { eventTypes, formatEvent, formatOwner, ownerJson, readEvents, readOwner } from './ownership';
import { up } from './up';
import { UsageError, formatSize, parseCount, parseSize, table } from './units';

const program = new Command('strata')
  .description('Strata: a clustered virtual-disk storage controller')
  .option('--dir <path>', 'data directory of a local cluster (where "strata up" keeps its state)', process.env.STRATA_DIR ?? DEFAULT_DIR)
  .option('--json', 'print results as JSON')
  .showHelpAfterError()
  .exitOverride();

function globals(): { dir: string; json: boolean } {
  const o = program.opts<{ dir: string; json?: boolean }>();
  return { dir: o.dir, json: o.json ?? false };
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** JSON with 64-bit ids as decimal strings. */
function printJson(value: unknown): void {
  print(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
}

/**
 * Connects to the cluster clusterUrl() finds and runs `fn` with a config client and
 * the same NATS connection, for commands that also read buckets and streams directly.
 */
async function withCluster<T>(fn: (client: ConfigClient, nc: NatsConnection) => Promise<T>): Promise<T> {
  const url = clusterUrl(globals().dir);
  const bus = await connectBus({ name: 'strata-cli', servers: url }).catch((err: unknown) => {
    throw new Error(`cannot reach NATS at ${url} (${(err as Error).message}); is a cluster running? Start one with "strata up" or set NATS_URL`);
  });
  const client = new ConfigClient(bus, undefined, true);
  try {
    return await fn(client, bus.nc);
  } finally {
    await client.close();
  }
}

function withClient<T>(fn: (client: ConfigClient) => Promise<T>): Promise<T> {
  return withCluster((client) => fn(client));
}

async function nameOf(client: ConfigClient, kind: Kind, id: bigint | undefined): Promise<string> {
  if (id === undefined) return '-';
  return (await client.get({ kind, id }).catch(() => undefined))?.name ?? String(id);
}

function listOut<O extends CfgObjectWithRevision>(objects: O[], headers: string[], row: (o: O) => string[] | Promise<string[]>): Promise<void> {
  if (globals().json) {
    printJson(objects);
    return Promise.resolve();
  }
  return Promise.all(objects.map(async (o) => row(o))).then((rows) => print(table(headers, rows)));
}

// ---- up / status -------------------------------------------------------------------

program
  .command('up')
  .description('start a local cluster (embedded nats-server unless NATS_URL is set) in the foreground')
  .option('--nodes <n>', 'storage nodes n1..nN, each with all its actors (one process per actor unless --colocate)', '3')
  .option('--colocate', "run each node's actors in one process (node-host): no network hop between them")
  .option('--nbd-port <port>', "node 1's NBD port; node k listens on port + k - 1", '10809')
  .option('--nats <n>', 'embedded nats-servers: 1, or 3 forming one cluster', '1')
  .option('--nats-port <port>', 'port of the (first) embedded nats-server', '14222')
  .option('--config-replicas <n>', 'config service replicas (one leads)', '3')
  .option('--disk-capacity <size>', "capacity of each node's disk", '64G')
  .action(async (o: { nodes: string; colocate?: boolean; nbdPort: string; nats: string; natsPort: string; configReplicas: string; diskCapacity: string }) => {
    await up(
      {
        dir: globals().dir,
        nodes: parseCount(o.nodes, '--nodes'),
        colocate: o.colocate ?? false,
        nbdPort: parseCount(o.nbdPort, '--nbd-port'),
        natsServers: parseCount(o.nats, '--nats'),
        natsPort: parseCount(o.natsPort, '--nats-port'),
        configReplicas: parseCount(o.configReplicas, '--config-replicas'),
        diskCapacityBytes: parseSize(o.diskCapacity, '--disk-capacity'),
      },
      print,
    );
  });

program
  .command('status')
  .description('show the config leader and what the cluster holds')
  .action(() =>
    withClient(async (client) => {
      const s = await client.status();
      if (globals().json) return printJson(s);
      print(`config leader: ${s.leader} (epoch ${s.epoch})`);
      print(`nodes: ${s.nodes.alive} alive, ${s.nodes.dead} dead, ${s.nodes.unknown} unknown`);
      print(
        Object.entries(s.counts)
          .map(([k, n]) => `${k}s: ${n}`)
          .join(', '),
      );
    }),
  );

program
  .command('events')
  .description('show the last cluster events, oldest first: config changes, node liveness, leader elections, vDisk ownership moves')
  .option('--vdisk <name>', 'only events about this vDisk')
  .option('--type <type>', `only events of this type (${eventTypes.join(', ')})`)
  .option('--limit <n>', 'how many of the last events to show', '50')
  .action((o: { vdisk?: string; type?: string; limit: string }) => {
    const limit = parseCount(o.limit, '--limit');
    const type = o.type === undefined ? undefined : parseEventType(o.type);
    return withCluster(async (client, nc) => {
      const vdiskId = o.vdisk === undefined ? undefined : (await client.get({ kind: 'vdisk', name: o.vdisk })).id;
      const { events, skipped } = await readEvents(nc, { limit, filter: { vdisk: vdiskId, type } });
      if (skipped.length > 0) {
        const first = skipped[0]!;
        process.stderr.write(`strata: warning: skipped ${skipped.length} undecodable event${skipped.length === 1 ? '' : 's'} (first at sequence ${first.seq}: ${first.error})\n`);
      }
      if (globals().json) return printJson(events);
      if (events.length > 0) print(events.map(formatEvent).join('\n'));
    });
  });

function parseEventType(text: string): EventType {
  const type = eventTypes.find((t) => t === text);
  if (type === undefined) throw new UsageError(`--type: "${text}" is not an event type (${eventTypes.join(', ')})`);
  return type;
}

// ---- nodes and disks --------------------------------------------------------------

const node = program.command('node').description('storage nodes');
node
  .command('ls')
  .description('list nodes with their liveness')
  .action(() =>
    withClient(async (client) =>
      listOut(await client.list('node'), ['NAME', 'ID', 'LIVENESS', 'INCARNATION', 'SINCE'], (n) => [
        n.name,
        String(n.id),
        n.status.liveness,
        String(n.status.incarnation),
        new Date(n.status.changedAtMs).toISOString(),
      ]),
    ),
  );
node
  .command('add <name>')
  .description('register a node')
  .option('--address <address>', 'where the node runs, for people')
  .action((name: string, o: { address?: string }) =>
    withClient(async (client) => {
      const created = await client.create({ kind: 'node', name, spec: o.address === undefined ? {} : { address: o.address } });
      print(`node ${created.name} added (id ${created.id})`);
    }),
  );
node
  .command('rm <name>')
  .description('remove a node (it must have no disks)')
  .action((name: string) => withClient(async (client) => print(`node ${(await client.delete('node', name)).name} removed`)));

const disk = program.command('disk').description('disks of the nodes');
disk
  .command('add <name>')
  .description('register a disk (a directory on a node)')
  .requiredOption('--node <node>', 'node that manages the disk')
  .requiredOption('--path <path>', 'directory on that node')
  .requiredOption('--capacity <size>', 'capacity Strata may use, e.g. 100G')
  .option('--tier <tier>', 'ssd, hdd or cloud', 'ssd')
  .option('--pool <pool>', 'storage pool')
  .action((name: string, o: { node: string; path: string; capacity: string; tier: string; pool?: string }) =>
    withClient(async (client) => {
      const nodeObj = await client.get({ kind: 'node', name: o.node });
      const pool = o.pool === undefined ? undefined : (await client.get({ kind: 'pool', name: o.pool })).id;
      const created = await client.create({
        kind: 'disk',
        name,
        spec: { node: nodeObj.id, path: o.path, tier: o.tier, capacityBytes: parseSize(o.capacity, '--capacity'), ...(pool === undefined ? {} : { pool }) },
      });
      print(`disk ${created.name} added on node ${o.node} (id ${created.id})`);
    }),
  );
disk
  .command('ls')
  .description('list disks')
  .action(() =>
    withClient(async (client) =>
      listOut(await client.list('disk'), ['NAME', 'NODE', 'TIER', 'CAPACITY', 'PATH'], async (d) => {
        const s = d.spec;
        return [d.name, await nameOf(client, 'node', s.node), s.tier, formatSize(s.capacityBytes), s.path];
      }),
    ),
  );
disk
  .command('rm <name>')
  .description('remove a disk')
  .action((name: string) => withClient(async (client) => print(`disk ${(await client.delete('disk', name)).name} removed`)));

// ---- containers ----------------------------------------------------------------------

const container = program.command('container').description('containers: policy domains for vDisks');
container
  .command('create <name>')
  .description('create a container')
  .option('--rf <n>', 'replication factor', '2')
  .option('--pool <pool>', 'storage pool (default: every disk)')
  .option('--tier-order <tiers>', 'comma-separated tiers, hottest first', 'ssd,hdd')
  .option('--dedup <when>', 'off, inline or post-process', 'off')
  .option('--compression <when>', 'off, inline or post-process', 'off')
  .option('--max-capacity <size>', 'most logical data the container may hold')
  .option('--reserved-capacity <size>', 'capacity set aside for it')
  .action(
    (name: string, o: { rf: string; pool?: string; tierOrder: string; dedup: string; compression: string; maxCapacity?: string; reservedCapacity?: string }) =>
      withClient(async (client) => {
        const pool = o.pool === undefined ? undefined : (await client.get({ kind: 'pool', name: o.pool })).id;
        const created = await client.create({
          kind: 'container',
          name,
          spec: {
            replicationFactor: parseCount(o.rf, '--rf'),
            tierOrder: o.tierOrder.split(',').map((t) => t.trim()),
            dedup: o.dedup,
            compression: o.compression,
            ...(pool === undefined ? {} : { pool }),
            ...(o.maxCapacity === undefined ? {} : { maxCapacityBytes: parseSize(o.maxCapacity, '--max-capacity') }),
            ...(o.reservedCapacity === undefined ? {} : { reservedCapacityBytes: parseSize(o.reservedCapacity, '--reserved-capacity') }),
          },
        });
        print(`container ${created.name} created (id ${created.id}, RF ${created.kind === 'container' ? created.spec.replicationFactor : '?'})`);
      }),
  );
container
  .command('ls')
  .description('list containers')
  .action(() =>
    withClient(async (client) =>
      listOut(await client.list('container'), ['NAME', 'ID', 'RF', 'TIERS', 'DEDUP', 'COMPRESSION', 'MAX'], (c) => {
        const s = c.spec;
        return [c.name, String(c.id), String(s.replicationFactor), s.tierOrder.join(','), s.dedup, s.compression, s.maxCapacityBytes === undefined ? '-' : formatSize(s.maxCapacityBytes)];
      }),
    ),
  );
container
  .command('rm <name>')
  .description('delete a container (it must hold no vDisks)')
  .action((name: string) => withClient(async (client) => print(`container ${(await client.delete('container', name)).name} deleted`)));

// ---- vDisks ------------------------------------------------------------------------------

const vdisk = program.command('vdisk').description('virtual disks');
vdisk
  .command('create <name>')
  .description('create a vDisk')
  .requiredOption('--size <size>', 'size, e.g. 10G (a multiple of 512 bytes)')
  .option('--container <name>', 'container', 'default')
  .option('--shared', 'many hosts may do I/O at once')
  .option('--block-size <size>', 'vDisk block size, 4K to 1M', '1M')
  .option('--priority <class>', 'QoS class: high, normal or low', 'normal')
  .option('--weight <n>', 'fair-share weight within the class', '1')
  .option('--iops-cap <n>', 'at most this many operations a second')
  .option('--bandwidth-cap <size>', 'at most this many bytes a second, e.g. 100M')
  .option('--burst-ms <ms>', 'how far a capped vDisk may run ahead of its cap (default 1000)')
  .option('--reserved-iops <n>', 'operations a second served before other vDisks while this one has work')
  .action((name: string, o: { size: string; container: string; shared?: boolean; blockSize: string } & QosOptions) =>
    withClient(async (client) => {
      const spec = {
        sizeBytes: parseSize(o.size, '--size'),
        blockSizeBytes: parseSize(o.blockSize, '--block-size'),
        shared: o.shared ?? false,
        qos: qosFromOptions({}, o),
      };
      const containerObj = await client.get({ kind: 'container', name: o.container }).catch((err: unknown) => {
        if (err instanceof StrataError && err.code === 'NOT_FOUND' && o.container === 'default') {
          throw new UsageError('no container named "default"; create one (strata container create default) or pass --container');
        }
        throw err;
      });
      const created = await client.create({ kind: 'vdisk', name, spec: { ...spec, container: containerObj.id } });
      print(`vdisk ${created.name} created (id ${created.id}, ${formatSize(spec.sizeBytes)} in container ${containerObj.name})`);
    }),
  );
vdisk
  .command('ls')
  .description('list vDisks')
  .action(() =>
    withClient(async (client) =>
      listOut(await client.list('vdisk'), ['NAME', 'ID', 'SIZE', 'CONTAINER', 'BLOCK', 'SHARED', 'QOS'], async (v) => {
        const s = v.spec;
        return [v.name, String(v.id), formatSize(s.sizeBytes), await nameOf(client, 'container', s.container), formatSize(s.blockSizeBytes), s.shared ? 'yes' : 'no', formatQos(s.qos)];
      }),
    ),
  );
vdisk
  .command('qos <name>')
  .description("show a vDisk's QoS, or change it (applies to the next request); 'none' removes a cap or reservation")
  .option('--priority <class>', 'QoS class: high, normal or low')
  .option('--weight <n>', 'fair-share weight within the class')
  .option('--iops-cap <n>', 'at most this many operations a second, or none')
  .option('--bandwidth-cap <size>', 'at most this many bytes a second (e.g. 100M), or none')
  .option('--burst-ms <ms>', 'how far a capped vDisk may run ahead of its cap, or none (1000)')
  .option('--reserved-iops <n>', 'operations a second served first while this vDisk has work, or none')
  .action((name: string, o: QosOptions) =>
    withClient(async (client) => {
      const current = await client.get({ kind: 'vdisk', name });
      if (current.kind !== 'vdisk') throw new Error(`config returned a ${current.kind} for vdisk ${name}`);
      const changes = Object.values(o).some((v) => v !== undefined);
      if (!changes) {
        if (globals().json) printJson(current.spec.qos);
        else print(`vdisk ${name}: ${formatQos(current.spec.qos)}`);
        return;
      }
      // Compare-and-set on the revision read: a concurrent change is a CONFLICT, not lost.
      const qos = qosFromOptions(current.spec.qos, o);
      const updated = await client.update({ kind: 'vdisk', name, spec: { ...current.spec, qos }, revision: current.revision });
      if (updated.kind !== 'vdisk') throw new Error(`config returned a ${updated.kind} for vdisk ${name}`);
      print(`vdisk ${name}: ${formatQos(updated.spec.qos)}`);
    }),
  );
vdisk
  .command('owner <name>')
  .description('show the node that serves the vDisk, its ownership epoch and volunteers, and any failover in progress')
  .action((name: string) =>
    withCluster(async (client, nc) => {
      const v = await client.get({ kind: 'vdisk', name });
      const state = await readOwner(nc, v.id);
      if (globals().json) return printJson(ownerJson(v.name, v.id, state));
      print(formatOwner(state).join('\n'));
    }),
  );
vdisk
  .command('rm <name>')
  .description('delete a vDisk')
  .action((name: string) => withClient(async (client) => print(`vdisk ${(await client.delete('vdisk', name)).name} deleted`)));

// ---- run ------------------------------------------------------------------------------------

interface QosOptions {
  priority?: string;
  weight?: string;
  iopsCap?: string;
  bandwidthCap?: string;
  burstMs?: string;
  reservedIops?: string;
}

/** `base` with the options given applied; 'none' removes an optional setting. The config service checks the result. */
function qosFromOptions(base: Record<string, unknown>, o: QosOptions): Record<string, unknown> {
  const qos: Record<string, unknown> = { ...base };
  const set = (key: string, text: string | undefined, parse: (t: string) => number): void => {
    if (text === undefined) return;
    if (text === 'none') delete qos[key];
    else qos[key] = parse(text);
  };
  if (o.priority !== undefined) qos.priority = o.priority;
  if (o.weight !== undefined) qos.weight = parseCount(o.weight, '--weight');
  set('iopsCap', o.iopsCap, (t) => parseCount(t, '--iops-cap'));
  set('bandwidthCapBytesPerSec', o.bandwidthCap, (t) => parseSize(t, '--bandwidth-cap'));
  set('burstMs', o.burstMs, (t) => parseCount(t, '--burst-ms'));
  set('reservedIops', o.reservedIops, (t) => parseCount(t, '--reserved-iops'));
  return qos;
}

/** `high/3`, then caps and reservation when set: `normal/1 cap 500 iops reserve 200 iops`. */
function formatQos(q: QosSpec): string {
  const parts = [`${q.priority}/${q.weight}`];
  if (q.iopsCap !== undefined) parts.push(`cap ${q.iopsCap} iops`);
  if (q.bandwidthCapBytesPerSec !== undefined) parts.push(`cap ${formatSize(q.bandwidthCapBytesPerSec)}/s`);
  if (q.burstMs !== undefined) parts.push(`burst ${q.burstMs} ms`);
  if (q.reservedIops !== undefined) parts.push(`reserve ${q.reservedIops} iops`);
  return parts.join(' ');
}

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed the usage message already; help and version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`strata: ${err.message}\n`);
      process.exit(2);
    }
    const text = err instanceof StrataError ? err.toString() : ((err as Error)?.message ?? String(err));
    process.stderr.write(`strata: ${text}\n`);
    process.exit(1);
  }
  process.exit(0);
}

void main();
