// The config leader's space monitor: one event per change of a disk's or container's
// space state, only while leading, from "all ok" again after a change of leader, and
// a change whose event could not be published is published on the next tick.
import type { WatchCache } from '@strata/kv';
import type { CfgEntry, ClusterEvent, DiskUsage } from '@strata/proto';
import { SpaceMonitor } from '../src/space-monitor';

const MiB = 2 ** 20;

/** A WatchCache stand-in holding fixed entries. */
function cache<T>(entries: Record<string, T>): WatchCache<T> {
  return {
    values: () => Object.entries(entries).map(([key, value]) => ({ key, value, revision: 1 })),
    get: (key: string) => (key in entries ? { key, value: entries[key]!, revision: 1 } : undefined),
  } as unknown as WatchCache<T>;
}

const base = { createdAtMs: 0, updatedAtMs: 0, epoch: 1 };
const node = (id: bigint, name: string): CfgEntry => ({ ...base, kind: 'node', id, name, spec: {}, status: { liveness: 'alive', incarnation: 1, changedAtMs: 0 } });
const disk = (id: bigint, nodeId: bigint, name: string): CfgEntry => ({ ...base, kind: 'disk', id, name, spec: { node: nodeId, path: `/d/${name}`, tier: 'ssd', capacityBytes: 100 * MiB } });

function setup() {
  const usage: Record<string, DiskUsage> = {};
  const events: ClusterEvent[] = [];
  let leading: number | undefined = 3;
  let failAppends = 0;
  const monitor = new SpaceMonitor({
    disks: cache({ 'disk.11': disk(11n, 1n, 'n1-d1'), 'disk.21': disk(21n, 2n, 'n2-d1') }),
    nodes: cache({ 'node.1': node(1n, 'n1'), 'node.2': node(2n, 'n2') }),
    containers: cache<CfgEntry>({}),
    usage: cache(usage),
    leaderEpoch: () => leading,
    events: {
      append: async (e) => {
        if (failAppends > 0) {
          failAppends--;
          throw new Error('EVENTS unreachable');
        }
        events.push(e);
      },
    },
    log: { warn: () => undefined } as never,
    thresholds: { warnPercent: 85, fullFreeBytes: 4 * MiB },
    tickMs: 1_000,
  });
  const use = (diskId: string, mib: number) => (usage[`disk.${diskId}`] = { node: 'n?', usedBytes: mib * MiB, capacityBytes: 100 * MiB, atMs: 0 });
  return { monitor, events, use, lead: (epoch: number | undefined) => (leading = epoch), failNext: () => (failAppends = 1) };
}

it('publishes one event per change of state, with the reason, only while leading', async () => {
  const { monitor, events, use, lead } = setup();
  use('11', 50);
  use('21', 90);
  await monitor.tick();
  await monitor.tick();
  expect(events.map((e) => `${e.type} ${e.kind} ${e.name}`)).toEqual(['space.warning disk n2-d1']);
  expect(events[0]).toMatchObject({ epoch: 3, cause: 'space-monitor', usedBytes: 90 * MiB, capacityBytes: 100 * MiB, message: 'disk n2-d1 is filling up (was ok): 90.0% used of 100.0 MiB, at or above 85%; 90.0 MiB used of 100.0 MiB' });
  use('21', 99);
  await monitor.tick();
  use('21', 10);
  await monitor.tick();
  expect(events.slice(1).map((e) => `${e.type} ${e.name}`)).toEqual(['space.full n2-d1', 'space.ok n2-d1']);
  // Not leading: nothing; leading again: what is not ok is announced once.
  lead(undefined);
  use('11', 99);
  await monitor.tick();
  expect(events).toHaveLength(3);
  lead(4);
  await monitor.tick();
  expect(events.slice(3).map((e) => `${e.type} ${e.name} ${e.epoch}`)).toEqual(['space.full n1-d1 4']);
});

it('publishes on the next tick a change whose event could not be appended', async () => {
  const { monitor, events, use, failNext } = setup();
  use('11', 99);
  failNext();
  await monitor.tick();
  expect(events).toEqual([]);
  await monitor.tick();
  expect(events.map((e) => `${e.type} ${e.name}`)).toEqual(['space.full n1-d1']);
});
