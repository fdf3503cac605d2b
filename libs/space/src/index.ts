// Space rules (issue 17), pure: from the disks' capacities and usage reports, the
// state of each disk and each container, and the bytes a container can still place.
// The config leader's space monitor turns state changes into space.* events, `strata
// status` shows the states, and the vdisk-controller refuses a write with NO_SPACE
// when its container cannot place the vDisk's undrained backlog plus the write.
export {
  SpaceState,
  SPACE_THRESHOLDS_DEFAULT,
  checkThresholds,
  diskSpace,
  containerSpace,
  placeableBytes,
  spaceChanges,
  formatBytes,
  type SpaceThresholds,
  type DiskInput,
  type DiskSpace,
  type ContainerInput,
  type ContainerSpace,
  type SpaceChange,
} from './space';
export { spaceReport, type ClusterObjects, type SpaceReport } from './report';
