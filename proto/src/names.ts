// Names of subjects, buckets and streams. Subjects are built by these functions
// only, never spelled out in services, so the protocol has one source.
import type { CuratorOp } from './curator';
import type { HaAgentOp, HaMasterOp } from './ha';

/** Operations of the configuration interface (proto/config.cddl). */
export const CfgOp = {
  create: 'create',
  get: 'get',
  list: 'list',
  update: 'update',
  delete: 'delete',
  status: 'status',
} as const;
export type CfgOp = (typeof CfgOp)[keyof typeof CfgOp];

export const subjects = {
  /** Requests to the config leader: `strata.cfg.create`. */
  cfg: (op: CfgOp | '*'): string => `strata.cfg.${op}`,
  /** Every config request, for the leader's subscription. */
  cfgAll: 'strata.cfg.*',
  /** Events of one category: `strata.events.node`. */
  events: (category: EventCategory | '*'): string => `strata.events.${category}`,
  /** Every event (the EVENTS stream's subjects). */
  eventsAll: 'strata.events.>',
  /** vDisk I/O to a node's io-director: `strata.io.n1.write`. */
  io: (node: string, op: string): string => `strata.io.${node}.${op}`,
  /** vDisk I/O to a node's admission control: `strata.adm.n1.read`. */
  admission: (node: string, op: string): string => `strata.adm.${node}.${op}`,
  /** vDisk I/O to a node's vdisk-controller: `strata.vdc.n1.write`. */
  controller: (node: string, op: string): string => `strata.vdc.${node}.${op}`,
  /** A node's extent store: `strata.estore.n1.read`. */
  estore: (node: string, op: string): string => `strata.estore.${node}.${op}`,
  /** The metadata shard serving a partition: `strata.md.7.get`. */
  md: (partition: number, op: string): string => `strata.md.${partition}.${op}`,
  /** A vDisk's oplog: `oplog.12345`. */
  oplog: (vdisk: bigint): string => `oplog.${vdisk}`,
  /** An HA agent's heartbeat, published every heartbeat interval: `strata.ha.hb.n1`. */
  haHeartbeat: (host: string): string => `strata.ha.hb.${host}`,
  /** Every HA agent's heartbeat, for the agents' subscriptions. */
  haHeartbeatAll: 'strata.ha.hb.*',
  /** Requests to a host's HA agent: `strata.ha.agent.n1.power-on`. */
  haAgent: (host: string, op: HaAgentOp | '*'): string => `strata.ha.agent.${host}.${op}`,
  /** Requests to the HA master: `strata.ha.master.status`. */
  haMaster: (op: HaMasterOp | '*'): string => `strata.ha.master.${op}`,
  /** Requests to the curator master: `strata.curator.status`. */
  curator: (op: CuratorOp | '*'): string => `strata.curator.${op}`,
  /** A map task of a curator scan, to one node's curator: `strata.curator.n2.map`. */
  curatorMap: (node: string): string => `strata.curator.${node}.map`,
  /** An actor instance's health check: `strata.health.config.config-1`. */
  health: (actor: string, instance: string): string => `strata.health.${actor}.${instance}`,
} as const;

/** Categories of cluster events. */
export const EventCategory = {
  /** Configuration objects created, updated or deleted. */
  cfg: 'cfg',
  /** Node liveness: declared dead, alive again, restarted. */
  node: 'node',
  /** Leader elections of the cluster's roles. */
  leader: 'leader',
  /** vDisk ownership moves: failover, relinquish. */
  owner: 'owner',
  /** HA decisions: masters elected, hosts failed or isolated, VMs started, stopped, restarted or not. */
  ha: 'ha',
  /** Curator work: masters elected, scans done, replicas copied. */
  curator: 'curator',
  /** Space: disks and containers crossing their warning or full threshold, vDisks swept. */
  space: 'space',
} as const;
export type EventCategory = (typeof EventCategory)[keyof typeof EventCategory];

/** KV buckets (design.md, "Shared state"). */
export const buckets = {
  cfg: 'cfg',
  mdVdisk: 'md-vdisk',
  mdExtent: 'md-extent',
  mdEgroup: 'md-egroup',
  hb: 'hb',
  own: 'own',
  ha: 'ha',
  /** The 64-bit id allocator's counter. */
  ids: 'ids',
} as const;

/** JetStream streams. */
export const streams = {
  events: 'EVENTS',
  oplog: 'OPLOG',
} as const;

/** Keys inside the buckets. */
export const keys = {
  /** A config object: `vdisk.12345`. */
  object: (kind: string, id: bigint): string => `${kind}.${id}`,
  /** The config leader's takeover marker in `cfg`. */
  cfgLeader: 'leader',
  /** The config leader's lease in `own`. */
  configLeaderLease: 'role.config',
  /** A node's heartbeat in `hb`: `node.12345`. */
  nodeHeartbeat: (nodeId: bigint): string => `node.${nodeId}`,
  /** The global id counter in `ids`. */
  idCounter: 'global',
  /** A vDisk's ownership record in `own`: `vdisk.12345`. */
  vdiskOwnership: (vdisk: bigint): string => `vdisk.${vdisk}`,
  /** Every vDisk's ownership record in `own`, as a watch filter: `vdisk.>`. */
  vdiskOwnershipAll: 'vdisk.>',
  /** A failover in progress in `own`: `takeover.12345`. */
  takeover: (vdisk: bigint): string => `takeover.${vdisk}`,
  /** Every failover in progress in `own`, as a watch filter: `takeover.>`. */
  takeoverAll: 'takeover.>',
  /** A metadata partition's lease in `own`: `md.7`. */
  mdPartition: (partition: number): string => `md.${partition}`,
  /** A disk's usage report in `hb`: `disk.12345`. */
  diskUsage: (disk: bigint): string => `disk.${disk}`,
  /** The vDisks a node's gateway has open, in `hb`: `attach.n1`. */
  gatewayAttachments: (node: string): string => `attach.${node}`,
  /** Every gateway's attachments in `hb`, as a watch filter. */
  gatewayAttachmentsAll: 'attach.>',
  /** Every disk's usage report in `hb`, as a watch filter. */
  diskUsageAll: 'disk.>',
  /** A metadata shard's heartbeat in `hb`: `shard.md-1`. */
  shardHeartbeat: (shard: string): string => `shard.${shard}`,
  /** A vDisk map row in `md-vdisk`: `12345.0`. */
  vdiskRow: (vdisk: bigint, row: number): string => `${vdisk}.${row}`,
  /** An extent group in `md-egroup`: `67890`. */
  egroup: (egroup: bigint): string => `${egroup}`,
  /** The HA master's lease in `own`. */
  haMasterLease: 'role.ha',
  /** A VM's protection state in `ha`: `vm.12360`. */
  vmProtection: (vm: bigint): string => `vm.${vm}`,
  /** Every VM's protection state in `ha`, as a watch filter. */
  vmProtectionAll: 'vm.>',
  /** A host's record in `ha`: `host.n1`. */
  hostRecord: (host: string): string => `host.${host}`,
  /** Every host record in `ha`, as a watch filter. */
  hostRecordAll: 'host.>',
  /** A VM's power-on lease in `ha`: `poweron.12360`. */
  powerOnLease: (vm: bigint): string => `poweron.${vm}`,
  /** Every power-on lease in `ha`, as a watch filter. */
  powerOnLeaseAll: 'poweron.>',
  /** A VM's restart record in `ha` (on the restart or wait list): `restart.12360`. */
  restartRecord: (vm: bigint): string => `restart.${vm}`,
  /** Every restart record in `ha`, as a watch filter. */
  restartRecordAll: 'restart.>',
  /** The curator master's lease in `own`. */
  curatorMasterLease: 'curator.master',
  /** The curator master's progress in `own`. */
  curatorProgress: 'curator.progress',
  /** The curator scan running, in `own` (its map outputs under curator.map.>). */
  curatorScan: 'curator.scan',
  /** One page of a map task's output, in `own`: `curator.map.3.0`. */
  curatorMapOutput: (task: number, page: number): string => `curator.map.${task}.${page}`,
  /** Every map output in `own`, as a filter. */
  curatorMapOutputAll: 'curator.map.>',
} as const;
