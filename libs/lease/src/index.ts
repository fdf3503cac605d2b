// Leases and leader election over KV with compare-and-set and a growing epoch.
export { Lease, type LeaseOptions, type LeaseBucket, type LeaseLogger } from './lease';
export { decide, validUntil, leaseRecord, type LeaseRecord, type LeaseDecision, type DecideInput, type Observation } from './decide';
