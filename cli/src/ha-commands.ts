// `strata host ls|rm`, `strata vm create|ls|start|stop|rm|why`, `strata ha status`, and
// the curator's `strata curator status|scan`.
// Values are checked before anything is sent (a usage error names the flag); a name
// that does not exist is a one-line NOT_FOUND from the cluster.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from 'commander';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { openBucket } from '@strata/kv';
import { RestartPriority, VmDriver, buckets, hostRecord, keys, objectName, vmSpec, type HaStatusReply, type ObjectOf } from '@strata/proto';
import { curatorScan, curatorScrub, curatorStatus, formatCuratorStatus, formatScan, formatScanMap, formatScrub } from './curator';
import { formatHaStatus, formatHosts, formatVms, formatWhy, haStart, haStatus, haStop, hostRmRefusal } from './ha';
import { readEvents } from './ownership';
import { UsageError, checkValue, formatSize, parseChoice, parseCount, parseSize } from './units';

export interface HaCommandContext {
  withCluster: <T>(fn: (client: ConfigClient, nc: NatsConnection, bus: Bus) => Promise<T>) => Promise<T>;
  print: (text: string) => void;
  printJson: (value: unknown) => void;
  json: () => boolean;
  warn: (text: string) => void;
}

/** The object of `kind` named `name`, or a NOT_FOUND that says which kind. */
async function named<K extends 'vm' | 'host' | 'vdisk'>(client: ConfigClient, kind: K, name: string): Promise<ObjectOf<K>> {
  return (await client.get({ kind, name })) as ObjectOf<K>;
}

async function nodeNames(client: ConfigClient): Promise<Map<bigint, string>> {
  return new Map((await client.list('node')).map((n) => [n.id, n.name]));
}

/** The master's status, or undefined (with a warning) when none answers. */
async function statusIfAny(bus: Bus, warn: (text: string) => void): Promise<HaStatusReply | undefined> {
  try {
    return await haStatus(bus);
  } catch (err) {
    if (!isStrataError(err, ErrorCode.UNAVAILABLE) && !isStrataError(err, ErrorCode.TIMEOUT)) throw err;
    warn(`strata: warning: ${err.message}\n`);
    return undefined;
  }
}

export function registerHaCommands(program: Command, ctx: HaCommandContext): void {
  const { withCluster, print } = ctx;

  const host = program.command('host').description('hosts: where VMs run (every node of "strata up" is also a host)');
  host
    .command('ls')
    .description('list hosts with their state as the HA master sees it, their capacity in use and their VMs')
    .action(() =>
      withCluster(async (client, _nc, bus) => {
        const hosts = await client.list('host');
        const status = await statusIfAny(bus, ctx.warn);
        if (ctx.json()) return ctx.printJson({ hosts, status: status?.hosts ?? null });
        print(formatHosts(hosts, await nodeNames(client), status));
      }),
    );
  host
    .command('rm <name>')
    .description('remove a host whose processes are stopped; refused while VMs are defined or run on it, while it has a storage node (strata node rm first), and while the HA master hears its agent, unless --force')
    .option('--force', 'remove it even though its HA agent may still run (or no HA master answers)')
    .action((name: string, o: { force?: boolean }) =>
      withCluster(async (client, nc, bus) => {
        const target = await named(client, 'host', name);
        const [vms, names, status] = await Promise.all([client.list('vm'), nodeNames(client), statusIfAny(bus, ctx.warn)]);
        const refusal = hostRmRefusal(target, vms, status, target.spec.node === undefined ? undefined : names.get(target.spec.node), o.force === true);
        if (refusal !== undefined) throw refusal;
        await client.delete('host', name);
        // Its record in `ha` (renewed by its agent while it ran) goes with it.
        const ha = await openBucket(nc, buckets.ha, hostRecord);
        await ha.delete(keys.hostRecord(name));
        print(`host ${name} removed`);
      }),
    );

  const vm = program.command('vm').description('virtual machines, run by the hosts and restarted elsewhere by HA');
  vm.command('create <name>')
    .description('define a VM (powered off: "strata vm start NAME" powers it on)')
    .option('--host <host>', 'the host it runs on when started (required)')
    .option('--cpus <n>', 'vCPUs (required)')
    .option('--memory <size>', 'memory, e.g. 256M (required)')
    .option('--vdisk <names>', 'its vDisks, comma-separated, the first is its boot or data disk (required)')
    .option('--driver <driver>', `how the host runs it: ${Object.values(VmDriver).join(' or ')}`, 'process')
    .option('--ha-protected', 'restart it on another host when its host fails')
    .option('--restart-priority <p>', `order of restarts after a failure: ${Object.values(RestartPriority).join(', ')}`, 'medium')
    .action((name: string, o: { host?: string; cpus?: string; memory?: string; vdisk?: string; driver: string; haProtected?: boolean; restartPriority: string }) => {
      checkValue(objectName, name, 'NAME', name);
      const need = (v: string | undefined, flag: string): string => {
        if (v === undefined) throw new UsageError(`missing ${flag}`);
        return v;
      };
      const host = checkValue(objectName, need(o.host, '--host'), '--host', o.host!);
      const cpuCount = checkValue(vmSpec.shape.cpuCount, parseCount(need(o.cpus, '--cpus'), '--cpus', 1), '--cpus', o.cpus!);
      const memoryBytes = checkValue(vmSpec.shape.memoryBytes, parseSize(need(o.memory, '--memory'), '--memory'), '--memory', o.memory!);
      const vdiskNames = need(o.vdisk, '--vdisk').split(',').map((v) => v.trim());
      for (const v of vdiskNames) checkValue(objectName, v, '--vdisk', v);
      if (new Set(vdiskNames).size !== vdiskNames.length) throw new UsageError(`--vdisk: "${o.vdisk}" names a vDisk twice`);
      const driver = parseChoice(o.driver, Object.values(VmDriver), '--driver');
      const restartPriority = parseChoice(o.restartPriority, Object.values(RestartPriority), '--restart-priority');
      return withCluster(async (client) => {
        const hostObj = await named(client, 'host', host);
        const vdisks = [];
        for (const v of vdiskNames) vdisks.push((await named(client, 'vdisk', v)).id);
        const created = await client.create({ kind: 'vm', name, spec: { host: hostObj.id, cpuCount, memoryBytes, vdisks, haProtected: o.haProtected ?? false, driver, restartPriority } });
        print(`vm ${created.name} created (id ${created.id}, ${cpuCount} CPU, ${formatSize(memoryBytes)}, ${driver}, ${o.haProtected === true ? `HA-protected, ${restartPriority} priority` : 'not HA-protected'}); start it with "strata vm start ${name}"`);
      });
    });

  vm.command('ls')
    .description('list VMs: the host each runs on, its state (running, stopped, restarting, waiting, down) and why')
    .action(() =>
      withCluster(async (client, _nc, bus) => {
        const [vms, status] = [await client.list('vm'), await haStatus(bus)];
        if (ctx.json()) return ctx.printJson({ vms, status: status.vms });
        print(formatVms(vms, status));
      }),
    );

  vm.command('start <name>')
    .description('power a VM on at its host (or another with capacity) and protect it if it is HA-protected')
    .action((name: string) =>
      withCluster(async (client, _nc, bus) => {
        const v = await named(client, 'vm', name);
        const reply = await haStart(bus, v.id);
        print(`vm ${name} running on ${reply.host} (power-on lease epoch ${reply.powerOnEpoch}, pid ${reply.pid})`);
      }),
    );

  vm.command('stop <name>')
    .description('power a VM off; HA no longer restarts it')
    .action((name: string) =>
      withCluster(async (client, _nc, bus) => {
        const v = await named(client, 'vm', name);
        const reply = await haStop(bus, v.id);
        print(`vm ${name} stopped${reply.wasRunning ? '' : ' (it was not running)'}`);
      }),
    );

  vm.command('rm <name>')
    .description('delete a stopped VM')
    .action((name: string) =>
      withCluster(async (client, _nc, bus) => {
        const v = await named(client, 'vm', name);
        const standing = (await haStatus(bus)).vms.find((s) => s.vm === v.id);
        if (standing !== undefined && standing.state !== 'stopped' && standing.state !== 'down') {
          throw new StrataError(ErrorCode.CONFLICT, `vm ${name} is ${standing.state}${standing.host === '' ? '' : ` on ${standing.host}`}; stop it first (strata vm stop ${name})`);
        }
        print(`vm ${(await client.delete('vm', name)).name} deleted`);
      }),
    );

  vm.command('why <name>')
    .description('why a VM was, or was not, restarted: its HA events, oldest first, and how it stands now')
    .option('--limit <n>', 'how many of its last events to show', '50')
    .action((name: string, o: { limit: string }) => {
      const limit = parseCount(o.limit, '--limit', 1);
      return withCluster(async (client, nc, bus) => {
        const v = await named(client, 'vm', name);
        const { events } = await readEvents(nc, { limit, filter: { vm: v.id, typePrefix: 'ha.' } });
        const status = await statusIfAny(bus, ctx.warn);
        if (ctx.json()) return ctx.printJson({ events, now: status?.vms.find((s) => s.vm === v.id) ?? null });
        print(formatWhy(v, events, status));
      });
    });

  program
    .command('ha')
    .description('HA: the master, the hosts, the restart and wait lists')
    .command('status')
    .description('show the HA master and its epoch, the hosts, the restart list and the wait list with reasons')
    .action(() =>
      withCluster(async (client, _nc, bus) => {
        const status = await haStatus(bus);
        if (ctx.json()) return ctx.printJson(status);
        print(formatHaStatus(status, await client.list('host'), await nodeNames(client)));
      }),
    );

  const curator = program.command('curator').description('the curator: scans of the metadata, re-replication of extent groups that lost replicas, drains and scrub');
  curator
    .command('status')
    .description('show the curator master, the last and the running scan, the under-replicated extent groups, the rebuild progress and its estimated time to finish')
    .action(() =>
      withCluster(async (_client, _nc, bus) => {
        const status = await curatorStatus(bus);
        if (ctx.json()) return ctx.printJson(status);
        print(formatCuratorStatus(status));
      }),
    );
  curator
    .command('scan')
    .description('scan the extent-group map now and queue the copies it needs (a partial scan: the entries changed since the last scan); prints the scan and its map tasks once it is done (the copies run on)')
    .option('--full', 'read every entry and also ask each replica\'s extent store whether the replica is on its disk')
    .action((o: { full?: boolean }) =>
      withCluster(async (_client, _nc, bus) => {
        const scan = await curatorScan(bus, o.full ?? false);
        if (ctx.json()) return ctx.printJson(scan);
        print(`${formatScan(scan)}\n${formatScanMap(scan)}`);
      }),
    );
  curator
    .command('scrub')
    .description('read every replica on a live node now and verify its checksums (or wait for the pass running); prints the pass once it is done (the repairs of damaged replicas run on)')
    .action(() =>
      withCluster(async (_client, _nc, bus) => {
        const pass = await curatorScrub(bus);
        if (ctx.json()) return ctx.printJson(pass);
        print(formatScrub(pass));
      }),
    );
}
