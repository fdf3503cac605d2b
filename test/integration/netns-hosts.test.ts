// The test-host harness (test/harness/netns.ts): three hosts in network namespaces on
// one machine, a nats-server in each forming one JetStream cluster over the hosts'
// addresses, and links cut and restored. It proves that:
//  - the servers route to each other over the bridge, and a replicated stream works;
//  - a cut between two hosts is silent and exact: each stops routing to the other and
//    keeps its route to the third;
//  - a host cut from everything cannot be reached from this machine either (a connect
//    times out: no reset, as in a real partition), the other two keep a quorum and
//    acknowledge writes; restored, it routes again and serves a client;
//  - destroy() leaves no namespace and no process behind.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { waitForJetStream, type NatsServerProcess } from '@strata/natsd';
import { HOST_NATS_PORTS, TestHosts, planHostNatsServers } from '../harness/netns';
import { waitFor } from '../harness';
import { plainBus } from '../harness/suite-security';

// This file's own nats-servers are plain (no TLS, no users): so are its clients.
plainBus();

interface Routez {
  routes?: Array<{ ip: string }>;
}

/** The addresses host `h` routes to now, from its monitoring endpoint. */
async function routesOf(hosts: TestHosts, h: string): Promise<string[]> {
  const res = await fetch(`http://${hosts.host(h).address}:${HOST_NATS_PORTS.monitor}/routez`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as Routez;
  return [...new Set((body.routes ?? []).map((r) => r.ip))].sort();
}

/** Whether a TCP connection to address:port opens within `ms`: 'open', 'refused' or 'timeout'. */
function probe(address: string, port: number, ms: number): Promise<'open' | 'refused' | 'timeout'> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (r: 'open' | 'refused' | 'timeout'): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(ms, () => done('timeout'));
    s.once('connect', () => done('open'));
    s.once('error', () => done('refused'));
    s.connect(port, address);
  });
}

describe('test hosts in network namespaces', () => {
  let hosts: TestHosts;
  let servers: NatsServerProcess[];
  /** A client of h1 and h2 only, for the set-up and the first cases. */
  let nc: NatsConnection;
  let dir: string;
  const addr = (h: string): string => hosts.host(h).address;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-netns-'));
    hosts = TestHosts.create(3);
    servers = planHostNatsServers(hosts, dir);
    await Promise.all(servers.map((s) => s.start()));
    await waitForJetStream(servers.map((s) => s.url).join(','));
    nc = await connect({ servers: servers.slice(0, 2).map((s) => s.url), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    await jetstreamManager(nc).then((jsm) => jsm.streams.add({ name: 'NETNS', subjects: ['netns.>'], num_replicas: 3 }));
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    const pids = servers?.map((s) => s.pid()).filter((p) => p !== undefined) ?? [];
    await Promise.all(servers?.map((s) => s.stop()) ?? []);
    const namespaces = hosts?.hosts.map((h) => h.ns) ?? [];
    await hosts?.destroy();
    rmSync(dir, { recursive: true, force: true });
    // Nothing left: no namespace, no process.
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(namespaces.filter((ns) => left.includes(ns))).toEqual([]);
    expect(pids.filter((pid) => isAlive(pid))).toEqual([]);
  }, 30_000);

  it('routes the servers over the bridge; a replicated stream acknowledges', async () => {
    expect(new Set(hosts.hosts.map((h) => h.address)).size).toBe(3);
    for (const h of ['h1', 'h2', 'h3']) {
      await waitFor(`${h} to route to both others`, 15_000, async () => (await routesOf(hosts, h)).length === 2);
    }
    expect(await routesOf(hosts, 'h1')).toEqual([addr('h2'), addr('h3')].sort());
    const ack = await jetstream(nc).publish('netns.a', 'one');
    expect(ack.stream).toBe('NETNS');
  }, 30_000);

  it('a cut between h1 and h2 drops exactly their route, silently; restored, it comes back', async () => {
    hosts.cut('h1', 'h2');
    await waitFor('h1 to stop routing to h2', 15_000, async () => {
      const r = await routesOf(hosts, 'h1');
      return !r.includes(addr('h2')) ? r : false;
    });
    await waitFor('h2 to stop routing to h1', 10_000, async () => !(await routesOf(hosts, 'h2')).includes(addr('h1')));
    expect(await routesOf(hosts, 'h1')).toEqual([addr('h3')]);
    expect(await routesOf(hosts, 'h2')).toEqual([addr('h3')]);
    expect((await routesOf(hosts, 'h3')).length).toBe(2);
    // This machine still reaches both.
    expect(await probe(addr('h1'), HOST_NATS_PORTS.client, 1_000)).toBe('open');
    expect(await probe(addr('h2'), HOST_NATS_PORTS.client, 1_000)).toBe('open');

    hosts.restore('h1', 'h2');
    await waitFor('h1 to route to h2 again', 20_000, async () => (await routesOf(hosts, 'h1')).includes(addr('h2')));
  }, 45_000);

  it('h3 cut from everything: unreachable (a connect times out), h1 and h2 keep a quorum; restored, h3 serves again', async () => {
    hosts.cut('h3');
    expect(await probe(addr('h3'), HOST_NATS_PORTS.client, 1_500)).toBe('timeout');
    await waitFor('h1 to stop routing to h3', 15_000, async () => !(await routesOf(hosts, 'h1')).includes(addr('h3')));
    // The stream's other two replicas still make a quorum: once they have a leader
    // (h3 may have led it), writes through h1 are acknowledged.
    const only1 = await connect({ servers: servers[0]!.url, timeout: 3_000 });
    // No account check up front: it times out while JetStream elects a meta leader (h3 may have led).
    const jsm1 = await jetstreamManager(only1, { checkAPI: false });
    const leader = await waitFor('the stream to have a leader on h1 or h2', 20_000, async () => {
      const info = await jsm1.streams.info('NETNS').catch(() => undefined);
      const name = info?.cluster?.leader;
      return name === 'nats-h1' || name === 'nats-h2' ? name : false;
    });
    const ack = await jetstream(only1).publish('netns.b', 'two', { timeout: 10_000 }).finally(() => only1.close());
    expect({ leader, seq: ack.seq }).toEqual({ leader: expect.stringMatching(/^nats-h[12]$/), seq: 2 });

    hosts.restore('h3');
    expect(await probe(addr('h3'), HOST_NATS_PORTS.client, 1_500)).toBe('open');
    await waitFor('h1 to route to h3 again', 20_000, async () => (await routesOf(hosts, 'h1')).includes(addr('h3')));
    const only3 = await connect({ servers: servers[2]!.url, timeout: 3_000 });
    try {
      // Routed again, h3 may not know the stream's interest for a moment: a publish
      // then reaches nobody ("no responders", nothing stored), and only that is retried.
      const again = await waitFor('a publish through h3 to be acknowledged', 20_000, () => jetstream(only3).publish('netns.c', 'three', { timeout: 10_000 }), { intervalMs: 250, retryIf: reachedNobody });
      expect(again.seq).toBe(ack.seq + 1);
    } finally {
      await only3.close();
    }
  }, 60_000);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A publish that reached no server holding the stream: "no responders" (nats.js says JetStream is not enabled). */
function reachedNobody(err: unknown): boolean {
  const e = err as { message?: string; cause?: { message?: string } };
  return /no responders/i.test(`${e.message ?? ''} ${e.cause?.message ?? ''}`);
}
