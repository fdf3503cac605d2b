// The sweep of deleted vDisks (issue 17): `strata vdisk rm` marks a vDisk deleting
// (remove.ts), and the sweep frees what it holds and then removes its config object
// (plan.ts decides, sweep.ts deletes, bus-deps.ts wires it to NATS). Every curator
// scan runs it first (services/curator master.ts); `strata vdisk sweep` runs it at once.
export { planSweep, planReclaim, ownersToCheck, referencesOf, removedVdisks, vdiskOfRowKey, CREATING_TIMEOUT_MS_DEFAULT, type SweepInput, type ReclaimInput, type ReclaimedEgroup, type VdiskSweepPlan, type PlannedEgroup, type ReplicaRef } from './plan';
export { sweepDeleted, describeSwept, SWEEP_LIMITS_DEFAULT, type LiveReclaim, type SweepPorts, type SweepLimits, type SweepResult, type SweptVdisk } from './sweep';
export { sweepPortsFor, type BusSweepOptions } from './bus-deps';
export { markDeleting, openOn, type RemovePorts, type RemoveOutcome } from './remove';
export { checkCluster, describeFindings, type CheckInput, type DiskContents, type Finding } from './check';
export { planUnnamed, UnnamedSince, releaseBatches, stillUnnamed, type UnnamedEgroup, type UnnamedInput, type UnnamedPorts } from './unnamed';
export { planCompaction, compactionWriters, CompactAsked, type CompactCandidate, type CompactInput } from './compact';
