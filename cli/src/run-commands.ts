// `strata node run`, `strata config run` and `strata shard run`: one role of one
// machine, started against an existing cluster (NATS_URL or --nats) and served in the
// foreground until SIGINT or SIGTERM (serve.ts). A host joins a cluster with them one
// at a time; `strata up` starts the same processes (roles.ts) on one machine.
import { existsSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { isLoopbackHost } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { hostSpec, objectName } from '@strata/proto';
import { withUrl } from './client';
import { parseDiskArgs, planRegistration, readRegistered, register } from './node-register';
import { Layout, configChild, nodeChildren, shardChild } from './roles';
import { natsUrlOf, serveRole, waitForHealth, waitForPort } from './serve';
import { UsageError, checkValue, parseCount, parseSize } from './units';

export interface RunCommandContext {
  /** The data directory (--dir, STRATA_DIR, else .strata): logs, pid locks, the HA agent's run directory. */
  dir: () => string;
  env: Record<string, string | undefined>;
  cwd: string;
  print: (text: string) => void;
}

/** How long a role's processes have to serve (a gateway's port, an actor's health check) once started. */
const READY_TIMEOUT_MS = 60_000;

/** The options every run command takes. */
interface CommonOptions {
  nats?: string;
  connectTimeout: string;
  metricsPort?: string;
}

function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--nats <urls>', 'the NATS servers of the cluster, comma-separated (default: NATS_URL)')
    .option('--connect-timeout <seconds>', 'how long NATS has to answer with JetStream, and the config service, before the command gives up', '30')
    .option('--metrics-port <port>', 'serve Prometheus metrics: the first process on this port, each further one on the next port');
}

function connectTimeoutMs(o: CommonOptions): number {
  return parseCount(o.connectTimeout, '--connect-timeout', 1) * 1000;
}

/** The first metrics port, checked so that `count` ports from it exist. */
function metricsPortOf(o: CommonOptions, count: number): number | undefined {
  if (o.metricsPort === undefined) return undefined;
  const port = parseCount(o.metricsPort, '--metrics-port', 1);
  if (port + count - 1 > 65_535) throw new UsageError(`--metrics-port: "${o.metricsPort}" leaves no room for ${count} ports`);
  return port;
}

const nameOf = (text: string | undefined, flag: string, example: string): string => {
  if (text === undefined) throw new UsageError(`missing ${flag} (e.g. ${flag} ${example})`);
  return checkValue(objectName, text, flag, text);
};

interface NodeRunOptions extends CommonOptions {
  node?: string;
  disk: string[];
  address?: string;
  shard?: string;
  separate?: boolean;
  nbdHost?: string;
  nbdPort: string;
  nbdTlsDir?: string;
  nbdTlsClientDir?: string;
  nbdInsecure?: boolean;
  hostCpus?: string;
  hostMemory?: string;
}

async function nodeRun(o: NodeRunOptions, ctx: RunCommandContext): Promise<never> {
  const node = nameOf(o.node, '--node', 'n2');
  const disks = parseDiskArgs(o.disk, ctx.cwd);
  const shard = o.shard === undefined ? undefined : nameOf(o.shard, '--shard', 'md-2');
  const layout = o.separate === true ? Layout.separate : Layout.colocated;
  const nbdPort = parseCount(o.nbdPort, '--nbd-port', 1);
  if (nbdPort > 65_535) throw new UsageError(`--nbd-port: "${o.nbdPort}" is not a port`);
  const host = {
    cpuCount: checkValue(hostSpec.shape.cpuCount, o.hostCpus === undefined ? cpus().length : parseCount(o.hostCpus, '--host-cpus', 1), '--host-cpus', o.hostCpus ?? ''),
    memoryBytes: checkValue(hostSpec.shape.memoryBytes, o.hostMemory === undefined ? totalmem() : parseSize(o.hostMemory, '--host-memory'), '--host-memory', o.hostMemory ?? ''),
  };
  const natsUrl = natsUrlOf(o.nats, ctx.env);
  const timeoutMs = connectTimeoutMs(o);
  const dir = ctx.dir();
  const base = { node, layout, nbdHost: o.nbdHost, nbdPort, ...nbdTlsOf(o, ctx.cwd), shard, haRunDir: join(dir, 'ha', node), natsUrl };
  const metricsPort = metricsPortOf(o, nodeChildren(base).length);
  return serveRole(
    {
      what: `node ${node}`,
      lockFile: `node-${node}.pid`,
      dir,
      natsUrl,
      connectTimeoutMs: timeoutMs,
      prepare: async () => {
        const client = await ConfigClient.connect(natsUrl, timeoutMs);
        try {
          const plan = planRegistration({ node, address: o.address ?? hostname(), disks, host }, await readRegistered(client));
          for (const line of await register(client, node, plan.steps)) ctx.print(line);
          for (const line of plan.notes) ctx.print(line);
        } catch (err) {
          // No config replica answering is named as such, with the URL.
          throw withUrl(err, natsUrl);
        } finally {
          await client.close();
        }
        return nodeChildren({ ...base, metricsPort });
      },
      ready: () => waitForPort(o.nbdHost === undefined || o.nbdHost === '0.0.0.0' || o.nbdHost === '::' ? '127.0.0.1' : o.nbdHost, nbdPort, READY_TIMEOUT_MS),
    },
    ctx.print,
  );
}

const SERVER_TLS_FILES = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'];
const CLIENT_TLS_FILES = ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'];

function checkTlsDir(dir: string, files: readonly string[], flag: string): string {
  const missing = files.filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) throw new UsageError(`${flag}: ${dir} has no ${missing.join(', ')} (strata auth init --nbd-address writes nbd-server/ and nbd-client/)`);
  return dir;
}

/**
 * The gateway's NBD TLS settings from the flags: plain NBD beyond loopback only with
 * --nbd-insecure; with --nbd-tls-dir, the HA agent's VMs use --nbd-tls-client-dir, by
 * default the nbd-client directory beside it (strata auth init's layout).
 */
export function nbdTlsOf(o: Pick<NodeRunOptions, 'nbdHost' | 'nbdTlsDir' | 'nbdTlsClientDir' | 'nbdInsecure'>, cwd: string): { nbdTlsDir?: string; nbdTlsClientDir?: string; nbdInsecure?: boolean } {
  if (o.nbdTlsDir === undefined) {
    if (o.nbdTlsClientDir !== undefined) throw new UsageError('--nbd-tls-client-dir is for a gateway that requires TLS: give --nbd-tls-dir too');
    if (o.nbdHost !== undefined && !isLoopbackHost(o.nbdHost) && o.nbdInsecure !== true) {
      throw new UsageError(`--nbd-host ${o.nbdHost}: plain NBD has no authentication: a gateway listening beyond loopback needs --nbd-tls-dir DIR (TLS with client certificates), or --nbd-insecure to serve plain NBD anyway`);
    }
    return o.nbdInsecure === true ? { nbdInsecure: true } : {};
  }
  if (o.nbdInsecure === true) throw new UsageError('--nbd-insecure and --nbd-tls-dir contradict each other: give one');
  const serverDir = checkTlsDir(resolve(cwd, o.nbdTlsDir), SERVER_TLS_FILES, '--nbd-tls-dir');
  const clientDir = o.nbdTlsClientDir === undefined ? join(dirname(serverDir), 'nbd-client') : resolve(cwd, o.nbdTlsClientDir);
  return { nbdTlsDir: serverDir, nbdTlsClientDir: checkTlsDir(clientDir, CLIENT_TLS_FILES, o.nbdTlsClientDir === undefined ? '--nbd-tls-client-dir (default: nbd-client beside --nbd-tls-dir)' : '--nbd-tls-client-dir') };
}

/** Registers `node run`, `config run` and `shard run` on the CLI's command tree. */
export function registerRunCommands(program: Command, node: Command, ctx: RunCommandContext): void {
  withCommonOptions(
    node
      .command('run')
      .description("start this machine's node against an existing cluster: register the node, its disks and its host, run its actors (gateway, io-director, admission, vdisk-controller, extent-store, HA agent, curator) until SIGINT or SIGTERM"),
  )
    .option('--node <name>', 'the name of this node (and of its host) in the cluster (required)')
    .addOption(new Option('--disk <path:capacity[:tier]>', 'a disk of this node: a directory, the capacity Strata may use, and ssd (default), hdd or cloud; repeat for more disks').argParser((v: string, all: string[] = []) => [...all, v]).default([], 'none'))
    .option('--address <address>', 'where the node runs, when it is registered (default: this host name); disks of nodes at one address must not share a path')
    .option('--shard <name>', "also run this metadata shard with the node's actors (in its node-host process unless --separate)")
    .option('--separate', "run each actor in its own process (the default runs the node's actors in one node-host process)")
    .option('--nbd-host <address>', "the gateway's NBD listen address (default 127.0.0.1); any address beyond loopback needs --nbd-tls-dir or --nbd-insecure")
    .option('--nbd-port <port>', "the gateway's NBD port", '10809')
    .option('--nbd-tls-dir <dir>', 'serve NBD over TLS only (NBD_OPT_STARTTLS), with ca-cert.pem, server-cert.pem and server-key.pem from this directory (strata auth init writes nbd-server/); clients must present a certificate signed by ca-cert.pem')
    .option('--nbd-tls-client-dir <dir>', "the client certificates (ca-cert.pem, client-cert.pem, client-key.pem) the HA agent's VMs reach a TLS gateway with (default: nbd-client beside --nbd-tls-dir)")
    .option('--nbd-insecure', 'serve plain NBD on an --nbd-host beyond loopback anyway: anyone who can reach it can read and write every vDisk')
    .option('--host-cpus <n>', 'CPUs this host offers to VMs (default: all of them)')
    .option('--host-memory <size>', 'memory this host offers to VMs (default: all of it)')
    .action((o: NodeRunOptions) => nodeRun(o, ctx));

  const config = program.command('config').description('the configuration service');
  withCommonOptions(config.command('run').description('run one config replica against an existing cluster until SIGINT or SIGTERM (one of them leads)'))
    .option('--replica <name>', 'the name of this replica, unique in the cluster (required)')
    .action((o: CommonOptions & { replica?: string }) => {
      const replica = nameOf(o.replica, '--replica', 'config-1');
      const natsUrl = natsUrlOf(o.nats, ctx.env);
      const metricsPort = metricsPortOf(o, 1);
      const child = configChild(replica, natsUrl);
      if (metricsPort !== undefined) child.env = { ...child.env, STRATA_METRICS_PORT: String(metricsPort) };
      const ready = (): Promise<void> => waitForHealth(natsUrl, 'config', replica, READY_TIMEOUT_MS);
      return serveRole({ what: `config replica ${replica}`, lockFile: `config-${replica}.pid`, dir: ctx.dir(), natsUrl, connectTimeoutMs: connectTimeoutMs(o), prepare: () => Promise.resolve([child]), ready }, ctx.print);
    });

  const shard = program.command('shard').description('metadata shards');
  withCommonOptions(shard.command('run').description('run one metadata shard against an existing cluster until SIGINT or SIGTERM; the shards share the partitions among them'))
    .option('--shard <name>', 'the name of this shard, unique in the cluster (required)')
    .action((o: CommonOptions & { shard?: string }) => {
      const name = nameOf(o.shard, '--shard', 'md-4');
      const natsUrl = natsUrlOf(o.nats, ctx.env);
      const child = shardChild(name, natsUrl, metricsPortOf(o, 1));
      const ready = (): Promise<void> => waitForHealth(natsUrl, 'metadata-shard', name, READY_TIMEOUT_MS);
      return serveRole({ what: `metadata shard ${name}`, lockFile: `shard-${name}.pid`, dir: ctx.dir(), natsUrl, connectTimeoutMs: connectTimeoutMs(o), prepare: () => Promise.resolve([child]), ready }, ctx.print);
    });
}
