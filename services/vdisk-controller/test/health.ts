// A ReplicaHealth for unit tests: a clock the test moves, and default settings.
import { ReplicaHealth, type ReplicaHealthSettings } from '../src/replica-health';

export function testHealth(settings: Partial<ReplicaHealthSettings> = {}): { health: ReplicaHealth; clock: { nowMs: number } } {
  const clock = { nowMs: 0 };
  const health = new ReplicaHealth({ localNode: 'n1', suspectAfterMs: 3_000, failureSuspectMs: 10_000, hedgeFloorMs: 5, hedgeCeilingMs: 250, ...settings }, () => clock.nowMs);
  return { health, clock };
}
