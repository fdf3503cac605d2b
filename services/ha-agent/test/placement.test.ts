// Placement by free capacity.
import fc from 'fast-check';
import { fits, place, reserve, type HostCapacity } from '../src/placement';

const GiB = 2 ** 30;
const host = (name: string, cpuUsed: number, memoryUsedBytes: number, usable = true): HostCapacity => ({ host: name, usable, cpuCount: 4, memoryBytes: 4 * GiB, cpuUsed, memoryUsedBytes });

describe('place', () => {
  test('the host with the most free memory, by name on a tie', () => {
    expect(place({ cpuCount: 1, memoryBytes: GiB }, [host('n1', 0, 2 * GiB), host('n2', 0, GiB), host('n3', 0, GiB)], { excluded: [] })).toEqual({ host: 'n2' });
  });

  test('a host where the VM failed before only when nothing else fits; the preferred host before the others', () => {
    const hosts = [host('n1', 0, 0), host('n2', 0, GiB)];
    expect(place({ cpuCount: 1, memoryBytes: GiB }, hosts, { excluded: ['n1'] })).toEqual({ host: 'n2' });
    expect(place({ cpuCount: 1, memoryBytes: GiB }, hosts, { excluded: [], preferred: 'n2' })).toEqual({ host: 'n2' });
    expect(place({ cpuCount: 1, memoryBytes: 3.5 * GiB }, hosts, { excluded: ['n1'] })).toEqual({ host: 'n1' });
  });

  test('nothing fits: the reason names what is needed and what is free', () => {
    expect(place({ cpuCount: 2, memoryBytes: GiB }, [host('n1', 3, 0), host('n2', 0, 0, false)], { excluded: [] })).toEqual({ none: 'no alive host has 2 CPUs and 1 GiB free (n1 1 CPU/4 GiB)' });
    expect(place({ cpuCount: 1, memoryBytes: GiB }, [host('n2', 0, 0, false)], { excluded: [] })).toEqual({ none: 'no host is alive to take 1 CPU and 1 GiB' });
  });

  test('property: placing VMs one after another, with reserve, never overcommits a host', () => {
    const demand = fc.record({ cpuCount: fc.integer({ min: 1, max: 3 }), memoryBytes: fc.integer({ min: 1, max: 3 }).map((g) => g * GiB) });
    fc.assert(
      fc.property(fc.array(demand, { maxLength: 20 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), (vms, usable) => {
        const hosts = usable.map((u, i) => host(`n${i + 1}`, 0, 0, u));
        for (const d of vms) {
          const where = place(d, hosts, { excluded: [] });
          if ('none' in where) {
            if (hosts.some((h) => fits(h, d))) return false;
            continue;
          }
          if (!fits(hosts.find((h) => h.host === where.host)!, d)) return false;
          reserve(hosts, where.host, d);
        }
        return hosts.every((h) => h.cpuUsed <= h.cpuCount && h.memoryUsedBytes <= h.memoryBytes && (h.usable || h.cpuUsed === 0));
      }),
    );
  });
});
