// What `strata node run` registers and starts, as pure decisions: the registration
// plan (a node, its disks by path, its host) and its refusals; that a second run with
// the same flags changes nothing (a property over random cluster states); the --disk
// syntax; and the processes of a node with or without a metadata shard, a listen
// address and metrics ports.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, StrataError } from '@strata/errors';
import { Tier } from '@strata/proto';
import { parseDiskArg, parseDiskArgs, planRegistration, type Registered, type RegistrationRequest, type RegistrationStep } from '../src/node-register';
import { Layout, nodeChildren } from '../src/roles';
import { nbdTlsOf } from '../src/run-commands';

const GiB = 2 ** 30;
const request = (over: Partial<RegistrationRequest> = {}): RegistrationRequest => ({
  node: 'n2',
  address: 'host-b',
  disks: [{ path: '/srv/d1', capacityBytes: 10 * GiB, tier: Tier.ssd }],
  host: { cpuCount: 4, memoryBytes: 8 * GiB },
  ...over,
});
const empty: Registered = { nodes: [], disks: [], hosts: [] };

/** `reg` after `steps`, as the config service would hold it (ids counted from 100). */
function apply(reg: Registered, node: string, address: string, steps: RegistrationStep[]): Registered {
  const next: Registered = { nodes: [...reg.nodes], disks: [...reg.disks], hosts: [...reg.hosts] };
  let id = 100n + BigInt(reg.nodes.length + reg.disks.length + reg.hosts.length);
  const nodeId = (): bigint => next.nodes.find((n) => n.name === node)!.id;
  for (const s of steps) {
    if (s.op === 'create-node') next.nodes.push({ id: id++, name: s.name, spec: { address } });
    if (s.op === 'create-disk') next.disks.push({ id: id++, name: s.name, spec: { node: nodeId(), ...s.disk } });
    if (s.op === 'update-disk') next.disks = next.disks.map((d) => (d.name === s.name ? { ...d, spec: { ...d.spec, ...s.disk } } : d));
    if (s.op === 'create-host') next.hosts.push({ id: id++, name: s.name, spec: { node: nodeId(), cpuCount: s.cpuCount, memoryBytes: s.memoryBytes } });
    if (s.op === 'update-host') next.hosts = next.hosts.map((h) => (h.name === s.name ? { ...h, spec: { node: nodeId(), cpuCount: s.cpuCount, memoryBytes: s.memoryBytes } } : h));
  }
  return next;
}

describe('registration plan', () => {
  test('a new node: the node, a disk named <node>-d1 per path in order, and its host', () => {
    const disks = [
      { path: '/srv/d1', capacityBytes: GiB, tier: Tier.ssd },
      { path: '/srv/d2', capacityBytes: 2 * GiB, tier: Tier.hdd },
    ];
    expect(planRegistration(request({ disks }), empty)).toEqual({
      steps: [
        { op: 'create-node', name: 'n2', address: 'host-b' },
        { op: 'create-disk', name: 'n2-d1', disk: disks[0] },
        { op: 'create-disk', name: 'n2-d2', disk: disks[1] },
        { op: 'create-host', name: 'n2', cpuCount: 4, memoryBytes: 8 * GiB },
      ],
      notes: [],
    });
  });

  test('run again with the same flags: nothing to do; a changed capacity or host size is an update of the same objects', () => {
    const once = apply(empty, 'n2', 'host-b', planRegistration(request(), empty).steps);
    expect(planRegistration(request(), once)).toEqual({ steps: [], notes: [] });
    const bigger = request({ disks: [{ path: '/srv/d1', capacityBytes: 20 * GiB, tier: Tier.ssd }], host: { cpuCount: 8, memoryBytes: 8 * GiB } });
    expect(planRegistration(bigger, once).steps).toEqual([
      { op: 'update-disk', name: 'n2-d1', disk: bigger.disks[0], was: request().disks[0] },
      { op: 'update-host', name: 'n2', cpuCount: 8, memoryBytes: 8 * GiB },
    ]);
  });

  test('a disk registered but not given stays, with a note; a new disk takes the smallest free name', () => {
    const once = apply(empty, 'n2', 'host-b', planRegistration(request(), empty).steps);
    const plan = planRegistration(request({ disks: [{ path: '/srv/d9', capacityBytes: GiB, tier: Tier.ssd }] }), once);
    expect(plan.steps).toEqual([{ op: 'create-disk', name: 'n2-d2', disk: { path: '/srv/d9', capacityBytes: GiB, tier: Tier.ssd } }]);
    expect(plan.notes).toEqual(['disk n2-d1 (/srv/d1) stays registered to node n2 though no --disk names it; "strata disk rm n2-d1" removes it']);
  });

  test('a path another node at the same address registered is refused (CONFLICT, nothing planned); at another address it is another directory', () => {
    const n1 = apply(empty, 'n1', 'host-b', planRegistration(request({ node: 'n1' }), empty).steps);
    expect(() => planRegistration(request(), n1)).toThrow(new StrataError(ErrorCode.CONFLICT, 'disk path /srv/d1 is registered to node n1 (disk n1-d1, same address host-b); give node n2 a directory of its own'));
    expect(planRegistration(request({ address: 'host-c' }), n1).steps.map((s) => s.op)).toEqual(['create-node', 'create-disk', 'create-host']);
  });

  test('a host of the same name that belongs to another node is refused; one without a node is linked to this one', () => {
    const other: Registered = { nodes: [{ id: 1n, name: 'n9', spec: {} }], disks: [], hosts: [{ id: 2n, name: 'n2', spec: { node: 1n, cpuCount: 1, memoryBytes: GiB } }] };
    expect(() => planRegistration(request({ disks: [] }), other)).toThrow(/host n2 is registered for another node \(id 1\)/);
    const loose: Registered = { nodes: [{ id: 1n, name: 'n2', spec: {} }], disks: [], hosts: [{ id: 2n, name: 'n2', spec: { cpuCount: 4, memoryBytes: 8 * GiB } }] };
    expect(planRegistration(request({ disks: [] }), loose).steps).toEqual([{ op: 'update-host', name: 'n2', cpuCount: 4, memoryBytes: 8 * GiB }]);
  });

  test('property: whatever the cluster holds, a plan that is not refused, once applied, leaves nothing to do', () => {
    const disk = fc.record({ path: fc.constantFrom('/a', '/b', '/c', '/d'), capacityBytes: fc.integer({ min: 1, max: 4 }).map((n) => n * GiB), tier: fc.constantFrom(Tier.ssd, Tier.hdd) });
    const disks = fc.uniqueArray(disk, { selector: (d) => d.path, maxLength: 3 });
    const cluster = fc.record({ others: fc.array(fc.tuple(fc.constantFrom('n1', 'n3'), fc.constantFrom('host-a', 'host-b'), disks), { maxLength: 2 }), mine: fc.option(disks) });
    fc.assert(
      fc.property(cluster, disks, ({ others, mine }, wanted) => {
        let reg = empty;
        for (const [node, address, ds] of others) {
          try {
            reg = apply(reg, node, address, planRegistration(request({ node, address, disks: ds }), reg).steps);
          } catch {
            // refused: the cluster stays as it was
          }
        }
        if (mine !== null) {
          try {
            reg = apply(reg, 'n2', 'host-b', planRegistration(request({ disks: mine }), reg).steps);
          } catch {
            // as above
          }
        }
        let plan;
        try {
          plan = planRegistration(request({ disks: wanted }), reg);
        } catch (err) {
          expect(err).toBeInstanceOf(StrataError);
          return;
        }
        expect(planRegistration(request({ disks: wanted }), apply(reg, 'n2', 'host-b', plan.steps)).steps).toEqual([]);
      }),
      { seed: 19, numRuns: 300 },
    );
  });
});

describe('--disk PATH:CAPACITY[:TIER]', () => {
  test('read from the right, so a path may hold a colon; a relative path is resolved where the command runs; ssd by default', () => {
    expect(parseDiskArg('/srv/d1:100G:hdd', '/x')).toEqual({ path: '/srv/d1', capacityBytes: 100 * GiB, tier: Tier.hdd });
    expect(parseDiskArg('/srv/a:b:1T', '/x')).toEqual({ path: '/srv/a:b', capacityBytes: 2 ** 40, tier: Tier.ssd });
    expect(parseDiskArg('disks/d1:512M', '/var/lib/strata')).toEqual({ path: '/var/lib/strata/disks/d1', capacityBytes: 512 * 2 ** 20, tier: Tier.ssd });
  });

  test('no capacity, a capacity that is not one, an unknown tier or a path given twice: a usage error', () => {
    expect(() => parseDiskArg('/srv/d1', '/')).toThrow('--disk: "/srv/d1" is not PATH:CAPACITY[:TIER]');
    expect(() => parseDiskArg(':10G', '/')).toThrow('is not PATH:CAPACITY[:TIER]');
    expect(() => parseDiskArg('/srv/d1:10Q', '/')).toThrow('"10Q" is not a size');
    expect(() => parseDiskArg('/srv/d1:10G:nvme', '/')).toThrow('"nvme" is not a capacity');
    expect(() => parseDiskArgs(['/srv/d1:1G', 'd1:2G'], '/srv')).toThrow('--disk: /srv/d1 is given twice');
  });
});

describe("a node's processes", () => {
  const base = { node: 'n4', layout: Layout.colocated, nbdPort: 10900, haRunDir: '/data/ha/n4', natsUrl: 'nats://a:4222' };
  const script = (args: readonly string[]): string => {
    const path = args.find((a) => a.endsWith('main.js'))!;
    return `${basename(dirname(dirname(path)))}/${basename(path)}`;
  };

  test('without --shard the node-host hosts no metadata shard; with it, the shard is in the node-host (colocated) or a process of its own', () => {
    const [host] = nodeChildren(base);
    expect(host!.args.slice(-6)).toEqual(['--node', 'n4', '--nbd-port', '10900', '--actors', 'extent-store,vdisk-controller,admission,io-director,gateway']);
    expect(nodeChildren({ ...base, shard: 'md-7' })[0]!.args.slice(-8)).toEqual(['--node', 'n4', '--shard', 'md-7', '--nbd-port', '10900', '--actors', 'metadata-shard,extent-store,vdisk-controller,admission,io-director,gateway']);
    const separate = nodeChildren({ ...base, layout: Layout.separate });
    expect(separate.map((c) => c.name)).toEqual(['n4-extent-store', 'n4-vdisk-controller', 'n4-admission', 'n4-io-director', 'n4-gateway', 'n4-ha-agent', 'n4-curator']);
    const withShard = nodeChildren({ ...base, layout: Layout.separate, shard: 'md-7' });
    expect(withShard[0]!.args.slice(-2)).toEqual(['--shard', 'md-7']);
    expect(script(withShard[0]!.args)).toBe('metadata-shard/main.js');
  });

  test('a listen address reaches the gateway (STRATA_NBD_HOST) and the HA agent (loopback when it listens on every address); metrics ports follow each other', () => {
    const children = nodeChildren({ ...base, nbdHost: '0.0.0.0', metricsPort: 9100 });
    expect(children.map((c) => [c.name, c.env?.STRATA_NBD_HOST, c.env?.STRATA_METRICS_PORT])).toEqual([
      ['n4-node-host', '0.0.0.0', '9100'],
      ['n4-ha-agent', '0.0.0.0', '9101'],
      ['n4-curator', '0.0.0.0', '9102'],
    ]);
    expect(children[1]!.args.slice(-6)).toEqual(['--nbd-host', '127.0.0.1', '--nbd-port', '10900', '--run-dir', '/data/ha/n4']);
    expect(nodeChildren({ ...base, nbdHost: '10.0.0.5' })[1]!.args).toContain('10.0.0.5');
    expect(nodeChildren(base).every((c) => c.env?.STRATA_METRICS_PORT === undefined && c.env?.STRATA_NBD_HOST === undefined)).toBe(true);
  });

  test('TLS reaches the gateway (STRATA_NBD_TLS_DIR) and the HA agent (--nbd-tls-client-dir); --nbd-insecure reaches the gateway', () => {
    const children = nodeChildren({ ...base, nbdHost: '10.0.0.5', nbdTlsDir: '/etc/strata/nbd-server', nbdTlsClientDir: '/etc/strata/nbd-client' });
    expect(children.map((c) => c.env?.STRATA_NBD_TLS_DIR)).toEqual(['/etc/strata/nbd-server', '/etc/strata/nbd-server', '/etc/strata/nbd-server']);
    expect(children[1]!.args.slice(-6)).toEqual(['--nbd-port', '10900', '--nbd-tls-client-dir', '/etc/strata/nbd-client', '--run-dir', '/data/ha/n4']);
    expect(nodeChildren({ ...base, nbdHost: '10.0.0.5', nbdInsecure: true })[0]!.env?.STRATA_NBD_INSECURE).toBe('true');
    expect(nodeChildren(base).every((c) => c.env?.STRATA_NBD_TLS_DIR === undefined && c.env?.STRATA_NBD_INSECURE === undefined)).toBe(true);
  });
});

describe('--nbd-tls-dir, --nbd-tls-client-dir, --nbd-insecure', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'strata-nbd-tls-flags-'));
    for (const [sub, files] of [['nbd-server', ['ca-cert.pem', 'server-cert.pem', 'server-key.pem']], ['nbd-client', ['ca-cert.pem', 'client-cert.pem', 'client-key.pem']]] as const) {
      mkdirSync(join(dir, sub));
      for (const f of files) writeFileSync(join(dir, sub, f), 'pem');
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('plain NBD on loopback needs no flag; beyond loopback it needs TLS or --nbd-insecure, and the error names both', () => {
    expect(nbdTlsOf({}, dir)).toEqual({});
    expect(nbdTlsOf({ nbdHost: '127.0.0.2' }, dir)).toEqual({});
    for (const nbdHost of ['0.0.0.0', '10.0.0.5']) expect(() => nbdTlsOf({ nbdHost }, dir)).toThrow(`--nbd-host ${nbdHost}: plain NBD has no authentication: a gateway listening beyond loopback needs --nbd-tls-dir DIR (TLS with client certificates), or --nbd-insecure to serve plain NBD anyway`);
    expect(nbdTlsOf({ nbdHost: '10.0.0.5', nbdInsecure: true }, dir)).toEqual({ nbdInsecure: true });
  });

  test('a TLS directory is resolved and checked; the client directory defaults to nbd-client beside it', () => {
    expect(nbdTlsOf({ nbdHost: '10.0.0.5', nbdTlsDir: 'nbd-server' }, dir)).toEqual({ nbdTlsDir: join(dir, 'nbd-server'), nbdTlsClientDir: join(dir, 'nbd-client') });
    expect(() => nbdTlsOf({ nbdTlsDir: 'nbd-client' }, dir)).toThrow(/--nbd-tls-dir: \S+nbd-client has no server-cert.pem, server-key.pem/);
    expect(() => nbdTlsOf({ nbdTlsDir: 'nbd-server', nbdTlsClientDir: 'nbd-server' }, dir)).toThrow(/--nbd-tls-client-dir: \S+nbd-server has no client-cert.pem, client-key.pem/);
    expect(() => nbdTlsOf({ nbdTlsDir: 'nbd-server', nbdInsecure: true }, dir)).toThrow(/contradict/);
    expect(() => nbdTlsOf({ nbdTlsClientDir: 'nbd-client' }, dir)).toThrow(/give --nbd-tls-dir too/);
  });
});
