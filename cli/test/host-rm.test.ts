// `strata host rm`: what it refuses and why, before anything is changed. VMs defined
// or running on the host and a storage node still on it are never overridden; an agent
// the HA master still hears, or no master to ask, is overridden by --force.
import type { HaStatusReply, ObjectOf } from '@strata/proto';
import { hostRmRefusal } from '../src/ha';

function host(name: string, id: bigint, node?: bigint): ObjectOf<'host'> {
  return { kind: 'host', id, name, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: { cpuCount: 4, memoryBytes: 2 ** 30, ...(node === undefined ? {} : { node }) } };
}

function vm(name: string, onHost: bigint): ObjectOf<'vm'> {
  return { kind: 'vm', id: 900n, name, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: { host: onHost, cpuCount: 1, memoryBytes: 2 ** 28, vdisks: [5n], haProtected: true, driver: 'process', restartPriority: 'medium' } };
}

function status(h4: HaStatusReply['hosts'][number]['state'], vms: HaStatusReply['vms'] = []): HaStatusReply {
  const hostStatus = (name: string, state: typeof h4): HaStatusReply['hosts'][number] => ({ host: name, state, cpuCount: 4, memoryBytes: 2 ** 30, cpuUsed: 0, memoryUsedBytes: 0, vms: [] });
  return { master: 'n1', epoch: 1, hosts: [hostStatus('n1', 'alive'), hostStatus('n4', h4)], vms, restartList: [], waitList: [] } as unknown as HaStatusReply;
}

const n4 = host('n4', 44n);

describe('strata host rm refusals', () => {
  it('removes a host whose agent the master no longer hears (dead or unknown)', () => {
    expect(hostRmRefusal(n4, [], status('dead'), undefined, false)).toBeUndefined();
    expect(hostRmRefusal(n4, [], status('unknown'), undefined, false)).toBeUndefined();
  });

  it('refuses a host the master still hears, or when no master answers, unless forced', () => {
    for (const state of ['alive', 'partitioned', 'isolated'] as const) {
      expect(hostRmRefusal(n4, [], status(state), undefined, false)?.message).toBe(`host n4 is ${state}: its HA agent still runs; stop its processes first, or --force`);
      expect(hostRmRefusal(n4, [], status(state), undefined, true)).toBeUndefined();
    }
    expect(hostRmRefusal(n4, [], undefined, undefined, false)?.message).toMatch(/^host n4 cannot be checked: no HA master answers/);
    expect(hostRmRefusal(n4, [], undefined, undefined, true)).toBeUndefined();
  });

  it('never removes a host where VMs are defined or run, or that still has a storage node, even forced', () => {
    const defined = hostRmRefusal(n4, [vm('web', 44n), vm('db', 11n)], status('dead'), undefined, true);
    expect(defined).toMatchObject({ code: 'CONFLICT', message: 'host n4 is where VMs web are defined; move or remove them first (strata vm rm)' });
    const running = status('dead', [{ vm: 900n, name: 'db', state: 'running', host: 'n4', protected: true, reason: 'restarted here' }]);
    expect(hostRmRefusal(n4, [vm('db', 11n)], running, undefined, true)?.message).toBe('host n4 runs VMs db; stop them first (strata vm stop)');
    expect(hostRmRefusal(host('n4', 44n, 7n), [], status('dead'), 'n4', true)?.message).toBe('host n4 still has storage node n4; remove it first (strata node rm n4)');
  });
});
