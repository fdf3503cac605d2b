// The extent store: a node's disks holding extent-group replicas (DiskStore), and the
// actor that serves them over the bus (ExtentStore).
export { DiskStore, type DiskStoreOptions, type DiskStoreLogger, type EgroupWrite, type EgroupRead, type RecoveryReport } from './disk-store';
export { ExtentStore, type ExtentStoreDeps } from './service';
export { extentStoreSettings, type ExtentStoreSettings } from './settings';
export { SLICE_BYTES_DEFAULT, SLICE_BYTES_MIN, SLICE_BYTES_MAX } from './slices';
export { SIDECAR_FORMAT, sidecarSchema, type Sidecar } from './sidecar';
export { extentStoreActor } from './actor';
