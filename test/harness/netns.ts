// Test hosts on one machine: each host is a network namespace with its own network
// stack (its own loopback and ports), joined to the others by a veth pair on a bridge
// in this machine's namespace, with an address each on a private /24. Processes run
// in a host with `ip netns exec`; the test process itself reaches every host over the
// bridge. Links can be cut and restored between any two hosts, or between one host
// and everything else.
//
// A cut is silent, as a real partition is: the route to the peer points at an
// address on the subnet that no one has, with a permanent neighbour entry for a MAC
// that no one has, so frames leave and are dropped by the bridge (no error, no reset:
// connections time out). This needs only iproute2 (no netem, no iptables): the
// kernels of these machines have neither tc actions nor netem.
//
// Everything is named after this process's PID (namespaces `strata-<pid>-h<i>`,
// bridge `sb<pid>`, veths `sv<pid>h<i>`), so a later run removes what a killed run
// left (its PID no longer alive). Needs root.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { NatsServerProcess, type NatsServerSpec } from '@strata/natsd';
import { startProgram, type ActorProcess, type StartOptions } from './processes';

/** Silently dropped: an address of the subnet no one holds, and a MAC no one has. */
const VOID_HOST = 250;
const VOID_MAC = '02:00:00:00:00:fa';
const BRIDGE_HOST = 254;
const NS_PREFIX = 'strata-';

export interface TestHost {
  /** h1, h2, ... */
  name: string;
  /** The network namespace. */
  ns: string;
  /** Its address on the bridge (10.231.N.i). */
  address: string;
  /** The command prefix that runs a program in the host: `ip netns exec <ns>`. */
  launcher: string[];
}

function ip(args: string[], ns?: string): string {
  const argv = ns === undefined ? args : ['netns', 'exec', ns, 'ip', ...args];
  try {
    return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${argv.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the namespaces and bridge of earlier runs whose process is gone. */
export function removeStaleHosts(): string[] {
  const removed: string[] = [];
  const pids = new Set<number>();
  for (const line of ip(['netns', 'list']).split('\n')) {
    const m = /^(strata-(\d+)-h\d+)\b/.exec(line.trim());
    if (m === null || isAlive(Number(m[2]))) continue;
    ip(['netns', 'del', m[1]!]);
    removed.push(m[1]!);
    pids.add(Number(m[2]));
  }
  for (const pid of pids) {
    try {
      ip(['link', 'del', `sb${pid}`]);
    } catch {
      // Already gone.
    }
  }
  return removed;
}

/** A /24 in 10.231.0.0/16 that no route of this machine uses. */
function freeSubnet(): string {
  const routes = ip(['-4', 'route', 'show', 'table', 'all']);
  for (let k = 0; k < 250; k++) {
    const n = ((process.pid + k) % 250) + 1;
    const prefix = `10.231.${n}.`;
    if (!routes.includes(prefix)) return prefix;
  }
  throw new Error('no free /24 in 10.231.0.0/16 for the test hosts');
}

/** Whether `pid` runs: it exists and is not a zombie waiting for its parent. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class TestHosts {
  private readonly processes: ActorProcess[] = [];

  private constructor(
    readonly hosts: TestHost[],
    /** "10.231.N." */
    readonly prefix: string,
    readonly bridge: string,
  ) {}

  /** `count` hosts h1..hN on a new bridge. */
  static create(count: number): TestHosts {
    if (process.getuid?.() !== 0) throw new Error('test hosts in network namespaces need root');
    removeStaleHosts();
    const pid = process.pid;
    const prefix = freeSubnet();
    const bridge = `sb${pid}`;
    const hosts: TestHost[] = [];
    const made = new TestHosts(hosts, prefix, bridge);
    try {
      ip(['link', 'add', bridge, 'type', 'bridge']);
      ip(['addr', 'add', `${prefix}${BRIDGE_HOST}/24`, 'dev', bridge]);
      ip(['link', 'set', bridge, 'up']);
      ip(['neigh', 'replace', `${prefix}${VOID_HOST}`, 'lladdr', VOID_MAC, 'dev', bridge, 'nud', 'permanent']);
      for (let i = 1; i <= count; i++) hosts.push(addHost(pid, i, prefix, bridge));
    } catch (err) {
      made.removeNetwork();
      throw err;
    }
    return made;
  }

  host(name: string): TestHost {
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined) throw new Error(`no test host ${name}; there are ${this.hosts.map((x) => x.name).join(', ')}`);
    return h;
  }

  /** This machine's address on the bridge: what the hosts see the test process as. */
  get bridgeAddress(): string {
    return `${this.prefix}${BRIDGE_HOST}`;
  }

  /** Starts `command` in `host`; stopped (by PID) by destroy() if still running. */
  spawn(host: string, command: string, args: string[], options: StartOptions = {}): ActorProcess {
    const p = startProgram('ip', ['netns', 'exec', this.host(host).ns, command, ...args], options);
    this.processes.push(p);
    return p;
  }

  /**
   * Cuts the links between hosts `a` and `b`, or, with `b` omitted, between `a` and
   * every other host and this machine. Idempotent.
   */
  cut(a: string, b?: string): void {
    for (const [from, to] of this.pairs(a, b)) {
      this.route(from, to, 'replace');
      this.route(to, from, 'replace');
    }
  }

  /** Restores what cut(a, b) cut. Idempotent. */
  restore(a: string, b?: string): void {
    for (const [from, to] of this.pairs(a, b)) {
      this.route(from, to, 'del');
      this.route(to, from, 'del');
    }
  }

  /**
   * Stops every process started in a host (SIGTERM, SIGKILL after 5 s), kills by PID
   * whatever else still runs in the hosts (children they left), then removes the hosts
   * and the bridge.
   */
  async destroy(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(5_000).catch(() => undefined)));
    const killed: number[] = [];
    for (const h of this.hosts) {
      for (const pid of pidsIn(h.ns)) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
        } catch {
          // Gone meanwhile.
        }
      }
    }
    // A killed process takes a moment to exit: wait (bounded) until none runs.
    const deadline = Date.now() + 10_000;
    while (killed.some(isRunning) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.removeNetwork();
  }

  /** The PIDs of every process running in `host`. */
  pids(host: string): number[] {
    return pidsIn(this.host(host).ns);
  }

  /** The (host, peer) pairs a cut names; the peer "" is this machine. */
  private pairs(a: string, b: string | undefined): Array<[string, string]> {
    this.host(a);
    if (b !== undefined) return [[a, this.host(b).name]];
    return [...this.hosts.filter((h) => h.name !== a).map((h): [string, string] => [a, h.name]), [a, '']];
  }

  /** In `from` (a host, or "" for this machine), the route to `to` sent to the void, or removed. */
  private route(from: string, to: string, op: 'replace' | 'del'): void {
    const target = `${to === '' ? this.bridgeAddress : this.host(to).address}/32`;
    const ns = from === '' ? undefined : this.host(from).ns;
    const dev = from === '' ? this.bridge : 'eth0';
    if (op === 'replace') ip(['route', 'replace', target, 'via', `${this.prefix}${VOID_HOST}`, 'dev', dev, 'onlink'], ns);
    else {
      try {
        ip(['route', 'del', target], ns);
      } catch {
        // Not cut.
      }
    }
  }

  private removeNetwork(): void {
    for (const h of this.hosts) {
      try {
        ip(['netns', 'del', h.ns]);
      } catch {
        // Not made.
      }
    }
    try {
      ip(['link', 'del', this.bridge]);
    } catch {
      // Not made.
    }
  }
}

function pidsIn(ns: string): number[] {
  try {
    return ip(['netns', 'pids', ns])
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Host i: a namespace with loopback up and eth0 (one end of a veth) on the bridge. */
function addHost(pid: number, i: number, prefix: string, bridge: string): TestHost {
  const ns = `${NS_PREFIX}${pid}-h${i}`;
  const outside = `sv${pid}h${i}`;
  const inside = `sp${pid}h${i}`;
  const address = `${prefix}${i}`;
  ip(['netns', 'add', ns]);
  ip(['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
  ip(['link', 'set', inside, 'netns', ns]);
  ip(['link', 'set', outside, 'master', bridge]);
  ip(['link', 'set', outside, 'up']);
  ip(['link', 'set', 'lo', 'up'], ns);
  ip(['link', 'set', inside, 'name', 'eth0'], ns);
  ip(['addr', 'add', `${address}/24`, 'dev', 'eth0'], ns);
  ip(['link', 'set', 'eth0', 'up'], ns);
  ip(['neigh', 'replace', `${prefix}${VOID_HOST}`, 'lladdr', VOID_MAC, 'dev', 'eth0', 'nud', 'permanent'], ns);
  return { name: `h${i}`, ns, address, launcher: ['ip', 'netns', 'exec', ns] };
}

/** Client, cluster and monitoring ports of a host's nats-server: each host has its own stack. */
export const HOST_NATS_PORTS = { client: 14222, cluster: 16222, monitor: 18222 } as const;

/**
 * One nats-server per host, forming one NATS cluster over the hosts' addresses
 * (JetStream, fsync before every acknowledgement, as `strata up` runs them); its
 * config and store under `dir/<host>`; with `security`, TLS and users. Not started.
 */
export function planHostNatsServers(hosts: TestHosts, dir: string, security: Pick<NatsServerSpec, 'tls' | 'authorization' | 'probe'> = {}): NatsServerProcess[] {
  const { client, cluster, monitor } = HOST_NATS_PORTS;
  return hosts.hosts.map(
    (h) =>
      new NatsServerProcess({
        name: `nats-${h.name}`,
        host: h.address,
        port: client,
        clusterPort: cluster,
        monitorPort: monitor,
        routes: hosts.hosts.filter((o) => o !== h).map((o) => `${o.address}:${cluster}`),
        dir: join(dir, h.name),
        launcher: h.launcher,
        ...security,
      }),
  );
}
