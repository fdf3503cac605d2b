// One nats-server child process with a generated config file.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { clientSecurityFromEnv, securityOptions, type ClientSecurity } from './client-security';
import type { TlsFiles } from './credentials';
import { NATS_SERVER_MIN_VERSION, natsServerBinary, natsServerVersion, versionAtLeast } from './version';

export interface NatsServerSpec {
  name: string;
  /** The address it listens on for clients, routes and monitoring: 127.0.0.1 unless given. */
  host?: string;
  /** Client port on `host`. */
  port: number;
  /** Directory for the config file and the JetStream store. */
  dir: string;
  /**
   * Cluster port and the routes to the other members, for a cluster: a port (on
   * 127.0.0.1) or `host:port`.
   */
  clusterPort?: number;
  routes?: Array<number | string>;
  /** Port of the monitoring endpoint on `host` (`/jsz` tells whether it fsyncs), when wanted. */
  monitorPort?: number;
  /**
   * A command the server runs under, e.g. `['ip', 'netns', 'exec', 'h1']` for a test
   * host in a network namespace. It must exec the server (keep its PID).
   */
  launcher?: string[];
  /** JetStream file store limit (default 4GB). */
  maxFileStore?: string;
  /**
   * Another nats-server binary than Strata's (natsServerBinary()), for benchmarks that
   * compare releases. Its version is not checked: Strata never runs on it.
   */
  binary?: string;
  /**
   * Fsync every JetStream write before acknowledging it (`sync_interval: always`):
   * the default, and what Strata's promise needs. Off only for benchmarks and the
   * power-loss test that shows what is lost without it.
   */
  syncAlways?: boolean;
  /**
   * TLS on client connections and routes with these files; clients then verify the
   * server against the CA (and routes each other).
   */
  tls?: TlsFiles;
  /** An `authorization { users: [...] }` block (permissions.ts): no anonymous clients. */
  authorization?: string;
  /** Who start() connects as to see the server accept clients, when it needs credentials. */
  probe?: ClientSecurity;
}


/**
 * A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral
 * range. A port the kernel hands out for `listen(0)` lies in that range, which is
 * also where outgoing connections take their local ports: between our check and the
 * server's bind, a client connecting anywhere could take it (seen: a gateway refused
 * EADDRINUSE at start-up, the port taken by one of the cluster's own connections).
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = Math.min(20_000, low - 2_000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (port !== 4222 && (await portIsFree(port))) return port;
  }
  throw new Error(`no free port found on 127.0.0.1 between ${floor} and ${low}`);
}

/** `count` different ports, each free a moment ago (see freePort), none of them in `exclude`. */
export async function freePorts(count: number, exclude: ReadonlySet<number> = new Set()): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count && attempt < 10 * count + 10; attempt++) {
    const port = await freePort();
    if (!exclude.has(port)) ports.add(port);
  }
  if (ports.size < count) throw new Error(`found only ${ports.size} of ${count} free ports on 127.0.0.1`);
  return [...ports];
}

/** The kernel's range of ports for outgoing connections (Linux's default when unreadable). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && low > 4_000) return [low, high];
  } catch {
    // Not Linux: use its default.
  }
  return [32_768, 60_999];
}

/** Whether a server could listen on `port` of 127.0.0.1 a moment ago. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

let checkedBinary: string | undefined;

/** Refuses a nats-server older than Strata needs, once per binary: it would acknowledge writes it has not flushed. */
export function checkServerVersion(): void {
  const binary = natsServerBinary();
  if (checkedBinary === binary) return;
  const version = natsServerVersion(binary);
  // A binary that cannot be run is reported by spawn below.
  if (version !== undefined && !versionAtLeast(version, NATS_SERVER_MIN_VERSION)) {
    throw new Error(`${binary} is nats-server ${version}; Strata needs ${NATS_SERVER_MIN_VERSION} or later (sync_interval: always). Run infra/scripts/ensure-deps.sh or set NATS_SERVER_BIN`);
  }
  checkedBinary = binary;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function hostOf(spec: NatsServerSpec): string {
  return spec.host ?? '127.0.0.1';
}

function routeUrl(route: number | string): string {
  return `nats-route://${typeof route === 'number' ? `127.0.0.1:${route}` : route}`;
}

function tlsLines(tls: TlsFiles): string[] {
  return [`  cert_file: "${tls.certFile}"`, `  key_file: "${tls.keyFile}"`, `  ca_file: "${tls.caFile}"`];
}

function configText(spec: NatsServerSpec): string {
  const host = hostOf(spec);
  const lines = [
    `server_name: ${spec.name}`,
    `listen: ${host}:${spec.port}`,
    // 1 MiB of data plus headers and envelope fit comfortably.
    `max_payload: 8MB`,
    // A hung client (a paused process) keeps its subscriptions, queue groups
    // included, until the server finds it stale: requests delivered to it meanwhile go
    // unanswered. Pinging a silent client every 2 s and closing it after 2 unanswered
    // pings drops it within about 6 s instead of the default 4 minutes.
    `ping_interval: "2s"`,
    `ping_max: 2`,
    ...(spec.monitorPort === undefined ? [] : [`http: ${host}:${spec.monitorPort}`]),
    ...(spec.tls === undefined ? [] : [`tls {`, ...tlsLines(spec.tls), `  timeout: 2`, `}`]),
    `jetstream {`,
    `  store_dir: "${join(spec.dir, 'js')}"`,
    `  max_memory_store: 256MB`,
    `  max_file_store: ${spec.maxFileStore ?? '4GB'}`,
    // An acknowledged append is on disk: fsync before every acknowledgement.
    ...(spec.syncAlways === false ? [] : [`  sync_interval: always`]),
    `}`,
  ];
  if (spec.clusterPort !== undefined) {
    lines.push(
      `cluster {`,
      `  name: strata`,
      `  listen: ${host}:${spec.clusterPort}`,
      `  routes: [${(spec.routes ?? []).map(routeUrl).join(', ')}]`,
      ...(spec.tls === undefined ? [] : [`  tls {`, ...tlsLines(spec.tls).map((l) => `  ${l}`), `    timeout: 2`, `  }`]),
      `}`,
    );
  }
  if (spec.authorization !== undefined) lines.push(spec.authorization.trimEnd());
  return lines.join('\n') + '\n';
}

export class NatsServerProcess {
  readonly url: string;
  private child: ChildProcess | undefined;
  private exitedPromise: Promise<void> = Promise.resolve();
  private readonly recent: string[] = [];
  private readonly configFile: string;

  constructor(private spec_: NatsServerSpec) {
    this.url = `nats://${hostOf(spec_)}:${spec_.port}`;
    mkdirSync(spec_.dir, { recursive: true });
    this.configFile = join(spec_.dir, 'nats.conf');
    this.writeConfig();
  }

  get spec(): NatsServerSpec {
    return this.spec_;
  }

  /** The config holds passwords: readable by its owner alone. */
  private writeConfig(): void {
    writeFileSync(this.configFile, configText(this.spec_), { mode: 0o600 });
    chmodSync(this.configFile, 0o600);
  }

  /**
   * Rewrites the config with another users block; a running server applies it on
   * SIGHUP (a reload), one started later reads it at start.
   */
  setAuthorization(authorization: string): void {
    this.spec_ = { ...this.spec_, authorization };
    this.writeConfig();
  }

  /** The monitoring endpoint, when the spec asked for one. */
  get monitorUrl(): string | undefined {
    return this.spec.monitorPort === undefined ? undefined : `http://${hostOf(this.spec)}:${this.spec.monitorPort}`;
  }

  get name(): string {
    return this.spec.name;
  }

  get port(): number {
    return this.spec.port;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * The command that runs this server (its config file names ports and store), for a
   * supervisor that runs and restarts it itself instead of start().
   */
  command(): { command: string; args: string[] } {
    checkServerVersion();
    return { command: natsServerBinary(), args: ['-c', this.configFile] };
  }

  /** The child, for callers that track processes themselves. */
  process(): ChildProcess | undefined {
    return this.child;
  }

  /** Starts the server and waits (at most `timeoutMs`) until it accepts clients. */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.isRunning()) throw new Error(`nats-server ${this.name} is already running`);
    if (this.spec.binary === undefined) checkServerVersion();
    const [command, ...args] = [...(this.spec.launcher ?? []), this.spec.binary ?? natsServerBinary(), '-c', this.configFile];
    const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.recent.push(chunk.toString());
      if (this.recent.length > 100) this.recent.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    this.exitedPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (spawnError !== undefined) {
        const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
        throw new Error(missing ? `${natsServerBinary()} not found: run infra/scripts/ensure-deps.sh (it installs nats-server ${NATS_SERVER_MIN_VERSION} or later), set NATS_SERVER_BIN, or set NATS_URL to an existing cluster` : `cannot start nats-server: ${spawnError.message}`);
      }
      if (!this.isRunning() && child.exitCode !== null) throw new Error(`nats-server ${this.name} exited at start: ${this.output().slice(-2000)}`);
      try {
        const nc = await connect({ servers: this.url, reconnect: false, timeout: 500, ...securityOptions(this.spec.probe ?? {}) });
        await nc.close();
        return;
      } catch {
        if (Date.now() >= deadline) throw new Error(`nats-server ${this.name} did not accept clients within ${timeoutMs} ms: ${this.output().slice(-2000)}`);
        await sleep(50);
      }
    }
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.isRunning()) process.kill(pid, sig);
  }

  /** Resolves when the process has exited. */
  exited(): Promise<void> {
    return this.exitedPromise;
  }

  /** SIGTERM (SIGCONT first, in case it is paused), then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.isRunning()) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exitedPromise;
    clearTimeout(timer);
  }

  /** The server's recent output, for error messages. */
  output(): string {
    return this.recent.join('');
  }
}

/**
 * Waits until JetStream answers account info (the meta group has a leader), also
 * while the servers are still starting and refuse connections. It connects as
 * `security`: by default the credentials of this process's environment.
 */
export async function waitForJetStream(url: string, timeoutMs = 30_000, security: ClientSecurity = clientSecurityFromEnv(process.env)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const nc = await connect({ servers: url.split(','), timeout: 2_000, reconnect: false, ...securityOptions(security) });
      try {
        const reply = await nc.request('$JS.API.INFO', undefined, { timeout: 1_000 });
        const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { description?: string } };
        if (info.error === undefined) return;
        lastError = new Error(info.error.description ?? 'JetStream is not ready');
      } finally {
        await nc.close();
      }
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw new Error(`JetStream at ${url} is not ready after ${timeoutMs} ms: ${(lastError as Error)?.message}`);
    await sleep(100);
  }
}

export interface NatsServersOptions {
  baseDir: string;
  count: number;
  /** Client ports (free ones when omitted). */
  ports?: number[];
  names?: string[];
  /** See NatsServerSpec.syncAlways (default true). */
  syncAlways?: boolean;
  /** Give each server a monitoring endpoint on a free port. */
  monitor?: boolean;
  /** See NatsServerSpec.binary. */
  binary?: string;
  /** See NatsServerSpec: TLS, users and who start() connects as. */
  tls?: TlsFiles;
  authorization?: string;
  probe?: ClientSecurity;
}

/**
 * `count` servers under `baseDir` (1: a lone server; more: one cluster routed over
 * loopback) with their config files written, not started.
 */
export async function planNatsServers(options: NatsServersOptions): Promise<NatsServerProcess[]> {
  const { baseDir, count } = options;
  // The route and monitor ports must not be the client ports the caller chose: those
  // are not bound yet, so they look free (seen: a route port on the third server's
  // client port, which then failed to bind).
  const picked = await freePorts(count + (count > 1 ? count : 0) + (options.monitor === true ? count : 0), new Set(options.ports ?? []));
  const ports = options.ports ?? picked.slice(0, count);
  const clusterPorts = count > 1 ? picked.slice(count, 2 * count) : [];
  const monitorPorts = options.monitor === true ? picked.slice(picked.length - count) : [];
  return ports.map((port, i) => {
    const name = options.names?.[i] ?? `s${i + 1}`;
    return new NatsServerProcess({
      name,
      port,
      dir: join(baseDir, name),
      ...(options.syncAlways === undefined ? {} : { syncAlways: options.syncAlways }),
      ...(options.monitor === true ? { monitorPort: monitorPorts[i] } : {}),
      ...(options.binary === undefined ? {} : { binary: options.binary }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
      ...(options.probe === undefined ? {} : { probe: options.probe }),
      ...(count > 1 ? { clusterPort: clusterPorts[i], routes: clusterPorts.filter((_, j) => j !== i) } : {}),
    });
  });
}

/** Starts the servers planNatsServers plans and waits for JetStream. */
export async function startNatsServers(options: NatsServersOptions): Promise<NatsServerProcess[]> {
  const servers = await planNatsServers(options);
  try {
    await Promise.all(servers.map((s) => s.start()));
    await waitForJetStream(servers.map((s) => s.url).join(','), 30_000, options.probe);
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  return servers;
}
