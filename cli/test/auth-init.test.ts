// The users `strata auth init` makes for a cluster run host by host: one per config
// replica, one per node covering everything `strata node run` starts there (its
// actors, HA agent, curator and shard), one per shard run alone; bad or repeated
// names are usage errors.
import { grantAllows } from '@strata/natsd';
import { nodeRunGrant, operatorGrants } from '../src/auth-init';
import { nodeChildren, nodeGrants } from '../src/roles';

describe('operatorGrants', () => {
  it('gives each node the grants of everything node run starts there, and no other node\'s', () => {
    const grants = operatorGrants({ nodes: ['n1:md-1', 'n2'], configReplicas: ['config-1'], shards: ['md-4'] });
    expect(Object.keys(grants).sort()).toEqual(['config-1', 'md-4', 'n1', 'n2']);
    const n1 = grants.n1!;
    expect(grantAllows(n1, 'subscribe', 'strata.estore.n1.read')).toBe(true);
    expect(grantAllows(n1, 'subscribe', 'strata.ha.agent.n1.power-on')).toBe(true);
    expect(grantAllows(n1, 'subscribe', 'strata.curator.status')).toBe(true);
    expect(grantAllows(n1, 'subscribe', 'strata.md.3.get')).toBe(true);
    expect(grantAllows(n1, 'publish', 'strata.io.n2.write')).toBe(false);
    expect(grantAllows(n1, 'subscribe', 'strata.estore.n2.read')).toBe(false);
    expect(grantAllows(grants.n2!, 'subscribe', 'strata.md.3.get')).toBe(false);
    expect(grantAllows(n1, 'publish', '$KV.cfg.vdisk.5')).toBe(false);
    // node run registers its node, disks and host through the config service (create,
    // update); its curator deletes what a deleted vDisk left (the sweep's last step).
    expect(grantAllows(n1, 'publish', 'strata.cfg.create')).toBe(true);
    expect(grantAllows(n1, 'publish', 'strata.cfg.delete')).toBe(true);
    expect(grantAllows(grants['config-1']!, 'publish', '$KV.cfg.vdisk.5')).toBe(true);
  });

  it('refuses a name given twice, admin, a bad name, and a NODE:SHARD:EXTRA', () => {
    expect(() => operatorGrants({ nodes: ['n1', 'n1'], configReplicas: [], shards: [] })).toThrow('given twice');
    expect(() => operatorGrants({ nodes: ['admin'], configReplicas: [], shards: [] })).toThrow('given twice');
    expect(() => operatorGrants({ nodes: ['N 1'], configReplicas: [], shards: [] })).toThrow('is not a name');
    expect(() => operatorGrants({ nodes: ['n1:md-1:x'], configReplicas: [], shards: [] })).toThrow('NODE or NODE:SHARD');
  });

  it('a node run grant without a shard serves no metadata partition', () => {
    expect(grantAllows(nodeRunGrant('n3', undefined), 'subscribe', 'strata.md.1.get')).toBe(false);
  });
});

describe('nodeGrants', () => {
  it.each(['colocated', 'separate'] as const)('has a grant for every process nodeChildren starts (%s)', (layout) => {
    const p = { node: 'n2', layout, nbdPort: 10810, shard: 'md-2', haRunDir: '/tmp/ha', natsUrl: 'nats://127.0.0.1:4222' };
    const grants = nodeGrants(p, { node: 'n2' });
    expect(nodeChildren(p).map((c) => c.name).sort()).toEqual(Object.keys(grants).sort());
  });
});
