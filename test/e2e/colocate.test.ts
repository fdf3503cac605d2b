// `strata up --nodes 2` in its default layout: each node's six actors in one node-host
// process, driven with real NBD clients (qemu-io) through both nodes' gateways. It
// proves that:
//  - strata up says it runs that layout and why, and runs one process per node for the
//    actors, whose command line names node-host, the node (`--node n1`, `--node n2`)
//    and the six actors (so `pgrep -f vdisk-controller` finds the node-hosts), and no
//    per-actor process;
//  - patterns written through either node's gateway read back through both;
//  - the I/O used in-process dispatch: in the span file every process writes
//    (STRATA_TRACE_FILE), a write through the owner's gateway has its io-director,
//    admission and vdisk-controller handler spans marked `strata.local`, each the child
//    of the request span before it, all in the node-host service; a write through the
//    other node's gateway reaches the owner's admission over NATS, without the marker,
//    so the marker is not set blindly;
//  - SIGTERM of a node-host stops its actors in reverse start order and exits 0, the
//    supervisor restarts it, and the data reads back through its gateway;
//  - a bad setting of any one actor stops node-host before anything starts, exit 2,
//    naming the actor and the setting; so does an unknown actor in --actors;
//  - `strata up --separate --nodes 1` runs one process per actor instead, each naming
//    its node, and says so.
// Every wait is bounded; afterAll stops `strata up` and kills by PID whatever it left.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSpanFile, type OtlpSpanRecord } from '@strata/tracing/testing';
import { children, freePort, killIfUnchanged, qemuIo, run, startNode, waitFor, type ActorProcess } from '../harness';
import { isLineBeingWritten, qemuIoChecked } from '../harness/verify';
import { seedUpAuth } from '../harness/suite-security';

/** The last lines of a node-host's log, for a failure message. */
function logTail(dir: string, node: string): string {
  try {
    return readFileSync(join(dir, 'logs', `${node}-node-host.log`), 'utf8').slice(-3_000);
  } catch {
    return '(no log)';
  }
}

/** The spans of one trace, by name. */
function byName(spans: OtlpSpanRecord[], name: string): OtlpSpanRecord[] {
  return spans.filter((s) => s.name === name);
}

/**
 * A trace of a write entered at `entry`'s gateway and served by `owner`'s controller
 * in which each hop's handler span is the child of its request span. Returns the
 * handler spans of the three hops, or undefined if no trace has the whole chain.
 */
function findWriteChain(spans: OtlpSpanRecord[], entry: string, owner: string): { io: OtlpSpanRecord; adm: OtlpSpanRecord; vdc: OtlpSpanRecord; trace: OtlpSpanRecord[] } | undefined {
  const traces = new Map<string, OtlpSpanRecord[]>();
  for (const s of spans) traces.set(s.traceId, [...(traces.get(s.traceId) ?? []), s]);
  const hop = (trace: OtlpSpanRecord[], subject: string, parent: OtlpSpanRecord | undefined): OtlpSpanRecord | undefined => {
    // Admission dispatches to the controller under its `admission queue wait` span, a child of its handler span.
    const parents = new Set(parent === undefined ? [] : [parent.spanId, ...byName(trace, 'admission queue wait').filter((w) => w.parentSpanId === parent.spanId).map((w) => w.spanId)]);
    const request = byName(trace, `request ${subject}`).find((r) => parent === undefined || parents.has(r.parentSpanId ?? ''));
    return request === undefined ? undefined : byName(trace, `handle ${subject}`).find((h) => h.parentSpanId === request.spanId);
  };
  for (const trace of traces.values()) {
    const io = hop(trace, `strata.io.${entry}.write`, undefined);
    const adm = hop(trace, `strata.adm.${owner}.write`, io);
    const vdc = hop(trace, `strata.vdc.${owner}.write`, adm);
    if (io !== undefined && adm !== undefined && vdc !== undefined) return { io, adm, vdc, trace };
  }
  return undefined;
}

/** The PIDs among `parent`'s children whose command line matches `pattern` (`pgrep -P parent -f pattern`). */
async function pgrepChildren(parent: number, pattern: string): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-P', String(parent), '-f', pattern], { timeoutMs: 5_000 });
  return stdout
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number)
    .sort((a, b) => a - b);
}

const NODE_ACTORS = ['metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway'];

describe('strata up (default layout): one process per node, in-process dispatch between its actors', () => {
  let dir: string;
  let spanFile: string;
  let nbdPort: number;
  let up: ActorProcess | undefined;
  let started = new Map<number, string>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-e2e-colocate-'));
    spanFile = join(dir, 'spans.jsonl');
    nbdPort = await freePort();
    const natsPort = await freePort();
    // The suite's admin, so this process's clients (and the CLI) reach the cluster.
    seedUpAuth(dir);
    up = startNode('cli/dist/main.js', ['--dir', dir, 'up', '--nodes', '2', '--nbd-port', String(nbdPort), '--nats-port', String(natsPort), '--config-replicas', '1'], {
      name: 'strata up',
      env: { NATS_URL: '', STRATA_TRACE_FILE: spanFile, STRATA_DRAIN_IDLE_MS: '200' },
    });
    try {
      await up.waitForOutput(/^ready$/m, 90_000);
    } finally {
      // Whatever started, even if not ready: afterAll kills these by PID.
      started = new Map((await children(up.pid())).map((c) => [c.pid, c.args]));
    }
  });

  afterAll(async () => {
    await up?.stop(15_000);
    killIfUnchanged(started);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs one node-host process per node, each naming its node and its actors, and no process per actor', async () => {
    expect(up!.output()).toMatch(/^starting 2 nodes: each node's actors in one node-host process \(the default: .+; --separate runs one process per actor\)$/m);
    const procs = await children(up!.pid());
    const hosts = procs.filter((p) => p.args.includes('node-host'));
    expect(hosts).toHaveLength(2);
    expect(hosts.map((h) => h.args.match(/--node (n\d+)/)?.[1]).sort()).toEqual(['n1', 'n2']);
    for (const h of hosts) expect(h.args).toMatch(new RegExp(` --actors ${NODE_ACTORS.join(',')}( |$)`));
    // pgrep -f vdisk-controller finds the processes that host a controller: the node-hosts.
    expect(await pgrepChildren(up!.pid(), 'vdisk-controller')).toEqual(hosts.map((h) => h.pid).sort((a, b) => a - b));
    expect(procs.filter((p) => /services\/(metadata-shard|extent-store|vdisk-controller|admission|io-director|gateway)\//.test(p.args))).toEqual([]);
    // Besides the node hosts: the embedded nats-server, the one config replica, the HA
    // agent of each node's host (a host's agent, not one of the node's actors) and each
    // node's curator (a process of its own, off the I/O path).
    const role = (p: { args: string }): string =>
      p.args.includes('nats-server')
        ? 'nats-server'
        : p.args.includes('services/config/')
          ? 'config'
          : /services\/ha-agent\/.* --host (n\d+)/.test(p.args)
            ? `ha-agent ${/--host (n\d+)/.exec(p.args)![1]}`
            : /services\/curator\/.* --node (n\d+)/.test(p.args)
              ? `curator ${/--node (n\d+)/.exec(p.args)![1]}`
              : p.args;
    const others = procs.filter((p) => !p.args.includes('node-host')).map(role);
    expect(others.sort()).toEqual(['config', 'curator n1', 'curator n2', 'ha-agent n1', 'ha-agent n2', 'nats-server']);
    // Each node's six actors started in its one process.
    for (const node of ['n1', 'n2']) {
      const log = logTail(dir, node);
      expect(readFileSync(join(dir, 'logs', `${node}-node-host.log`), 'utf8')).toMatch(/"msg":"node-host started"/);
      expect(log).not.toMatch(/"level":"fatal"/);
    }
  });

  it('reads back through both gateways what was written through each', async () => {
    // A shared vDisk: I/O entering a node that does not own it is forwarded to the
    // owner (an unshared one would move to that node instead, by relinquish).
    const created = await run(process.execPath, ['cli/dist/main.js', '--dir', dir, 'vdisk', 'create', 'both', '--size', '64M', '--shared'], { timeoutMs: 30_000 });
    expect(created.stdout + created.stderr).toMatch(/vdisk both created/);
    const n1 = `nbd://127.0.0.1:${nbdPort}/both`;
    const n2 = `nbd://127.0.0.1:${nbdPort + 1}/both`;
    // The first gateway to open it claims it for its node: n1.
    await qemuIo(n1, ['write -P 0x5a 0 64k', 'write -P 0x3c 1m 4k']);
    await qemuIo(n2, ['write -P 0xa5 2m 64k', 'write -P 0x3d 1m 512']);
    for (const uri of [n1, n2]) {
      await qemuIo(uri, ['read -P 0x5a 0 64k', 'read -P 0xa5 2m 64k', 'read -P 0x3d 1m 512', 'read -P 0x3c 1049088 3584', 'read -P 0 4m 64k']);
    }
  });

  it('dispatched the I/O in-process: the owner node hops are local, the forwarded hop went over NATS', async () => {
    // Spans are written as each ends; the last write's reply came after its handler spans ended.
    const spans = await waitFor(
      'write traces in the span file',
      10_000,
      async () => {
        const all = await readSpanFile(spanFile);
        return all.some((s) => s.name === 'handle strata.vdc.n1.write') ? all : false;
      },
      { retryIf: isLineBeingWritten },
    );
    const owner = findWriteChain(spans, 'n1', 'n1');
    if (owner === undefined) throw new Error(`no n1 → n1 write chain among ${spans.length} spans: ${[...new Set(spans.map((s) => s.name))].join(', ')}; n1 log: ${logTail(dir, 'n1')}`);
    for (const handler of [owner.io, owner.adm, owner.vdc]) {
      expect({ name: handler.name, local: handler.attributes['strata.local'], service: handler.serviceName }).toEqual({ name: handler.name, local: true, service: 'node-host' });
    }
    // The whole hop chain is in one process's service: every span of it is node-host's.
    expect(new Set(owner.trace.filter((s) => /^(request|handle) strata\.(io|adm|vdc)\./.test(s.name)).map((s) => s.serviceName))).toEqual(new Set(['node-host']));

    // Through n2's gateway: n2's director is local to its gateway, then forwards to n1's
    // admission over NATS, whose controller is local again.
    const forwarded = findWriteChain(spans, 'n2', 'n1');
    if (forwarded === undefined) throw new Error(`no n2 → n1 write chain; n2 log: ${logTail(dir, 'n2')}`);
    expect(forwarded.io.attributes['strata.local']).toBe(true);
    expect(forwarded.adm.attributes['strata.local']).toBeUndefined();
    expect(forwarded.vdc.attributes['strata.local']).toBe(true);
  });

  it('stops a node\'s actors in reverse start order on SIGTERM, exits 0, and comes back under the supervisor', async () => {
    const host = (await children(up!.pid())).find((p) => /node-host\/dist\/main\.js --node n1( |$)/.test(p.args));
    if (host === undefined) throw new Error('no node-host process for n1');
    process.kill(host.pid, 'SIGTERM');
    await up!.waitForOutput(/n1-node-host exited \(code 0\); restarting/, 15_000);
    const log = readFileSync(join(dir, 'logs', 'n1-node-host.log'), 'utf8');
    const stopped = [...log.matchAll(/"msg":"([a-z-]+) stopped"/g)].map((m) => m[1]);
    expect(stopped).toEqual(['gateway', 'io-director', 'admission', 'vdisk-controller', 'extent-store', 'metadata-shard', 'node-host']);
    const restarted = await waitFor('n1 to be a node-host process again', 15_000, async () => (await children(up!.pid())).find((p) => /--node n1( |$)/.test(p.args) && p.pid !== host.pid));
    started.set(restarted.pid, restarted.args);
    // Everything written before reads back through the restarted node's gateway. Only a
    // gateway not open yet (NotReady) is waited for: a wrong pattern or an I/O error fails at once.
    await waitFor(
      'reads through the restarted n1',
      60_000,
      () => qemuIoChecked(`nbd://127.0.0.1:${nbdPort}/both`, ['read -P 0x5a 0 64k', 'read -P 0xa5 2m 64k', 'read -P 0x3d 1m 512'], 20_000).then(() => true),
      500,
    );
  });
});

describe('node-host settings', () => {
  it('stops before anything starts when one actor\'s setting is bad, naming the actor and the setting (exit 2)', async () => {
    // NATS_URL points nowhere: a settings error must come before any connection attempt.
    const env = { NATS_URL: 'nats://127.0.0.1:9', STRATA_QUEUE_DEPTH_MAX: '-1' };
    const bad = await run(process.execPath, ['services/node-host/dist/main.js', '--node', 'n1'], { env, timeoutMs: 20_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^strata-node-host: admission: bad setting: --queue-depth-max \(STRATA_QUEUE_DEPTH_MAX\)/);
    const unknown = await run(process.execPath, ['services/node-host/dist/main.js', '--node', 'n1', '--drain-idle-ms', '5'], { env: { NATS_URL: 'nats://127.0.0.1:9' }, timeoutMs: 20_000 });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^strata-node-host: .*--drain-idle-ms.*Known flags: --node --shard --nbd-port --actors/);
    const actors = await run(process.execPath, ['services/node-host/dist/main.js', '--node', 'n1', '--actors', 'gateway,curator'], { env: { NATS_URL: 'nats://127.0.0.1:9' }, timeoutMs: 20_000 });
    expect(actors.code).toBe(2);
    expect(actors.stderr).toMatch(/^strata-node-host: bad setting: --actors \(STRATA_ACTORS\): "curator": not an actor of a node \(metadata-shard, extent-store, vdisk-controller, admission, io-director, gateway\)/);
    const missing = await run(process.execPath, ['services/node-host/dist/main.js'], { env: { NATS_URL: 'nats://127.0.0.1:9', STRATA_NODE: '' }, timeoutMs: 20_000 });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--node \(STRATA_NODE\): is required/);
  });
});

describe('strata up --separate: one process per actor', () => {
  let dir: string;
  let up: ActorProcess | undefined;
  let started = new Map<number, string>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-e2e-separate-'));
    const [nbdPort, natsPort] = [await freePort(), await freePort()];
    // The suite's admin, so this process's clients (and the CLI) reach the cluster.
    seedUpAuth(dir);
    up = startNode('cli/dist/main.js', ['--dir', dir, 'up', '--separate', '--nodes', '1', '--nbd-port', String(nbdPort), '--nats-port', String(natsPort), '--config-replicas', '1'], {
      name: 'strata up --separate',
      env: { NATS_URL: '' },
    });
    try {
      await up.waitForOutput(/^ready$/m, 90_000);
    } finally {
      started = new Map((await children(up.pid())).map((c) => [c.pid, c.args]));
    }
  });

  afterAll(async () => {
    await up?.stop(15_000);
    killIfUnchanged(started);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs each of the node\'s six actors in its own process naming the node, its HA agent and curator beside them, and no node-host', async () => {
    expect(up!.output()).toMatch(/^starting 1 node: one process per actor \(--separate; /m);
    const procs = await children(up!.pid());
    expect(procs.filter((p) => p.args.includes('node-host'))).toEqual([]);
    const actors = procs.map((p) => /services\/([a-z-]+)\/dist\/main\.js (--node n1|--shard md-1)( |$)/.exec(p.args)?.[1]).filter((a) => a !== undefined && a !== 'curator');
    expect(actors.sort()).toEqual([...NODE_ACTORS].sort());
    // Besides them: the embedded nats-server, the one config replica, the node's HA agent and its curator.
    expect(procs.filter((p) => /services\/ha-agent\/dist\/main\.js --host n1( |$)/.test(p.args))).toHaveLength(1);
    expect(procs.filter((p) => /services\/curator\/dist\/main\.js --node n1( |$)/.test(p.args))).toHaveLength(1);
    expect(procs).toHaveLength(NODE_ACTORS.length + 4);
    const controller = procs.filter((p) => p.args.includes('services/vdisk-controller/dist/main.js --node n1'));
    expect(await pgrepChildren(up!.pid(), 'vdisk-controller')).toEqual(controller.map((p) => p.pid));
  });
});
