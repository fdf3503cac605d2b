// Real nats-server processes for tests: one server, or a three-server JetStream
// cluster routed over loopback, each on free ports with its own temporary store
// directory, stopped by PID (and killed by the harness if a test forgets). Never
// touches port 4222, where the machine may run a server of its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { clientSecurityFromEnv, securityOptions, startNatsServers, type ClientSecurity, type NatsServerProcess, type TlsFiles } from '@strata/natsd';
import { suiteServerOptions } from './suite-security';
import { track, untrack } from './util';

export interface NatsTopology {
  kind: 'single' | 'cluster';
  /** Comma-separated URLs of every server, as NATS_URL takes them. */
  url: string;
  /** Their monitoring endpoints, comma-separated, as STRATA_NATS_MONITOR_URL takes them. */
  monitorUrls: string;
  servers: NatsServerProcess[];
  /** How clients connect to them: the suite's admin over TLS, or nothing on plain servers. */
  security: ClientSecurity;
  /** Restarts a server that was killed, on the same port and store. */
  restart(server: NatsServerProcess): Promise<void>;
  stop(): Promise<void>;
}

function trackServer(server: NatsServerProcess): void {
  const child = server.process();
  if (child === undefined) return;
  track(child);
  child.once('exit', () => untrack(child));
}

/** Servers that take TLS and named users only (permissions.ts), and who the harness connects as to see them up. */
export interface SecureServers {
  tls: TlsFiles;
  authorization: string;
  probe: ClientSecurity;
}

/** The suite's servers: TLS and the admin (suite-security.ts), or plain ones when the suite runs insecure. */
function suiteServers(): SecureServers | undefined {
  const o = suiteServerOptions();
  return o.tls === undefined ? undefined : (o as SecureServers);
}

/**
 * The topology a test asks for: `single` (one server) or `cluster` (three), with the
 * suite's TLS and users, or with `secure`'s (a test of the permissions themselves).
 */
export async function startTopology(kind: 'single' | 'cluster', secure: SecureServers | undefined = suiteServers()): Promise<NatsTopology> {
  const baseDir = mkdtempSync(join(tmpdir(), `strata-nats-${kind}-`));
  const servers = await startNatsServers({ baseDir, count: kind === 'single' ? 1 : 3, monitor: true, ...secure });
  servers.forEach(trackServer);
  return {
    kind,
    url: servers.map((s) => s.url).join(','),
    monitorUrls: servers.map((s) => s.monitorUrl).join(','),
    servers,
    security: secure?.probe ?? {},
    restart: async (server) => {
      await server.start();
      trackServer(server);
    },
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(baseDir, { recursive: true, force: true });
    },
  };
}

/** Connects a NATS client for tests that poke the bus directly: as `security`, by default the suite's (from the environment). */
export async function connectClient(url: string, security: ClientSecurity = clientSecurityFromEnv(process.env)): Promise<NatsConnection> {
  return connect({ servers: url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200, ...securityOptions(security) });
}
