// Starts real nats-server processes for tests: one server, or a three-server
// JetStream cluster routed over loopback, each on free ports with its own
// temporary store directory, and stops them by PID. Never touches port 4222.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, sleep, track, untrack, waitFor } from './util';

export interface NatsServer {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly storeDir: string;
  pid(): number | undefined;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT) to the server process. */
  signal(sig: NodeJS.Signals): void;
  /** Starts the server again on the same ports and store (after a kill). */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL after 5 s; waits for the exit. */
  stop(): Promise<void>;
}

export interface NatsCluster {
  readonly servers: NatsServer[];
  /** Comma-separated URLs of every server, as NATS_URL takes them. */
  readonly url: string;
  stop(): Promise<void>;
}

export interface NatsTopology {
  kind: 'single' | 'cluster';
  url: string;
  servers: NatsServer[];
  stop(): Promise<void>;
}

function natsServerBinary(): string {
  return process.env.NATS_SERVER_BIN ?? 'nats-server';
}

interface ServerSpec {
  name: string;
  port: number;
  clusterPort?: number;
  routes?: number[];
  dir: string;
}

function writeConfig(spec: ServerSpec): string {
  const lines = [
    `server_name: ${spec.name}`,
    `listen: 127.0.0.1:${spec.port}`,
    // Room for 1 MiB payloads plus headers and envelope.
    `max_payload: 8MB`,
    `jetstream {`,
    `  store_dir: "${join(spec.dir, 'js')}"`,
    `  max_memory_store: 256MB`,
    `  max_file_store: 4GB`,
    `}`,
  ];
  if (spec.clusterPort !== undefined) {
    lines.push(
      `cluster {`,
      `  name: strata-test`,
      `  listen: 127.0.0.1:${spec.clusterPort}`,
      `  routes: [${(spec.routes ?? []).map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}]`,
      `}`,
    );
  }
  const file = join(spec.dir, 'nats.conf');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

class ServerProcess implements NatsServer {
  readonly url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: string[] = [];

  constructor(
    readonly name: string,
    readonly port: number,
    readonly storeDir: string,
    private readonly configFile: string,
  ) {
    this.url = `nats://127.0.0.1:${port}`;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const child = spawn(natsServerBinary(), ['-c', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    track(child);
    const collect = (chunk: Buffer): void => {
      this.log.push(chunk.toString());
      if (this.log.length > 200) this.log.shift();
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        untrack(child);
        resolve();
      }),
    );
    child.once('error', (err) => this.log.push(`spawn failed: ${err.message}`));
    await waitFor(`nats-server ${this.name} to accept connections`, 15_000, async () => {
      if (child.exitCode !== null) throw new Error(`nats-server ${this.name} exited: ${this.log.join('').slice(-2000)}`);
      try {
        const nc = await connect({ servers: this.url, reconnect: false, timeout: 500 });
        await nc.close();
        return true;
      } catch {
        return false;
      }
    });
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null) process.kill(pid, sig);
  }

  async restart(): Promise<void> {
    if (this.child?.exitCode === null) throw new Error(`nats-server ${this.name} is still running`);
    await this.start();
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** The server's recent output, for failure messages. */
  output(): string {
    return this.log.join('');
  }
}

async function startServer(spec: ServerSpec): Promise<ServerProcess> {
  const server = new ServerProcess(spec.name, spec.port, spec.dir, writeConfig(spec));
  await server.start();
  return server;
}

/** Waits until JetStream answers account info, i.e. the meta group has a leader. */
export async function waitForJetStream(url: string, timeoutMs = 30_000): Promise<void> {
  const nc = await connect({ servers: url.split(','), timeout: 2_000 });
  try {
    await waitFor('JetStream meta leader', timeoutMs, async () => {
      try {
        const reply = await nc.request('$JS.API.INFO', undefined, { timeout: 1_000 });
        const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: unknown };
        return info.error === undefined;
      } catch {
        return false;
      }
    });
  } finally {
    await nc.close();
  }
}

/** One nats-server with JetStream on a free loopback port. */
export async function startNatsServer(name = 'solo'): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), `strata-nats-${name}-`));
  const server = await startServer({ name, port: await freePort(), dir });
  await waitForJetStream(server.url);
  return withCleanup(server, dir);
}

function withCleanup(server: ServerProcess, dir: string): NatsServer {
  const stop = server.stop.bind(server);
  server.stop = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return server;
}

/** Three nats-servers routed into one JetStream cluster on loopback. */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const servers = await Promise.all(
    ports.map(async (port, i) => {
      const name = `s${i + 1}`;
      const dir = mkdtempSync(join(tmpdir(), `strata-nats-${name}-`));
      const server = await startServer({
        name,
        port,
        clusterPort: clusterPorts[i],
        routes: clusterPorts.filter((_, j) => j !== i),
        dir,
      });
      return withCleanup(server, dir);
    }),
  );
  const url = servers.map((s) => s.url).join(',');
  await waitForJetStream(url);
  return {
    servers,
    url,
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** The topology a test asked for: `single` (one server) or `cluster` (three). */
export async function startTopology(kind: 'single' | 'cluster'): Promise<NatsTopology> {
  if (kind === 'single') {
    const server = await startNatsServer();
    return { kind, url: server.url, servers: [server], stop: () => server.stop() };
  }
  const cluster = await startNatsCluster(3);
  return { kind, url: cluster.url, servers: cluster.servers, stop: () => cluster.stop() };
}

/** Connects a plain NATS client (for tests that poke the bus directly). */
export async function connectClient(url: string): Promise<NatsConnection> {
  return connect({ servers: url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
}

export { sleep };
