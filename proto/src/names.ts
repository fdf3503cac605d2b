// Names of subjects, buckets and streams. Subjects are built by these functions
// only, never spelled out in services, so the protocol has one source.

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
  cfg: (op: CfgOp): string => `strata.cfg.${op}`,
  /** Every config request, for the leader's subscription. */
  cfgAll: 'strata.cfg.*',
  /** Events of one category: `strata.events.node`. */
  events: (category: EventCategory): string => `strata.events.${category}`,
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
  /** A metadata partition's lease in `own`: `md.7`. */
  mdPartition: (partition: number): string => `md.${partition}`,
  /** A disk's usage report in `hb`: `disk.12345`. */
  diskUsage: (disk: bigint): string => `disk.${disk}`,
  /** A metadata shard's heartbeat in `hb`: `shard.md-1`. */
  shardHeartbeat: (shard: string): string => `shard.${shard}`,
  /** A vDisk map row in `md-vdisk`: `12345.0`. */
  vdiskRow: (vdisk: bigint, row: number): string => `${vdisk}.${row}`,
  /** An extent group in `md-egroup`: `67890`. */
  egroup: (egroup: bigint): string => `${egroup}`,
} as const;
