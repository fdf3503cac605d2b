// The grants of each role (permissions.ts), checked as the server applies an allow
// list: what a role needs is allowed, the neighbouring subjects of another role or
// node are not, and the users block the servers read is well formed and refuses
// what it cannot write safely; passwords are kept across runs.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admissionGrant, authorizationBlock, configGrant, curatorGrant, ensurePasswords, extentStoreGrant, gatewayGrant, grantAllows, haAgentGrant, ioDirectorGrant, metadataShardGrant, nodeHostGrant, permissionTable, subjectMatches, vdiskControllerGrant, type Grant } from '../src';

const n1 = { node: 'n1', nodeId: 11n, diskIds: [12n] };
const pub = (g: Grant, s: string): boolean => grantAllows(g, 'publish', s);
const sub = (g: Grant, s: string): boolean => grantAllows(g, 'subscribe', s);

describe('subjectMatches', () => {
  it.each([
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a', false],
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['$KV.hb.node.11', '$KV.hb.node.110', false],
  ])('%s matches %s: %s', (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});

describe('role grants', () => {
  it('a gateway sends I/O only to its own node director', () => {
    const g = gatewayGrant(n1);
    expect(pub(g, 'strata.io.n1.write')).toBe(true);
    expect(pub(g, 'strata.io.n2.write')).toBe(false);
    expect(pub(g, 'strata.adm.n1.write')).toBe(false);
    expect(pub(g, 'strata.vdc.n1.write')).toBe(false);
    expect(pub(g, '$KV.hb.attach.n1')).toBe(true);
    expect(pub(g, '$KV.hb.attach.n2')).toBe(false);
    expect(pub(g, '$KV.cfg.vdisk.5')).toBe(false);
  });

  it('an extent store answers only its own subjects and reports only its own disks', () => {
    const g = extentStoreGrant(n1);
    expect(sub(g, 'strata.estore.n1.read')).toBe(true);
    expect(sub(g, 'strata.estore.n2.read')).toBe(false);
    expect(pub(g, '$KV.hb.disk.12')).toBe(true);
    expect(pub(g, '$KV.hb.disk.13')).toBe(false);
    expect(g.respond).toBe(true);
  });

  it('a vdisk-controller writes only its own node heartbeat', () => {
    const g = vdiskControllerGrant(n1);
    expect(pub(g, '$KV.hb.node.11')).toBe(true);
    expect(pub(g, '$KV.hb.node.14')).toBe(false);
    expect(pub(g, 'oplog.123')).toBe(true);
    expect(pub(g, '$JS.API.STREAM.PURGE.OPLOG')).toBe(true);
    expect(pub(g, '$JS.API.STREAM.DELETE.OPLOG')).toBe(false);
    expect(sub(g, 'strata.vdc.n1.write')).toBe(true);
    expect(sub(g, 'strata.vdc.n2.write')).toBe(false);
    // Before the node is registered its id is unknown: any node key, still only node keys.
    const unregistered = vdiskControllerGrant({ node: 'n1' });
    expect(pub(unregistered, '$KV.hb.node.14')).toBe(true);
    expect(pub(unregistered, '$KV.hb.disk.12')).toBe(false);
  });

  it('only config replicas write the cfg bucket and serve config requests', () => {
    const others = [gatewayGrant(n1), ioDirectorGrant(n1), admissionGrant(n1), vdiskControllerGrant(n1), extentStoreGrant(n1), metadataShardGrant('md-1'), curatorGrant(n1), haAgentGrant(n1), nodeHostGrant(n1, ['gateway', 'io-director', 'admission', 'vdisk-controller', 'extent-store'], 'md-1')];
    expect(pub(configGrant('config-1'), '$KV.cfg.vdisk.5')).toBe(true);
    expect(sub(configGrant('config-1'), 'strata.cfg.create')).toBe(true);
    for (const g of others) {
      expect(pub(g, '$KV.cfg.vdisk.5')).toBe(false);
      expect(sub(g, 'strata.cfg.create')).toBe(false);
      expect(pub(g, 'strata.cfg.create')).toBe(false);
      expect(pub(g, 'strata.cfg.get')).toBe(true);
    }
  });

  it('admission passes work only to its own node controller; the director serves only its own node', () => {
    expect(pub(admissionGrant(n1), 'strata.vdc.n1.read')).toBe(true);
    expect(pub(admissionGrant(n1), 'strata.vdc.n2.read')).toBe(false);
    expect(sub(ioDirectorGrant(n1), 'strata.io.n1.read')).toBe(true);
    expect(sub(ioDirectorGrant(n1), 'strata.io.n2.read')).toBe(false);
    expect(pub(ioDirectorGrant(n1), 'strata.adm.n2.read')).toBe(true);
    expect(pub(ioDirectorGrant(n1), 'strata.vdc.n2.relinquish')).toBe(true);
    expect(pub(ioDirectorGrant(n1), 'strata.vdc.n2.write')).toBe(false);
  });

  it('an HA agent beats only for its own host and writes only its own host record', () => {
    const g = haAgentGrant(n1);
    expect(pub(g, 'strata.ha.hb.n1')).toBe(true);
    expect(pub(g, 'strata.ha.hb.n2')).toBe(false);
    expect(pub(g, '$KV.ha.host.n1')).toBe(true);
    expect(pub(g, '$KV.ha.host.n2')).toBe(false);
    expect(sub(g, 'strata.ha.agent.n1.power-on')).toBe(true);
    expect(sub(g, 'strata.ha.agent.n2.power-on')).toBe(false);
  });

  it('a metadata shard writes the metadata buckets and the shards\' heartbeats (a silent peer\'s it removes); nothing else may', () => {
    expect(pub(metadataShardGrant('md-1'), '$KV.md-egroup.5')).toBe(true);
    expect(pub(metadataShardGrant('md-1'), '$KV.hb.shard.md-1')).toBe(true);
    expect(pub(metadataShardGrant('md-1'), '$KV.hb.shard.md-2')).toBe(true);
    expect(pub(metadataShardGrant('md-1'), '$KV.hb.node.12345')).toBe(false);
    expect(pub(curatorGrant(n1), '$KV.md-egroup.5')).toBe(false);
  });

  it("a curator serves its own node's map tasks and asks any other curator's, as master", () => {
    expect(sub(curatorGrant(n1), 'strata.curator.n1.map')).toBe(true);
    expect(sub(curatorGrant(n1), 'strata.curator.n2.map')).toBe(false);
    expect(pub(curatorGrant(n1), 'strata.curator.n2.map')).toBe(true);
    expect(pub(curatorGrant(n1), '$KV.own.curator.scan')).toBe(true);
    expect(pub(curatorGrant(n1), '$KV.own.curator.map.3.0')).toBe(true);
    expect(pub(curatorGrant(n1), '$KV.own.role.config')).toBe(false);
    // It asks a vDisk's owner to record a copy, and nothing else of a controller's.
    expect(pub(curatorGrant(n1), 'strata.vdc.n2.record-copy')).toBe(true);
    expect(pub(curatorGrant(n1), 'strata.vdc.n2.release')).toBe(true);
    expect(pub(curatorGrant(n1), 'strata.vdc.n2.compact')).toBe(true);
    expect(pub(curatorGrant(n1), 'strata.vdc.n2.relinquish')).toBe(false);
    expect(pub(vdiskControllerGrant(n1), '$KV.md-vdisk.5.0')).toBe(false);
  });

  it('a node-host has the union of the actors it hosts, and no more', () => {
    const g = nodeHostGrant(n1, ['gateway', 'extent-store'], undefined);
    expect(pub(g, 'strata.io.n1.write')).toBe(true);
    expect(sub(g, 'strata.estore.n1.read')).toBe(true);
    expect(sub(g, 'strata.vdc.n1.write')).toBe(false);
    expect(sub(g, 'strata.health.node-host.n1')).toBe(true);
  });

  it('no role subscribes to everything or publishes to the whole JetStream API', () => {
    for (const g of [configGrant('config-1'), vdiskControllerGrant(n1), haAgentGrant(n1), curatorGrant(n1)]) {
      expect(g.publish).not.toContain('>');
      expect(g.subscribe).not.toContain('>');
      expect(pub(g, '$JS.API.STREAM.DELETE.KV_cfg')).toBe(false);
    }
  });
});

describe('authorizationBlock', () => {
  const password = 'p'.repeat(32);
  it('lists users with allow lists and allow_responses; admin without limits', () => {
    const text = authorizationBlock([
      { user: 'admin', password, grant: 'all' },
      { user: 'n1-gateway', password, grant: gatewayGrant(n1) },
    ]);
    expect(text).toMatch(/^authorization \{\n {2}users: \[\n/);
    expect(text).toContain(`{ user: "admin", password: "${password}" }`);
    expect(text).toMatch(/\{ user: "n1-gateway", password: "p+", permissions: \{ publish: \{ allow: \[[^\]]*"strata.io.n1.\*"[^\]]*\] \}, subscribe: \{ allow: \[[^\]]*\] \}, allow_responses: true \} \}/);
  });

  it('refuses a duplicate user, a short password, and text it cannot quote safely', () => {
    expect(() => authorizationBlock([{ user: 'a', password, grant: 'all' }, { user: 'a', password, grant: 'all' }])).toThrow('listed twice');
    expect(() => authorizationBlock([{ user: 'a', password: 'short', grant: 'all' }])).toThrow('shorter than 16');
    expect(() => authorizationBlock([{ user: 'a" }', password, grant: 'all' }])).toThrow('refusing to write');
  });
});

describe('PROTOCOL.md section 14', () => {
  it('tables the grants exactly as the code builds them', () => {
    const doc = readFileSync(join(__dirname, '..', '..', '..', 'proto', 'PROTOCOL.md'), 'utf8').split('\n');
    const missing = permissionTable().filter((row) => !doc.includes(row));
    expect(missing).toEqual([]);
  });
});

describe('ensurePasswords', () => {
  it('keeps the passwords it has, adds random ones, and writes the file for its owner only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-passwords-'));
    try {
      const file = join(dir, 'passwords.json');
      const first = ensurePasswords(file, ['a', 'b']);
      const second = ensurePasswords(file, ['a', 'b', 'c']);
      expect(second.a).toBe(first.a);
      expect(second.b).toBe(first.b);
      expect(new Set([second.a, second.b, second.c]).size).toBe(3);
      expect(second.c).toMatch(/^[\w-]{32}$/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
