// Fixtures for unit tests: a ReplicaHealth with a clock the test moves and default
// settings, and ExtentGroups of vDisk 7 on node n1 over a given bus and metadata maps.
import type { Bus } from '@strata/bus';
import { createLogger } from '@strata/log';
import type { MdMaps } from '@strata/md-client';
import { ExtentGroups, type ExtentGroupsDeps } from '../src/extent-groups';
import { ReplicaHealth, type ReplicaHealthSettings } from '../src/replica-health';

export function testHealth(settings: Partial<ReplicaHealthSettings> = {}): { health: ReplicaHealth; clock: { nowMs: number } } {
  const clock = { nowMs: 0 };
  const health = new ReplicaHealth({ localNode: 'n1', suspectAfterMs: 3_000, failureSuspectMs: 10_000, hedgeFloorMs: 5, hedgeCeilingMs: 250, ...settings }, () => clock.nowMs);
  return { health, clock };
}

/** ExtentGroups of vDisk 7 on node n1 at epoch 1 that expect no new extent group, unless `overrides` say otherwise. */
export function testExtentGroups(bus: Bus, md: MdMaps, overrides: Partial<ExtentGroupsDeps> = {}): ExtentGroups {
  return new ExtentGroups({
    bus,
    md,
    log: createLogger({ service: 'test', level: 'silent' }),
    node: 'n1',
    health: testHealth().health,
    vdisk: 7n,
    epoch: () => 1,
    createEgroup: () => Promise.reject(new Error('no new extent group expected')),
    egroupSizeBytes: 1024,
    writeBytesMax: 1024,
    timeoutMs: 1_000,
    putTimeoutMs: 500,
    ...overrides,
  });
}
