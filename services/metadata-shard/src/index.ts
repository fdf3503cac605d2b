// The metadata shard as a library: the shard itself (main.ts runs it as a process),
// its settings, heartbeat record, and the pure rules of balancing and caching.
export { MetadataShard, type ShardDeps } from './shard';
export { shardSettings, resolveSettings, type ShardSettings, type ShardSettingsInput } from './settings';
export { shardHeartbeat, livePeers, observePeer, observeRevision, MISSED_BEATS_MAX, type ShardHeartbeat, type PeerObservation } from './peers';
export { decideBalance, fairShare, unservedForMs, type BalanceInput, type BalanceDecision, type PartitionRecord, type Acquire } from './balance';
export { MdCache, type CachedValue, type Ticket } from './cache';
export { MdStore, openMdBuckets, bucketOfMap, type MdBucket, type MdBuckets } from './store';
export { validateValue, checkPartition } from './requests';
export { metadataShardActor } from './actor';
