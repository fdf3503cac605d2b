// The NBD server: listens on TCP and, optionally, a unix socket, hands each accepted
// socket to an NbdConnection, bounds the number of connections, and on close stops
// listening and lets the connections finish what is in flight. Given TLS credentials,
// every connection must upgrade with NBD_OPT_STARTTLS and show a client certificate.
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { assert } from '@strata/errors';
import type { ExportCatalog } from '../backend';
import { NbdConnection, checkLimits, defaultConnectionLimits, silentLogger, type ConnectionLimits, type NbdHooks, type NbdLogger, type NbdTlsCredentials } from './connection';

export interface NbdServerOptions {
  catalog: ExportCatalog;
  log?: NbdLogger;
  hooks?: NbdHooks;
  /** Connections served at once; beyond it a new one is closed on accept. */
  connectionsMax?: number;
  limits?: Partial<ConnectionLimits>;
  /** Called when the number of open connections changes (for a gauge). */
  onConnectionCount?(count: number): void;
  /** FORCEDTLS: every client must NBD_OPT_STARTTLS and present a certificate from `tls.ca`. Plain when undefined. */
  tls?: NbdTlsCredentials;
}

export interface TcpAddress {
  host: string;
  port: number;
}

export class NbdServer {
  private readonly catalog: ExportCatalog;
  private readonly log: NbdLogger;
  private readonly hooks: NbdHooks;
  private readonly limits: ConnectionLimits;
  private readonly connectionsMax: number;
  private readonly onConnectionCount: ((count: number) => void) | undefined;
  private readonly tls: NbdTlsCredentials | undefined;
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<NbdConnection>();
  private closing = false;

  constructor(options: NbdServerOptions) {
    this.catalog = options.catalog;
    this.log = options.log ?? silentLogger;
    this.hooks = options.hooks ?? {};
    this.limits = { ...defaultConnectionLimits, ...options.limits };
    checkLimits(this.limits);
    this.connectionsMax = options.connectionsMax ?? 128;
    assert(Number.isSafeInteger(this.connectionsMax) && this.connectionsMax > 0, 'connectionsMax must be a positive integer');
    this.onConnectionCount = options.onConnectionCount;
    this.tls = options.tls;
    // Bad PEM is a configuration error: found at start-up, not at the first client.
    if (this.tls !== undefined) createSecureContext(this.tls);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Listens on `host:port` (port 0: any free port); resolves with the bound address. */
  async listenTcp(port: number, host = '127.0.0.1'): Promise<TcpAddress> {
    const server = await this.listen((s, done) => s.listen({ port, host }, done));
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'a TCP listener has an address');
    return { host: address.address, port: address.port };
  }

  /** Listens on a unix socket; a stale socket file left by a dead gateway is removed first. */
  async listenUnix(path: string): Promise<string> {
    await removeStaleSocket(path);
    await this.listen((s, done) => s.listen({ path }, done));
    return path;
  }

  private async listen(start: (server: Server, done: () => void) => void): Promise<Server> {
    assert(!this.closing, 'listen after close');
    // allowHalfOpen: a client that shuts down its sending side still gets its replies.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      start(server, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'NBD listener failed'));
    this.listeners.push(server);
    return server;
  }

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= this.connectionsMax) {
      this.log.warn({ remote: socket.remoteAddress, connections: this.connections.size, connectionsMax: this.connectionsMax }, 'connection refused: server full or closing');
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const connection = new NbdConnection(socket, this.catalog, this.limits, this.log, this.hooks, this.tls);
    this.connections.add(connection);
    this.onConnectionCount?.(this.connections.size);
    this.log.debug({ conn: connection.id, remote: connection.remote }, 'connection accepted');
    void connection.run();
    void connection.closed.then(() => {
      this.connections.delete(connection);
      this.onConnectionCount?.(this.connections.size);
      this.log.debug({ conn: connection.id, remote: connection.remote }, 'connection closed');
    });
  }

  /** Stops listening, gives connections `graceMs` to answer what is in flight, then closes them. */
  async close(graceMs = 5_000): Promise<void> {
    this.closing = true;
    const stopped = this.listeners.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    await Promise.all([...this.connections].map((c) => c.shutdown(graceMs)));
    await Promise.all(stopped);
    this.listeners.length = 0;
  }
}

/** Removes `path` if it is a socket nobody listens on; refuses to touch anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new Error(`${path} is in use by another process`);
  unlinkSync(path);
}
