// The vdisk-controller's parts: the undrained-data index, the oplog link, the vDisk (the oplog itself: @strata/oplog).
export { BlockIndex, overlay, type Segment } from './block-index';
export { OplogLink, type OplogLinkOptions } from './oplog-link';
export { Vdisk, type VdiskPorts, type VdiskSettings, type VdiskShape } from './vdisk';
export { vdiskControllerActor } from './actor';
export { controllerSettings } from './settings';
