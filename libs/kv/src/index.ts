// Typed JetStream KV: buckets with compare-and-set, watch-fed caches, and a
// whole-bucket fence for single-writer state.
export { openBucket, defaultReplicas, TypedBucket, type Entry, type BucketOptions } from './bucket';
export { WatchCache, type ChangeListener, type WatchCacheOptions } from './watch-cache';
export { StreamFence } from './stream-fence';
export { isWrongLastSequence } from './errors';
export { ensureStream, whileClusterForms, isClusterForming, whileElecting, isElecting, whileUndelivered, isUndelivered } from './cluster-forming';
export { modify, modifyRecord, KEPT_CHANGING_HINT, type CasRecord, type Versioned, type Modified } from './modify';
