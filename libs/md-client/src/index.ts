// The metadata maps' client, and the fencing rule of their writes (shared with the shards).
export { MdClient, mdKeyProblem, MD_NOT_HELD_HINT, MD_DEFAULT_TIMEOUT_MS, type MdMaps, type MdEntry, type MdValue, type MdValueInput, type MdClientOptions, type MdWriteOptions } from './client';
export { MdFenceCheck, fenceRefusal, MD_FENCE_ACCEPTED_MAX } from './fence';
