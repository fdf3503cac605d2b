// The sweep of deleted vDisks (issue 17): `strata vdisk rm` marks a vDisk deleting
// (remove.ts), and the sweep frees what it holds and then removes its config object
// (plan.ts decides, sweep.ts deletes, bus-deps.ts wires it to NATS). `strata vdisk
// sweep` runs it; the curator's scan is meant to call sweepDeleted the same way.
export { planSweep, vdiskOfRowKey, type SweepInput, type VdiskSweepPlan, type PlannedEgroup, type ReplicaRef } from './plan';
export { sweepDeleted, describeSwept, SWEEP_LIMITS_DEFAULT, type SweepPorts, type SweepLimits, type SweepResult, type SweptVdisk } from './sweep';
export { sweepPortsFor, type BusSweepOptions } from './bus-deps';
export { markDeleting, openOn, type RemovePorts, type RemoveOutcome } from './remove';
