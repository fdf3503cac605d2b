// The vdisk-controller's parts: the undrained-data index, the oplog appender, the vDisk.
export { BlockIndex, overlay, type Segment } from './block-index';
export { OplogAppender, type OplogAppenderOptions } from './oplog';
export { OplogLink, type OplogLinkOptions } from './oplog-link';
export { oplogFetcher, readTail, type FetchFrom, type ReplayPlan, type TailMessage } from './oplog-replay';
export { Vdisk, type VdiskPorts, type VdiskSettings, type VdiskShape } from './vdisk';
export { vdiskControllerActor } from './actor';
export { controllerSettings } from './settings';
