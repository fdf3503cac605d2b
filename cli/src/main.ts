#!/usr/bin/env node
// strata: the operator's command line. Errors are one line on stderr and a non-zero
// exit code: 1 when the cluster refused or could not be reached (no command ever
// exits 0 without an answer from it), 2 for a usage error, which names the command
// and the flag or argument (`strata: vdisk create: missing NAME`). Every value is
// checked before anything is sent, and options for features that are not built are
// refused rather than stored and ignored.
import type { NatsConnection } from '@nats-io/transport-node';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { connectBus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { ConfigClient } from '@strata/config-client';
import type { Bus } from '@strata/bus';
import { openBucket } from '@strata/kv';
import { Priority, Tier, buckets, containerSpec, diskSpec, gatewayAttachments, hostSpec, keys, objectName, qosSpec, vdiskSpec, type CfgObjectWithRevision, type EventType, type Kind, type ObjectOf, type QosSpec } from '@strata/proto';
import { describeSwept, markDeleting, sweepDeleted, sweepPortsFor } from '@strata/sweep';
import { registerConsoleCommand } from './console/command';
import { DEFAULT_DIR, checkStrataCluster, checkoutDir, cliSecurity, findCluster, unreachable, withUrl } from './client';
import { diskRmRefusal, holdingsOf, readEgroupEntries } from './disk-rm';
import { disksOfNode, drainRefusal, markDraining, nodeHostRefusal, nodeRmRefusal, waitDrained } from './drain';
import { authInit } from './auth-init';
import { registerHaCommands } from './ha-commands';
import { eventTypes, formatEvent, formatOwner, ownerJson, readEvents, readOwner } from './ownership';
import { registerRunCommands } from './run-commands';
import { formatSpace, readSpace, spaceThresholdsFrom } from './space';
import { makeClone, takeSnapshot } from './snapshot';
import { snapshotPortsFor } from './snapshot-bus';
import { tracingUrlOf } from './tracing';
import { LAYOUT_SPEEDUP, Layout, up } from './up';
import { UsageError, checkValue, formatSize, parseChoice, parseCount, parseSize, table } from './units';
import { creatingTimeoutFrom } from './sweep-env';
import { describeResize, resizeRefusal } from './resize';

/** Where a run writes, and what it sees of its environment (a test passes its own). */
export interface RunContext {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
  cwd: string;
  /** The checkout searched last for `.strata/nats.url`; undefined: none. */
  checkout: string | undefined;
}

/** A usage error raised by commander or by an action, with the command it is about. */
class CommandUsageError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
  }
}

/** `vdisk create` for that command, '' for the program itself. */
function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent != null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

const quoted = (message: string): string | undefined => /'([^']+)'/.exec(message)?.[1];

/** Commander's error, as one line that names the argument or flag. */
function usageOf(cmd: Command, err: CommanderError): string {
  const subcommands = cmd.commands.map((c) => c.name()).filter((n) => n !== 'help');
  const longFlag = (flags: string | undefined): string => flags?.split(/[ ,]+/).find((f) => f.startsWith('--')) ?? flags ?? '?';
  switch (err.code) {
    case 'commander.missingArgument': {
      const missing = cmd.registeredArguments.find((a, i) => a.required && cmd.args[i] === undefined)?.name() ?? quoted(err.message) ?? 'argument';
      return `missing ${missing.toUpperCase()}`;
    }
    case 'commander.optionMissingArgument':
      return `${longFlag(quoted(err.message))}: missing value`;
    case 'commander.missingMandatoryOptionValue':
      return `missing ${quoted(err.message) ?? 'a required option'}`;
    case 'commander.unknownOption': {
      const suggestion = /\(Did you mean (\S+)\?\)/.exec(err.message)?.[1];
      return `unknown option ${quoted(err.message) ?? ''}${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}`;
    }
    case 'commander.excessArguments': {
      const extra = cmd.args.slice(cmd.registeredArguments.length);
      const takes = cmd.registeredArguments.map((a) => a.name().toUpperCase()).join(' ');
      return `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => `"${a}"`).join(' ')} (it takes ${takes === '' ? 'none' : takes})`;
    }
    case 'commander.unknownCommand':
      return `unknown command "${quoted(err.message) ?? ''}" (commands: ${subcommands.join(', ')})`;
    case 'commander.help':
      // A command of commands run without one.
      return `missing command (${subcommands.join(', ')}); "strata ${pathOf(cmd)}${pathOf(cmd) === '' ? '' : ' '}--help" says more`;
    default:
      return err.message.replace(/^error: /, '').split('\n')[0] ?? err.message;
  }
}

/** Every command of the tree under `cmd`, itself included. */
function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** Maps each QoS field to the flag that sets it, for errors found in a whole QoS spec. */
const qosFlags: Record<string, string> = {
  priority: '--priority',
  weight: '--weight',
  iopsCap: '--iops-cap',
  bandwidthCapBytesPerSec: '--bandwidth-cap',
  burstMs: '--burst-ms',
  reservedIops: '--reserved-iops',
};

interface QosOptions {
  priority?: string;
  weight?: string;
  iopsCap?: string;
  bandwidthCap?: string;
  burstMs?: string;
  reservedIops?: string;
}

/** The QoS changes the options ask for, each value checked alone: `null` removes an optional setting ('none'). */
type QosChanges = Record<string, { value: unknown; text: string }>;

function qosChanges(o: QosOptions): QosChanges {
  const changes: QosChanges = {};
  const set = (key: keyof typeof qosFlags & keyof typeof qosSpec.shape, text: string | undefined, parse: (t: string, flag: string) => unknown): void => {
    if (text === undefined) return;
    const flag = qosFlags[key]!;
    changes[key] = { text, value: text === 'none' && key !== 'priority' && key !== 'weight' ? null : checkValue(qosSpec.shape[key], parse(text, flag), flag, text) };
  };
  set('priority', o.priority, (t, flag) => parseChoice(t, Object.values(Priority), flag));
  set('weight', o.weight, (t, flag) => parseCount(t, flag));
  set('iopsCap', o.iopsCap, (t, flag) => parseCount(t, flag));
  set('bandwidthCapBytesPerSec', o.bandwidthCap, (t, flag) => parseSize(t, flag));
  set('burstMs', o.burstMs, (t, flag) => parseCount(t, flag));
  set('reservedIops', o.reservedIops, (t, flag) => parseCount(t, flag));
  return changes;
}

/**
 * `base` with `changes` applied, checked as a whole against the QoS rule the config
 * service applies (a reservation above the cap, a burst without a cap): a usage
 * error naming the flag.
 */
function applyQos(base: Record<string, unknown>, changes: QosChanges): QosSpec {
  const qos: Record<string, unknown> = { ...base };
  for (const [key, { value }] of Object.entries(changes)) {
    if (value === null) delete qos[key];
    else qos[key] = value;
  }
  const checked = qosSpec.safeParse(qos);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    const text = changes[key]?.text;
    throw new UsageError(`${qosFlags[key] ?? 'QoS'}${text === undefined ? '' : ` "${text}"`}: ${issue?.message ?? 'is not valid'}`);
  }
  return checked.data;
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

/**
 * A required flag's value. Checked in the action rather than by commander, which
 * checks required flags before arguments and so answered a missing NAME with the
 * flags it lacked.
 */
function required(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`missing ${flag}`);
  return value;
}

/** The vDisk the config service returned for a vDisk query. */
/** Deleting: marked by `vdisk rm`, freed and removed by the next sweep; creating: a snapshot or clone not committed yet. */
function vdiskState(v: ObjectOf<'vdisk'>): string {
  if (v.spec.deletingSinceMs !== undefined) return 'deleting';
  return v.spec.creatingSinceMs === undefined ? 'ok' : 'creating';
}

function asVdisk(o: CfgObjectWithRevision): ObjectOf<'vdisk'> {
  if (o.kind !== 'vdisk') throw new Error(`config returned a ${o.kind} for a vdisk`);
  return o;
}

/** An object name as the config service requires it, or a usage error naming the argument. */
function checkName(name: string, what = 'NAME'): string {
  return checkValue(objectName, name, what, name);
}

/**
 * Container and vDisk settings that the config service stores but nothing in Strata
 * honours yet: each refused (exit 2) with what happens instead, so nobody believes a
 * container deduplicates because its record says so. `off` for dedup and compression
 * states what happens anyway and is accepted.
 */
const NOT_BUILT: Record<string, { flag: string; instead: string; allowed?: string }> = {
  dedup: { flag: '--dedup', instead: 'containers store data without dedup', allowed: 'off' },
  compression: { flag: '--compression', instead: 'containers store data uncompressed', allowed: 'off' },
  pool: { flag: '--pool', instead: "a container's extent groups go to the disks of every node, whatever their pool" },
  maxCapacity: { flag: '--max-capacity', instead: 'nothing limits how much data a container holds' },
  reservedCapacity: { flag: '--reserved-capacity', instead: 'no capacity is set aside for a container' },
};

function refuseNotBuilt(o: Record<string, unknown>): void {
  for (const [key, { flag, instead, allowed }] of Object.entries(NOT_BUILT)) {
    const value = o[key];
    if (value !== undefined && value !== allowed) throw new UsageError(`${flag} is not built yet; ${instead}`);
  }
}

/** The process layout `strata up` flags ask for: colocated unless --separate (--colocate names the default). */
function layoutOf(o: { separate?: boolean; colocate?: boolean }): Layout {
  if (o.separate === true && o.colocate === true) throw new UsageError('--separate and --colocate ask for different layouts; pass one');
  return o.separate === true ? Layout.separate : Layout.colocated;
}

/** Builds the command tree for one run, and says which command's action runs (for its usage errors). */
function buildProgram(ctx: RunContext): { program: Command; running: () => Command } {
  const program = new Command('strata')
    .description('Strata: a clustered virtual-disk storage controller')
    .option('--dir <path>', 'data directory of a local cluster: "strata up" keeps its state there, other commands find the cluster through its nats.url (default: .strata here or in a parent directory, then in the checkout)')
    .option('--json', 'print results as JSON')
    // Commander's own messages (and the help it prints after them) become one line in run().
    .configureOutput({ writeOut: (s) => ctx.out(s), writeErr: () => undefined, outputError: () => undefined });

  const globals = (): { dir: string | undefined; json: boolean } => {
    const o = program.opts<{ dir?: string; json?: boolean }>();
    return { dir: o.dir, json: o.json ?? false };
  };
  const print = (text: string): void => ctx.out(text.endsWith('\n') ? text : `${text}\n`);
  /** JSON with 64-bit ids as decimal strings. */
  const printJson = (value: unknown): void => print(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));

  /**
   * Finds the cluster, connects, checks it is a Strata cluster, and runs `fn` with a
   * config client and the same NATS connection (for commands that also read buckets
   * and streams). Every failure to get an answer names the URL.
   */
  const withCluster = async <T>(fn: (client: ConfigClient, nc: NatsConnection, bus: Bus) => Promise<T>): Promise<T> => {
    const stratDir = ctx.env.STRATA_DIR === '' ? undefined : ctx.env.STRATA_DIR;
    const where = findCluster({ natsUrl: ctx.env.NATS_URL, dir: globals().dir ?? stratDir, cwd: ctx.cwd, checkout: ctx.checkout });
    const bus = await connectBus({ name: 'strata-cli', servers: where.url, ...cliSecurity(where, ctx.env) }).catch((err: unknown) => {
      throw unreachable(where, err);
    });
    const client = new ConfigClient(bus, undefined, true);
    try {
      await checkStrataCluster(bus.nc, where.url);
      return await fn(client, bus.nc, bus);
    } catch (err) {
      throw withUrl(err, where.url);
    } finally {
      await client.close();
    }
  };
  const withClient = <T>(fn: (client: ConfigClient) => Promise<T>): Promise<T> => withCluster((client) => fn(client));

  const nameOf = async (client: ConfigClient, kind: Kind, id: bigint | undefined): Promise<string> => {
    if (id === undefined) return '-';
    return (await client.get({ kind, id }).catch(() => undefined))?.name ?? String(id);
  };

  /** A vDisk's kind (vdisk, snapshot, clone) and parent (the source of a snapshot, the snapshot of a clone). */
  const lineage = async (client: ConfigClient, v: ObjectOf<'vdisk'>): Promise<[string, string]> => {
    if (v.spec.snapshotOf !== undefined) return ['snapshot', await nameOf(client, 'vdisk', v.spec.snapshotOf)];
    if (v.spec.cloneOf !== undefined) return ['clone', await nameOf(client, 'vdisk', v.spec.cloneOf)];
    return ['vdisk', '-'];
  };

  const listOut = async <O extends CfgObjectWithRevision>(objects: O[], headers: string[], row: (o: O) => string[] | Promise<string[]>): Promise<void> => {
    if (globals().json) return printJson(objects);
    print(table(headers, await Promise.all(objects.map(async (o) => row(o)))));
  };

  // ---- up / status / events ------------------------------------------------------------

  program
    .command('up')
    .description('start a local cluster (embedded nats-server unless NATS_URL is set) in the foreground')
    .option('--nodes <n>', 'storage nodes n1..nN, each with all its actors (one node-host process per node unless --separate)', '3')
    .option('--separate', `run each actor in its own process, every request between them over NATS (the default, one process per node, served ${LAYOUT_SPEEDUP} the IOPS in npm run bench)`)
    .option('--colocate', "run each node's actors in one process (node-host): the default, accepted for compatibility")
    .option('--nbd-port <port>', "node 1's NBD port; node k listens on port + k - 1", '10809')
    .option('--nats <n>', 'embedded nats-servers: 1, or 3 forming one cluster', '1')
    .option('--nats-port <port>', 'port of the (first) embedded nats-server', '14222')
    .option('--config-replicas <n>', 'config service replicas (one leads)', '3')
    .option('--disk-capacity <size>', "capacity of each node's disk", '64G')
    .option('--host-cpus <n>', 'CPUs each node offers to VMs as a host', '4')
    .option('--host-memory <size>', 'memory each node offers to VMs as a host', '4G')
    .option('--tracing [url]', 'send every process\'s spans to a Zipkin server (default http://127.0.0.1:9411, the one npm run tracing starts)')
    .option('--metrics-port <port>', 'the first metrics port: every process gets the next one, in start order (default: the first free run from 9464); the targets are written to metrics-targets.json in the data directory')
    .option('--insecure', 'plain, anonymous NATS connections on the embedded servers (default: TLS, and a user per process with its role\'s permissions)')
    .action(async (o: { insecure?: boolean; nodes: string; separate?: boolean; colocate?: boolean; nbdPort: string; nats: string; natsPort: string; configReplicas: string; diskCapacity: string; hostCpus: string; hostMemory: string; metricsPort?: string; tracing?: string | boolean }) => {
      const options = {
        dir: globals().dir ?? (ctx.env.STRATA_DIR === '' ? undefined : ctx.env.STRATA_DIR) ?? DEFAULT_DIR,
        nodes: parseCount(o.nodes, '--nodes'),
        layout: layoutOf(o),
        nbdPort: parseCount(o.nbdPort, '--nbd-port', 1),
        natsServers: parseCount(o.nats, '--nats', 1),
        natsPort: parseCount(o.natsPort, '--nats-port', 1),
        configReplicas: parseCount(o.configReplicas, '--config-replicas', 1),
        diskCapacityBytes: checkValue(diskSpec.shape.capacityBytes, parseSize(o.diskCapacity, '--disk-capacity'), '--disk-capacity', o.diskCapacity),
        hostCpuCount: checkValue(hostSpec.shape.cpuCount, parseCount(o.hostCpus, '--host-cpus', 1), '--host-cpus', o.hostCpus),
        hostMemoryBytes: checkValue(hostSpec.shape.memoryBytes, parseSize(o.hostMemory, '--host-memory'), '--host-memory', o.hostMemory),
        ...(o.metricsPort === undefined ? {} : { metricsPort: parseCount(o.metricsPort, '--metrics-port', 1) }),
        ...(o.tracing === undefined ? {} : { tracingUrl: tracingUrlOf(o.tracing) }),
        insecure: o.insecure === true,
      };
      await up(options, print);
    });

  const names = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  program
    .command('auth')
    .description('credentials for a cluster run host by host')
    .command('init')
    .description('write a CA and server certificate, a password per NATS user, the servers\' users block (users.conf), an env file per user, and the NBD TLS directories nbd-server/ (for gateways) and nbd-client/ (for QEMU and libnbd clients), into --out (existing ones are kept)')
    .requiredOption('--out <dir>', 'the directory to write (e.g. /etc/strata/auth)')
    .option('--nodes <names>', 'the storage nodes, comma-separated, each as NODE or NODE:SHARD when it runs a metadata shard (n1:md-1,n2:md-2)', '')
    .option('--config <names>', 'the config replicas, comma-separated (config-1,config-2,config-3)', '')
    .option('--shards <names>', 'metadata shards run on their own (strata shard run), comma-separated', '')
    .option('--server-names <names>', "names and addresses of the NATS servers, for their certificate (strata-1,strata-2,10.0.0.1)", '')
    .option('--nbd-address <names>', "names and addresses the gateways listen on (--nbd-host), for the NBD server certificate in nbd-server/ (10.0.0.1,10.0.0.2); localhost and 127.0.0.1 are always in it", '')
    .action((o: { out: string; nodes: string; config: string; shards: string; serverNames: string; nbdAddress: string }) => {
      for (const line of authInit({ out: resolve(ctx.cwd, o.out), nodes: names(o.nodes), configReplicas: names(o.config), shards: names(o.shards), serverNames: names(o.serverNames), nbdAddresses: names(o.nbdAddress) })) print(line);
    });

  program
    .command('status')
    .description("show the config leader, what the cluster holds, and each disk's and container's space (used, capacity, warning or full)")
    .action(() =>
      withCluster(async (client, nc) => {
        const s = await client.status();
        const space = await readSpace(client, nc, spaceThresholdsFrom(ctx.env));
        if (globals().json) return printJson({ ...s, space });
        print(`config leader: ${s.leader} (epoch ${s.epoch})`);
        print(`nodes: ${s.nodes.alive} alive, ${s.nodes.dead} dead, ${s.nodes.unknown} unknown`);
        print(
          Object.entries(s.counts)
            .map(([k, n]) => `${k}s: ${n}`)
            .join(', '),
        );
        print(formatSpace(space).join('\n'));
      }),
    );

  program
    .command('events')
    .description('show the last cluster events, oldest first: config changes, node liveness, leader elections, vDisk ownership moves')
    .option('--vdisk <name>', 'only events about this vDisk')
    .option('--type <type>', `only events of this type (${eventTypes.join(', ')})`)
    .option('--limit <n>', 'how many of the last events to show', '50')
    .action((o: { vdisk?: string; type?: string; limit: string }) => {
      const limit = parseCount(o.limit, '--limit', 1);
      const type: EventType | undefined = o.type === undefined ? undefined : parseChoice(o.type, eventTypes, '--type');
      return withCluster(async (client, nc) => {
        // The events are in JetStream, readable while no config replica runs; the
        // events are printed then, but the command fails: nobody answered for the cluster.
        const answered = client.status().then(
          () => undefined,
          (err: unknown) => err,
        );
        const vdiskId = o.vdisk === undefined ? undefined : (await client.get({ kind: 'vdisk', name: o.vdisk })).id;
        const { events, skipped } = await readEvents(nc, { limit, filter: { vdisk: vdiskId, type } });
        if (skipped.length > 0) {
          const first = skipped[0]!;
          ctx.err(`strata: warning: skipped ${skipped.length} undecodable event${skipped.length === 1 ? '' : 's'} (first at sequence ${first.seq}: ${first.error})\n`);
        }
        if (globals().json) printJson(events);
        else if (events.length > 0) print(events.map(formatEvent).join('\n'));
        const failed = await answered;
        if (failed !== undefined) throw failed;
      });
    });

  // ---- nodes and disks -------------------------------------------------------------------

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
    .action((name: string, o: { address?: string }) => {
      checkName(name);
      return withClient(async (client) => {
        const created = await client.create({ kind: 'node', name, spec: o.address === undefined ? {} : { address: o.address } });
        print(`node ${created.name} added (id ${created.id})`);
      });
    });
  node
    .command('drain <name>')
    .description('move every replica off a node (the curator copies each to another node, then drops it); new extent groups go elsewhere')
    .option('--wait', 'wait until it holds no replica, printing progress')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the drain goes on)', '3600')
    .option('--cancel', 'stop draining it (replicas already moved stay where they are)')
    .action((name: string, o: { wait?: boolean; timeout: string; cancel?: boolean }) => {
      const timeoutMs = parseCount(o.timeout, '--timeout', 1) * 1000;
      return withCluster(async (client, nc, bus) => {
        const target = await client.get({ kind: 'node', name });
        if (o.cancel === true) {
          const changed = await markDraining(client, 'node', name, false, Date.now());
          return print(changed ? `node ${name} is no longer draining` : `node ${name} was not draining`);
        }
        const [nodes, disks, containers] = await Promise.all([client.list('node'), client.list('disk'), client.list('container')]);
        const mine = disksOfNode(disks, target.id);
        const refusal = drainRefusal(`node ${name}`, mine, disks, nodes, containers);
        if (refusal !== undefined) throw refusal;
        const changed = await markDraining(client, 'node', name, true, Date.now());
        print(changed ? `node ${name} is draining: the curator moves its replicas to other nodes` : `node ${name} is draining already`);
        if (o.wait === true) await waitDrained({ bus, nc, print }, `node ${name}`, mine, timeoutMs);
      });
    });
  node
    .command('rm <name>')
    .description('remove a node and its disks (a host on the same machine keeps running, without a storage node); refused while its disks hold replicas (drain it first), unless --force, and while VMs are defined on its host')
    .option('--force', 'remove it even though its disks hold replicas')
    .action((name: string, o: { force?: boolean }) =>
      withCluster(async (client, nc) => {
        const target = await client.get({ kind: 'node', name });
        const [allDisks, hosts, vms] = await Promise.all([client.list('disk'), client.list('host'), client.list('vm')]);
        const disks = allDisks.filter((d) => d.spec.node === target.id);
        const served = hosts.filter((h) => h.spec.node === target.id);
        // Every check before any change: a refusal leaves everything as it was.
        const hostRefusal = nodeHostRefusal(name, served, vms);
        if (hostRefusal !== undefined) throw hostRefusal;
        const held = holdingsOf(await readEgroupEntries(nc), new Set(disks.map((d) => d.id)));
        const refusal = nodeRmRefusal(name, held);
        if (refusal !== undefined && o.force !== true) throw refusal;
        for (const h of served) {
          const { node: _node, ...spec } = h.spec;
          await client.update({ kind: 'host', name: h.name, spec, revision: h.revision });
        }
        for (const d of disks) await client.delete('disk', d.name);
        await client.delete('node', name);
        const with_ = disks.length === 0 ? '' : ` with its disk${disks.length === 1 ? '' : 's'} ${disks.map((d) => d.name).join(', ')}`;
        const hostsNote = served.length === 0 ? '' : `; host ${served.map((h) => h.name).join(', ')} no longer has a storage node`;
        print(`node ${name} removed${with_}${hostsNote}${refusal === undefined ? '' : ` (forced: the curator copies its replicas of ${held.egroups} extent groups from the others)`}`);
      }),
    );

  const disk = program.command('disk').description('disks of the nodes');
  disk
    .command('add <name>')
    .description('register a disk (a directory on a node)')
    .option('--node <node>', 'node that manages the disk (required)')
    .option('--path <path>', 'directory on that node (required; absolute: the node resolves it, not the CLI)')
    .option('--capacity <size>', 'capacity Strata may use, e.g. 100G (required)')
    .option('--tier <tier>', 'ssd, hdd or cloud', 'ssd')
    .option('--pool <pool>', 'storage pool')
    .action((name: string, given: { node?: string; path?: string; capacity?: string; tier: string; pool?: string }) => {
      checkName(name);
      const o = { ...given, node: required(given.node, '--node'), path: required(given.path, '--path'), capacity: required(given.capacity, '--capacity') };
      const capacityBytes = checkValue(diskSpec.shape.capacityBytes, parseSize(o.capacity, '--capacity'), '--capacity', o.capacity);
      const tier = parseChoice(o.tier, Object.values(Tier), '--tier');
      checkValue(diskSpec.shape.path, o.path, '--path', o.path);
      return withClient(async (client) => {
        const nodeObj = await client.get({ kind: 'node', name: o.node });
        const pool = o.pool === undefined ? undefined : (await client.get({ kind: 'pool', name: o.pool })).id;
        const created = await client.create({
          kind: 'disk',
          name,
          spec: { node: nodeObj.id, path: o.path, tier, capacityBytes, ...(pool === undefined ? {} : { pool }) },
        });
        print(`disk ${created.name} added on node ${o.node} (id ${created.id})`);
      });
    });
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
    .command('drain <name>')
    .description('move every replica off a disk (the curator copies each to another disk, then drops it); new extent groups go elsewhere')
    .option('--wait', 'wait until it holds no replica, printing progress')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the drain goes on)', '3600')
    .option('--cancel', 'stop draining it (replicas already moved stay where they are)')
    .action((name: string, o: { wait?: boolean; timeout: string; cancel?: boolean }) => {
      const timeoutMs = parseCount(o.timeout, '--timeout', 1) * 1000;
      return withCluster(async (client, nc, bus) => {
        const target = await client.get({ kind: 'disk', name });
        if (o.cancel === true) {
          const changed = await markDraining(client, 'disk', name, false, Date.now());
          return print(changed ? `disk ${name} is no longer draining` : `disk ${name} was not draining`);
        }
        await startDiskDrain(client, name, target.id);
        if (o.wait === true) await waitDrained({ bus, nc, print }, `disk ${name}`, new Set([target.id]), timeoutMs);
      });
    });
  const startDiskDrain = async (client: ConfigClient, name: string, id: bigint): Promise<void> => {
    const [nodes, disks, containers] = await Promise.all([client.list('node'), client.list('disk'), client.list('container')]);
    const refusal = drainRefusal(`disk ${name}`, new Set([id]), disks, nodes, containers);
    if (refusal !== undefined) throw refusal;
    const changed = await markDraining(client, 'disk', name, true, Date.now());
    print(changed ? `disk ${name} is draining: the curator moves its replicas to other disks` : `disk ${name} is draining already`);
  };
  disk
    .command('rm <name>')
    .description('remove a disk; while it holds replicas, refused unless --wait (drain it through the curator, then remove it) or --force (remove it now: the curator then copies them from the others)')
    .option('--wait', 'drain it first: the curator moves its replicas to other disks, progress is printed, then it is removed')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the drain goes on)', '3600')
    .option('--force', 'remove it even though it holds replicas')
    .action((name: string, o: { force?: boolean; wait?: boolean; timeout: string }) => {
      const timeoutMs = parseCount(o.timeout, '--timeout', 1) * 1000;
      return withCluster(async (client, nc, bus) => {
        const target = await client.get({ kind: 'disk', name });
        let held = holdingsOf(await readEgroupEntries(nc), target.id);
        if (held.egroups > 0 && o.wait === true && o.force !== true) {
          await startDiskDrain(client, name, target.id);
          await waitDrained({ bus, nc, print }, `disk ${name}`, new Set([target.id]), timeoutMs);
          held = holdingsOf(await readEgroupEntries(nc), target.id);
        }
        const refusal = diskRmRefusal(name, held);
        if (refusal !== undefined && o.force !== true) throw refusal;
        await client.delete('disk', name);
        print(`disk ${name} removed${refusal === undefined ? '' : ` (forced: the curator copies its replicas of ${held.egroups} extent groups from the others)`}`);
      });
    });

  // ---- containers --------------------------------------------------------------------------

  const container = program.command('container').description('containers: policy domains for vDisks');
  container
    .command('create <name>')
    .description('create a container')
    .option('--rf <n>', 'replication factor: copies of each extent group, on distinct nodes', '2')
    .option('--tier-order <tiers>', 'comma-separated tiers, hottest first', 'ssd,hdd')
    // Stored by the config service but honoured by nothing yet: refused (refuseNotBuilt).
    .addOption(new Option('--dedup <when>').hideHelp())
    .addOption(new Option('--compression <when>').hideHelp())
    .addOption(new Option('--pool <pool>').hideHelp())
    .addOption(new Option('--max-capacity <size>').hideHelp())
    .addOption(new Option('--reserved-capacity <size>').hideHelp())
    .action((name: string, o: { rf: string; tierOrder: string } & Record<string, unknown>) => {
      checkName(name);
      refuseNotBuilt(o);
      const replicationFactor = checkValue(containerSpec.shape.replicationFactor, parseCount(o.rf, '--rf'), '--rf', o.rf);
      const tiers = o.tierOrder.split(',').map((t) => t.trim());
      for (const t of tiers) parseChoice(t, Object.values(Tier), '--tier-order');
      const tierOrder = checkValue(containerSpec.shape.tierOrder, tiers, '--tier-order', o.tierOrder);
      return withClient(async (client) => {
        const created = await client.create({ kind: 'container', name, spec: { replicationFactor, tierOrder } });
        print(`container ${created.name} created (id ${created.id}, RF ${created.kind === 'container' ? created.spec.replicationFactor : '?'})`);
      });
    });
  container
    .command('ls')
    .description('list containers')
    .action(() =>
      withClient(async (client) =>
        listOut(await client.list('container'), ['NAME', 'ID', 'RF', 'TIERS'], (c) => [c.name, String(c.id), String(c.spec.replicationFactor), c.spec.tierOrder.join(',')]),
      ),
    );
  container
    .command('rm <name>')
    .description('delete a container (it must hold no vDisks)')
    .action((name: string) => withClient(async (client) => print(`container ${(await client.delete('container', name)).name} deleted`)));

  // ---- vDisks ---------------------------------------------------------------------------------

  const vdisk = program.command('vdisk').description('virtual disks');
  vdisk
    .command('create <name>')
    .description('create a vDisk')
    .option('--size <size>', 'size, e.g. 10G (a multiple of 512 bytes; required)')
    .option('--container <name>', 'container', 'default')
    .option('--shared', 'many hosts may do I/O at once')
    .option('--block-size <size>', 'vDisk block size, 4K to 1M', '1M')
    .option('--priority <class>', 'QoS class: high, normal or low', 'normal')
    .option('--weight <n>', 'fair-share weight within the class', '1')
    .option('--iops-cap <n>', 'at most this many operations a second')
    .option('--bandwidth-cap <size>', 'at most this many bytes a second, e.g. 100M')
    .option('--burst-ms <ms>', 'how far a capped vDisk may run ahead of its cap (default 1000)')
    .option('--reserved-iops <n>', 'operations a second served before other vDisks while this one has work')
    .action((name: string, o: { size?: string; container: string; shared?: boolean; blockSize: string } & QosOptions) => {
      checkName(name);
      const size = required(o.size, '--size');
      const spec = {
        sizeBytes: checkValue(vdiskSpec.shape.sizeBytes, parseSize(size, '--size'), '--size', size),
        blockSizeBytes: checkValue(vdiskSpec.shape.blockSizeBytes, parseSize(o.blockSize, '--block-size'), '--block-size', o.blockSize),
        shared: o.shared ?? false,
        qos: applyQos({}, qosChanges(o)),
      };
      return withClient(async (client) => {
        const containerObj = await client.get({ kind: 'container', name: o.container }).catch((err: unknown) => {
          if (err instanceof StrataError && err.code === 'NOT_FOUND') {
            throw new UsageError(`--container: no container named "${o.container}"; create it (strata container create ${o.container}) or name another`);
          }
          throw err;
        });
        const created = await client.create({ kind: 'vdisk', name, spec: { ...spec, container: containerObj.id } });
        print(`vdisk ${created.name} created (id ${created.id}, ${formatSize(spec.sizeBytes)} in container ${containerObj.name})`);
      });
    });
  vdisk
    .command('ls')
    .description('list vDisks')
    .action(() =>
      withClient(async (client) =>
        listOut(await client.list('vdisk'), ['NAME', 'ID', 'SIZE', 'CONTAINER', 'BLOCK', 'SHARED', 'QOS', 'KIND', 'PARENT', 'STATE'], async (v) => {
          const s = v.spec;
          return [v.name, String(v.id), formatSize(s.sizeBytes), await nameOf(client, 'container', s.container), formatSize(s.blockSizeBytes), s.shared ? 'yes' : 'no', formatQos(s.qos), ...(await lineage(client, v)), vdiskState(v)];
        }),
      ),
    );
  vdisk
    .command('snapshot <name> <snapshot>')
    .description("take a read-only snapshot of a vDisk: it holds every write acknowledged before the command started, none sent after it returned (the vDisk's writes wait while it is cut)")
    .action((name: string, snapshot: string) => {
      checkName(snapshot);
      return withCluster(async (client, _nc, bus) => {
        const { snapshot: snap, cut } = await takeSnapshot(await snapshotPortsFor(bus, client), name, snapshot);
        if (globals().json) return printJson({ snapshot: snap, cut });
        print(`snapshot ${snap.name} of vdisk ${name} taken (id ${snap.id}, ${cut.blocks} blocks, writes held ${cut.pauseMs} ms)`);
      });
    });
  vdisk
    .command('clone <snapshot> <name>')
    .description('make a writable vDisk from a snapshot: it shares the snapshot\'s blocks until it writes them, and is independent of it and of its source')
    .action((snapshot: string, name: string) => {
      checkName(name);
      return withCluster(async (client, _nc, bus) => {
        const { clone, blocks } = await makeClone(await snapshotPortsFor(bus, client), snapshot, name);
        if (globals().json) return printJson({ clone, blocks });
        print(`vdisk ${clone.name} cloned from snapshot ${snapshot} (id ${clone.id}, ${blocks} blocks shared)`);
      });
    });
  vdisk
    .command('snapshots <name>')
    .description('list the snapshots of a vDisk, and the clones made from each')
    .action((name: string) =>
      withClient(async (client) => {
        const v = await client.get({ kind: 'vdisk', name });
        const all = (await client.list('vdisk')).filter((o): o is ObjectOf<'vdisk'> => o.kind === 'vdisk');
        const snapshots = all.filter((o) => o.spec.snapshotOf === v.id);
        const clonesOf = (id: bigint): string[] => all.filter((o) => o.spec.cloneOf === id).map((o) => o.name);
        await listOut(snapshots, ['NAME', 'ID', 'CREATED', 'CLONES', 'STATE'], (o) => [o.name, String(o.id), new Date(o.createdAtMs).toISOString(), clonesOf(o.id).join(',') || '-', vdiskState(o)]);
      }),
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
    .action((name: string, o: QosOptions) => {
      // Each value alone is checked before connecting; the combination with the current setting after.
      const changes = qosChanges(o);
      return withClient(async (client) => {
        const current = await client.get({ kind: 'vdisk', name });
        if (current.kind !== 'vdisk') throw new Error(`config returned a ${current.kind} for vdisk ${name}`);
        if (Object.keys(changes).length === 0) {
          if (globals().json) printJson(current.spec.qos);
          else print(`vdisk ${name}: ${formatQos(current.spec.qos)}`);
          return;
        }
        // Compare-and-set on the revision read: a concurrent change is a CONFLICT, not lost.
        const qos = applyQos(current.spec.qos, changes);
        const updated = await client.update({ kind: 'vdisk', name, spec: { ...current.spec, qos }, revision: current.revision });
        if (updated.kind !== 'vdisk') throw new Error(`config returned a ${updated.kind} for vdisk ${name}`);
        print(`vdisk ${name}: ${formatQos(updated.spec.qos)}`);
      });
    });
  vdisk
    .command('resize <name>')
    .description('grow a vDisk (it never shrinks): one atomic change of its size; clients see it when they reconnect (qemu: block_resize)')
    .option('--size <size>', 'the new size, e.g. 20G (a multiple of 512 bytes; required)')
    .action((name: string, o: { size?: string }) => {
      const size = required(o.size, '--size');
      const sizeBytes = checkValue(vdiskSpec.shape.sizeBytes, parseSize(size, '--size'), '--size', size);
      return withClient(async (client) => {
        const current = await client.get({ kind: 'vdisk', name });
        if (current.kind !== 'vdisk') throw new Error(`config returned a ${current.kind} for vdisk ${name}`);
        const refusal = resizeRefusal(current, sizeBytes);
        if (refusal !== undefined) throw refusal;
        // Compare-and-set on the revision read: a concurrent change is a CONFLICT, not lost.
        if (sizeBytes !== current.spec.sizeBytes) await client.update({ kind: 'vdisk', name, spec: { ...current.spec, sizeBytes }, revision: current.revision });
        print(describeResize(name, current.spec.sizeBytes, sizeBytes));
      });
    });
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
    .description("delete a vDisk: it is marked deleting at once (no longer attached or served), and the sweep frees its space and removes it; refused while a client has it open, unless --force")
    .option('--force', "delete it even while clients have it open (their every request then fails)")
    .action((name: string, o: { force?: boolean }) =>
      withCluster(async (client, nc) => {
        const hb = await openBucket(nc, buckets.hb, gatewayAttachments);
        const outcome = await markDeleting(
          {
            get: async (n) => asVdisk(await client.get({ kind: 'vdisk', name: n })),
            update: (n, spec, revision) => client.update({ kind: 'vdisk', name: n, spec, revision }),
            attachments: async () => {
              const reports = [];
              for (const key of await hb.keys(keys.gatewayAttachmentsAll)) {
                const got = await hb.get(key);
                if (got !== null) reports.push(got.value);
              }
              return reports;
            },
            nowMs: () => Date.now(),
          },
          name,
          { force: o.force ?? false },
        );
        if (!outcome.marked) return print(`vdisk ${name} is already being deleted (since ${new Date(outcome.sinceMs).toISOString()}); "strata vdisk sweep" frees its space`);
        const forced = outcome.openOn.length === 0 ? '' : ` (forced: it was open on ${outcome.openOn.map((x) => x.node).join(', ')})`;
        print(`vdisk ${name} is being deleted${forced}; "strata vdisk sweep" (what the curator's scan runs) frees its space and removes it`);
      }),
    );
  vdisk
    .command('sweep')
    .description("free the space of the vDisks being deleted and remove them (what the curator's scan runs): their extent groups, metadata, ownership and oplog, then their config objects")
    .action(() =>
      withCluster(async (client, _nc, bus) => {
        const result = await sweepDeleted(await sweepPortsFor({ bus, config: client }), undefined, creatingTimeoutFrom(ctx.env));
        if (globals().json) return printJson(result);
        for (const s of result.swept) print(describeSwept(s));
        for (const r of result.reclaimed ?? []) print(`egroup ${r.egroup} deleted (${(r.freedBytes / 2 ** 20).toFixed(1)} MiB freed): ${r.why}`);
        for (const f of result.failed) print(`vdisk ${f.name}: not swept yet (${f.error}); the next sweep goes on with it`);
        if (result.swept.length === 0 && result.failed.length === 0) print('no vdisk is being deleted');
        if (result.failed.length > 0) throw new StrataError(ErrorCode.UNAVAILABLE, `${result.failed.length} vdisk${result.failed.length === 1 ? '' : 's'} not swept; run "strata vdisk sweep" again`);
      }),
    );

  registerHaCommands(program, { withCluster, print, printJson, json: () => globals().json, warn: (text) => ctx.err(text) });
  // `node run`, `config run`, `shard run`: one role of this machine against an existing cluster.
  const dataDir = (): string => resolve(ctx.cwd, globals().dir ?? (ctx.env.STRATA_DIR === '' ? undefined : ctx.env.STRATA_DIR) ?? DEFAULT_DIR);
  registerRunCommands(program, node, { dir: dataDir, env: ctx.env, cwd: ctx.cwd, print });
  registerConsoleCommand(program, { withCluster, dir: dataDir, print });

  // Which command a usage error from an action is about.
  let running: Command = program;
  program.hook('preAction', (_root, action) => {
    running = action;
  });
  for (const cmd of allCommands(program)) {
    cmd.exitOverride((err) => {
      // Help and version asked for: done, exit 0.
      if (err.exitCode === 0) throw err;
      throw new CommandUsageError(pathOf(cmd), usageOf(cmd, err));
    });
  }
  return { program, running: () => running };
}

/**
 * Runs the CLI with `argv` (the arguments after `strata`) and returns the exit code:
 * 0, 1 for a refusal or no answer from the cluster, 2 for a usage error.
 */
export async function run(argv: string[], ctx: RunContext): Promise<number> {
  const { program, running } = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return 0;
    if (err instanceof CommandUsageError) {
      ctx.err(`strata: ${err.command === '' ? '' : `${err.command}: `}${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      const command = pathOf(running());
      ctx.err(`strata: ${command === '' ? '' : `${command}: `}${err.message}\n`);
      return 2;
    }
    const text = err instanceof StrataError ? err.toString() : ((err as Error)?.message ?? String(err));
    ctx.err(`strata: ${text.split('\n')[0]}\n`);
    return 1;
  }
}

async function main(): Promise<void> {
  const code = await run(process.argv.slice(2), {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    env: process.env,
    cwd: process.cwd(),
    checkout: checkoutDir(),
  });
  process.exit(code);
}

if (require.main === module) void main();

