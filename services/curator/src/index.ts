// The curator's parts: the pure plan and its view of the cluster, the copy pacing, the actor.
export { plan, judgeReplica, withCopy, missingKey, type ClusterView, type CopyAction, type EgroupRow, type NodeView, type Plan, type PlanSettings, type Policy, type Replica, type Unfixable } from './plan';
export { clusterView, withKeptWriters, writersGone, type ConfigObjects } from './view';
export { ByteBudget, RateMeter, etaMs } from './rate';
export { curatorActor } from './actor';
export { curatorSettings, type CuratorSettings } from './settings';
