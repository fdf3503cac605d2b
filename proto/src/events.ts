// Cluster events (proto/events.cddl), stored in the EVENTS stream under
// `strata.events.<category>` for operators, the console and watchers.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';

export const EventType = {
  created: 'created',
  updated: 'updated',
  deleted: 'deleted',
  nodeDead: 'node.dead',
  nodeAlive: 'node.alive',
  nodeRestarted: 'node.restarted',
  leaderElected: 'leader.elected',
  ownerChanged: 'owner.changed',
  /** An HA agent became the HA master. */
  haMasterElected: 'ha.master.elected',
  /** The HA master declared a host failed: no heartbeats and no host record renewals. */
  haHostFailed: 'ha.host.failed',
  /** An agent found its host isolated and applied the isolation response. */
  haHostIsolated: 'ha.host.isolated',
  /** The operator powered a VM on (`strata vm start`). */
  haVmStarted: 'ha.vm.started',
  /** The operator powered a VM off (`strata vm stop`). */
  haVmStopped: 'ha.vm.stopped',
  /** A protected VM stopped running unasked and went on the restart list. */
  haVmListed: 'ha.vm.listed',
  /** A VM on the restart list waits: on the wait list (vDisks not accessible), or for capacity. */
  haVmWaiting: 'ha.vm.waiting',
  /** A VM was restarted on a host. */
  haVmRestarted: 'ha.vm.restarted',
  /** A restart attempt failed; it is tried again. */
  haVmRestartFailed: 'ha.vm.restart-failed',
  /** HA gave up restarting a VM after its last attempt. */
  haVmGaveUp: 'ha.vm.gave-up',
  /** A VM stopped running and is not restarted (not HA-protected). */
  haVmNotRestarted: 'ha.vm.not-restarted',
  /** A host's agent powered a VM off by itself: isolation, a lease it could not renew, the VM's process exited. */
  haVmPoweredOff: 'ha.vm.powered-off',
  /** An agent wrote a VM's protection state or restart record for the master, which could not reach the `ha` bucket. */
  haVmSetForMaster: 'ha.vm.set-for-master',
  /** A curator became the curator master (its reason in message). */
  curatorMasterElected: 'curator.master.elected',
  /** The curator master finished a scan of the extent-group map. */
  curatorScanDone: 'curator.scan.done',
  /** The curator master started a scan: its kind, map tasks and reason (`reason`). */
  curatorScanStarted: 'curator.scan.started',
  /** A new curator master resumed the scan its predecessor left: the tasks found done and those mapped again. */
  curatorScanResumed: 'curator.scan.resumed',
  /** A map task of a scan was taken from a curator (`name`) and handed to another: why in `reason`. */
  curatorScanTaskReassigned: 'curator.scan.task.reassigned',
  /** The curator copied a replica of an under-replicated extent group to a new disk. */
  curatorReplicaCopied: 'curator.replica.copied',
  /** A scan's garbage collection deleted replicas no md-egroup entry names (counts in message, bytes in freedBytes). */
  curatorGarbageDeleted: 'curator.garbage.deleted',
  /** A node or disk being drained holds no replica any more: it can be removed (`kind` node or disk, `name`). */
  curatorDrainDone: 'curator.drain.done',
  /** A rebalance moved a replica from a fuller disk to an emptier one (`kind` egroup, `id`, `fromDisk`, `toDisk`, `bytes`, the disks' shares in `reason`). */
  curatorRebalanceMove: 'curator.rebalance.move',
  /** Tiering moved a cold replica down its container's tier order (`kind` egroup, `id`, `fromDisk`, `toDisk`, `bytes`; the tier's share and the extent group's age in `reason`). */
  curatorTierMove: 'curator.tier.move',
  /** The disks are within the rebalance threshold again after moves (the spread in `reason`, the moves in `message`). */
  curatorRebalanceDone: 'curator.rebalance.done',
  /** A scrub found a replica that fails its checksum (`kind` egroup, `id`, `fromDisk` its disk, the failure in `reason`); a copy from a good replica replaces it. */
  curatorScrubDamaged: 'curator.scrub.damaged',
  /** A scrub pass ended (counts in message, `durationMs`). */
  curatorScrubDone: 'curator.scrub.done',
  /** A disk or container passed its warning threshold (used share of capacity). */
  spaceWarning: 'space.warning',
  /** A disk or container has no room for new data: writes to it get NO_SPACE. */
  spaceFull: 'space.full',
  /** A disk or container is back below its warning threshold. */
  spaceOk: 'space.ok',
  /** A deleted vDisk's space was freed and its config record removed (the sweep). */
  vdiskSwept: 'vdisk.swept',
  /** A snapshot of a vDisk was taken (the cut point and the write pause in message). */
  vdiskSnapshotCreated: 'vdisk.snapshot.created',
  /** A writable clone of a snapshot was made. */
  vdiskCloneCreated: 'vdisk.clone.created',
  /** The sweep deleted an extent group kept for a snapshot or clone once no live vDisk named it (why in reason). */
  egroupReclaimed: 'egroup.reclaimed',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const clusterEvent = z.strictObject({
  type: z.enum(EventType),
  /** Wall-clock time, ms since the epoch. */
  atMs: uint,
  /** The config leader epoch under which the event happened; 0 for events the config leader does not publish (relinquish, ha.*). */
  epoch: uint,
  /** The object concerned, when there is one. */
  kind: z.string().optional(),
  id: u64.optional(),
  name: z.string().optional(),
  /** Node incarnation for liveness events. */
  incarnation: uint.optional(),
  /** For owner.changed: the new owner, the old one and the new ownership epoch. */
  owner: z.string().optional(),
  previousOwner: z.string().optional(),
  ownerEpoch: uint.optional(),
  /** For ha.* events: the host concerned, the HA master's epoch, the VM's power-on lease epoch. */
  host: z.string().optional(),
  haEpoch: uint.optional(),
  powerOnEpoch: uint.optional(),
  /** For curator.* events: the curator master's lease epoch. */
  curatorEpoch: uint.optional(),
  /** For curator.replica.copied: the disk copied from and the new replica's disk (the extent group is `id`, `kind` "egroup"). */
  fromDisk: u64.optional(),
  toDisk: u64.optional(),
  /** Bytes copied (curator.replica.copied). */
  bytes: uint.optional(),
  /** Why: the lost replica (curator.replica.copied), what the scan found (curator.scan.done). */
  reason: z.string().optional(),
  /** How long it took (curator.scan.done). */
  durationMs: uint.optional(),
  /** For space.* events: the disk's or container's used and total bytes; for vdisk.swept, the bytes freed. */
  usedBytes: uint.optional(),
  capacityBytes: uint.optional(),
  freedBytes: uint.optional(),
  /** Who caused it: `operator`, `failure-detector`, `election`, `failover`, `relinquish`, `ha-master`, `ha-agent`, `curator`, `space-monitor`, `sweep`. */
  cause: z.string(),
  /** One line for people: `node n2 declared dead after 6012 ms of silence`. */
  message: z.string(),
});
export type ClusterEvent = z.output<typeof clusterEvent>;
