// How hosts stand: the master's judgment of each host, and an agent's judgment of
// its own isolation. Pure: what was heard, and when, is passed in (local monotonic ms).
import { HostState } from '@strata/proto';

export interface HostSeen {
  /** When its last heartbeat arrived. */
  heartbeatAtMs?: number;
  /** Its last heartbeat said it is isolated. */
  heartbeatIsolated?: boolean;
  /** Its host record: the sequence last seen, since when, and whether it says isolated. */
  record?: { incarnation: number; seq: number; sinceMs: number; isolated: boolean };
}

/**
 * `alive` while heartbeats arrive; `isolated` when the host says so; `partitioned` when
 * only its host record still changes; `unknown` until the master has watched for a
 * whole dead timeout; `dead` otherwise.
 */
export function hostState(seen: HostSeen | undefined, nowMs: number, deadTimeoutMs: number, watchingSinceMs: number): HostState {
  const fresh = (atMs: number | undefined): boolean => atMs !== undefined && nowMs - atMs < deadTimeoutMs;
  if (fresh(seen?.heartbeatAtMs)) return seen?.heartbeatIsolated === true ? HostState.isolated : HostState.alive;
  const record = seen?.record;
  if (record?.isolated === true && fresh(record.sinceMs)) return HostState.isolated;
  if (fresh(record?.sinceMs)) return HostState.partitioned;
  if (nowMs - watchingSinceMs < deadTimeoutMs) return HostState.unknown;
  return HostState.dead;
}

/**
 * Whether a host reaches the `ha` bucket, as far as the master can tell: its host
 * record changed within three record intervals. A host that heartbeats but cannot
 * write its record is on the other side of a storage split: a power-on there could
 * not take the VM's lease, and it cannot write for the master either.
 */
export function recordFresh(record: HostSeen['record'], nowMs: number, recordIntervalMs: number): boolean {
  return record !== undefined && nowMs - record.sinceMs < 3 * recordIntervalMs;
}

export interface IsolationInput {
  /** When a heartbeat of another agent last arrived; undefined: never. */
  lastHeardOtherMs: number | undefined;
  /** When the agent last wrote to the `ha` bucket successfully; undefined: never. */
  lastStorageOkMs: number | undefined;
  /** When the agent started (the baseline before anything was heard). */
  startedAtMs: number;
  nowMs: number;
  timeoutMs: number;
  /** Hosts in the configuration besides this one. */
  otherHosts: number;
}

/**
 * Isolated: no other agent heard for the timeout, and the `ha` bucket not reachable
 * either (the isolation address of the VMware design). An agent that still reaches
 * storage while hearing nobody is not isolated: the others are gone, or the HA network
 * is split, and its VMs keep running under their leases. A lone host is never isolated.
 */
export function isIsolated(i: IsolationInput): boolean {
  if (i.otherHosts === 0) return false;
  const silent = (atMs: number | undefined): boolean => i.nowMs - (atMs ?? i.startedAtMs) >= i.timeoutMs;
  return silent(i.lastHeardOtherMs) && silent(i.lastStorageOkMs);
}
