// The configuration interface (proto/config.cddl): the objects of the configuration
// database and the requests that change them. Field checks that need only the field
// itself live here; checks across objects (a vDisk's container exists) live in the
// config service.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';

/** The kinds of configuration objects. */
export const Kind = {
  node: 'node',
  host: 'host',
  disk: 'disk',
  pool: 'pool',
  container: 'container',
  vdisk: 'vdisk',
  vm: 'vm',
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];
export const kinds = Object.values(Kind) as [Kind, ...Kind[]];

export const Tier = { ssd: 'ssd', hdd: 'hdd', cloud: 'cloud' } as const;
export type Tier = (typeof Tier)[keyof typeof Tier];
const tier = z.enum(Tier);

export const Priority = { high: 'high', normal: 'normal', low: 'low' } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

/** How a VM is run on its host: a workload process, or a QEMU guest. */
export const VmDriver = { process: 'process', qemu: 'qemu' } as const;
export type VmDriver = (typeof VmDriver)[keyof typeof VmDriver];

/** The order in which HA restarts VMs after a failure: high first, then medium, then low. */
export const RestartPriority = { high: 'high', medium: 'medium', low: 'low' } as const;
export type RestartPriority = (typeof RestartPriority)[keyof typeof RestartPriority];

/** When a data transformation is applied: never, as data is written, or later by the curator. */
export const Transform = { off: 'off', inline: 'inline', postProcess: 'post-process' } as const;
export type Transform = (typeof Transform)[keyof typeof Transform];

const SECTOR = 512;
const KiB = 1024;
const MiB = 1024 * KiB;

/** Object names: what operators type. `demo`, `n1`, `gold-rf3`. */
export const objectName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 characters: lowercase letters, digits, "-" or "_", starting with a letter or digit');

const positive = uint.refine((v) => v > 0, 'must be greater than 0');
const powerOfTwo = (v: number): boolean => v > 0 && (v & (v - 1)) === 0;

// ---- Specs: what an operator sets -------------------------------------------------

export const nodeSpec = z.strictObject({
  /** Where the node's actors run, for people: `10.0.0.5` or `rack2-host7`. */
  address: z.string().max(255).optional(),
  /**
   * Set by `strata node drain` (unix-ms): the node is leaving. The curator moves every
   * replica on its disks to other nodes (copy first, then drop), and new extent groups
   * are placed elsewhere. Cleared by `strata node drain --cancel`.
   */
  drainingSinceMs: uint.optional(),
});

export const hostSpec = z.strictObject({
  /** The storage node on the same machine, if any (its gateway serves this host's VMs). */
  node: u64.optional(),
  /** CPUs available to VMs. 16 means sixteen vCPUs. */
  cpuCount: positive,
  /** Memory available to VMs, bytes. */
  memoryBytes: positive,
});

export const diskSpec = z.strictObject({
  /** The node whose extent store manages this disk. */
  node: u64,
  /** Directory on that node where extent groups are stored. */
  path: z.string().min(1).max(4096),
  tier,
  /** Capacity Strata may use on this disk, bytes. */
  capacityBytes: positive,
  /** Storage pool the disk belongs to (none: not yet pooled). */
  pool: u64.optional(),
  /**
   * Set by `strata disk drain` or `strata disk rm` (unix-ms): the disk is leaving. The
   * curator moves every replica on it to other disks, and new extent groups are
   * placed elsewhere. Cleared by `strata disk drain --cancel`.
   */
  drainingSinceMs: uint.optional(),
});

export const poolSpec = z.strictObject({
  description: z.string().max(1024).optional(),
});

export const containerSpec = z.strictObject({
  /** Storage pool whose disks hold the data; none means every disk of the cluster. */
  pool: u64.optional(),
  /** Copies of each extent group, on distinct nodes. 2 survives one node failure. */
  replicationFactor: uint.refine((v) => v >= 1 && v <= 5, 'must be between 1 and 5').default(2),
  dedup: z.enum(Transform).default('off'),
  compression: z.enum(Transform).default('off'),
  /** Upper bound of the content-defined chunker's extents, bytes (dedup only). */
  maxDedupExtentBytes: uint.refine((v) => v >= 4 * KiB && v <= 1 * MiB && powerOfTwo(v), 'must be a power of two from 4 KiB to 1 MiB').default(16 * KiB),
  /** Most data the container may hold (logical bytes); none means unlimited. */
  maxCapacityBytes: positive.optional(),
  /** Capacity set aside for this container, bytes. */
  reservedCapacityBytes: uint.default(0),
  /** Tiers from hottest to coldest; new data goes to the first with space. */
  tierOrder: z
    .array(tier)
    .min(1)
    .max(3)
    .refine((t) => new Set(t).size === t.length, 'must not name a tier twice')
    .default(['ssd', 'hdd']),
});

export const qosSpec = z
  .strictObject({
    priority: z.enum(Priority).default('normal'),
    /** Fair-share weight within the priority class. 3 gets three times the share of 1. */
    weight: uint.refine((v) => v >= 1 && v <= 1000, 'must be between 1 and 1000').default(1),
    /** Most reads and writes a second; 500 means at most 500 after the burst. None: no cap. */
    iopsCap: uint.refine((v) => v >= 1 && v <= 10_000_000, 'must be from 1 to 10000000 operations a second').optional(),
    /** Most bytes a second; 104857600 means 100 MiB/s. None: no cap. */
    bandwidthCapBytesPerSec: uint.refine((v) => v >= 4096, 'must be at least 4096 bytes a second').optional(),
    /** Burst allowance of the caps: a capped vDisk may run ahead of its cap by this much time's worth of it. 500 means half a second; default 1000. */
    burstMs: uint.refine((v) => v >= 10 && v <= 60_000, 'must be from 10 to 60000 ms').optional(),
    /** Operations a second this vDisk gets before any other, while it has work and the node can deliver them. */
    reservedIops: uint.refine((v) => v >= 1 && v <= 1_000_000, 'must be from 1 to 1000000 operations a second').optional(),
  })
  .refine((q) => q.reservedIops === undefined || q.iopsCap === undefined || q.reservedIops <= q.iopsCap, {
    message: 'must not exceed iopsCap (a reservation above the cap could never be met)',
    path: ['reservedIops'],
  })
  .refine((q) => q.burstMs === undefined || q.iopsCap !== undefined || q.bandwidthCapBytesPerSec !== undefined, {
    message: 'applies to caps: set iopsCap or bandwidthCapBytesPerSec too',
    path: ['burstMs'],
  });

export const vdiskSpec = z.strictObject({
    container: u64,
    /** Size in bytes: a positive multiple of 512. 1073741824 means 1 GiB. */
    sizeBytes: uint.refine((v) => v > 0 && v % SECTOR === 0, 'must be a positive multiple of 512 bytes'),
    /** vDisk block size, bytes: a power of two from 4 KiB to 1 MiB. */
    blockSizeBytes: uint.refine((v) => v >= 4 * KiB && v <= 1 * MiB && powerOfTwo(v), 'must be a power of two from 4 KiB to 1 MiB').default(1 * MiB),
    /** Shared: many hosts may do I/O at once (forwarded to the owner). */
    shared: z.boolean().default(false),
    qos: qosSpec.default({ priority: 'normal', weight: 1 }),
    /**
     * Set by `strata vdisk rm` (unix-ms): the vDisk is being deleted, the tentative
     * half of a delete. It cannot be attached, written or read, nor changed back; the
     * sweep frees its space and then removes the object (the commit).
     */
    deletingSinceMs: uint.optional(),
    /**
     * A snapshot: the id of the vDisk it was cut from. A snapshot is read-only (writes
     * are refused INVALID, NBD exports it read-only) and cannot itself be snapshotted.
     */
    snapshotOf: u64.optional(),
    /** A clone: the id of the snapshot it was made from (its blocks are shared until written). */
    cloneOf: u64.optional(),
    /**
     * Set while a snapshot or clone is being made (unix-ms): the tentative half of the
     * operation. Not served; the commit removes it; the sweep deletes one left behind
     * (an interrupted operation) after the sweep's creating timeout.
     */
    creatingSinceMs: uint.optional(),
});

export const vmSpec = z.strictObject({
  /** The host the VM is placed on: `strata vm start` powers it on there. Where it runs now is HA's state (`ha` bucket). */
  host: u64,
  cpuCount: positive,
  memoryBytes: positive,
  vdisks: z.array(u64).max(64).default([]),
  /** Restart the VM elsewhere when its host fails. */
  haProtected: z.boolean().default(true),
  /** How the host runs it. */
  driver: z.enum(VmDriver).default('process'),
  /** After a failure, VMs are restarted in priority order. */
  restartPriority: z.enum(RestartPriority).default('medium'),
});

export const specs = {
  node: nodeSpec,
  host: hostSpec,
  disk: diskSpec,
  pool: poolSpec,
  container: containerSpec,
  vdisk: vdiskSpec,
  vm: vmSpec,
} as const satisfies Record<Kind, z.ZodType>;

export type NodeSpec = z.output<typeof nodeSpec>;
export type HostSpec = z.output<typeof hostSpec>;
export type DiskSpec = z.output<typeof diskSpec>;
export type PoolSpec = z.output<typeof poolSpec>;
export type ContainerSpec = z.output<typeof containerSpec>;
export type VdiskSpec = z.output<typeof vdiskSpec>;
export type QosSpec = z.output<typeof qosSpec>;
export type VmSpec = z.output<typeof vmSpec>;

// ---- Status: what the system observes (nodes only, for now) ---------------------------

export const Liveness = { unknown: 'unknown', alive: 'alive', dead: 'dead' } as const;
export type Liveness = (typeof Liveness)[keyof typeof Liveness];

export const nodeStatus = z.strictObject({
  liveness: z.enum(Liveness),
  /** Grows each time the node's process starts or rejoins after being declared dead. */
  incarnation: uint,
  /** Wall-clock time of the last liveness change, ms since the epoch. */
  changedAtMs: uint,
});
export type NodeStatus = z.output<typeof nodeStatus>;

// ---- Stored objects ------------------------------------------------------------------

/** Fields every configuration object has, whatever its kind. */
const objectFields = {
  /** 64-bit id, unique across all kinds, never reused. 4294967301 is a valid id. */
  id: u64,
  name: objectName,
  createdAtMs: uint,
  updatedAtMs: uint,
  /** The config leader epoch that wrote this version. */
  epoch: uint,
};

/** One schema per kind, so a decoded object's spec has its real types (ids as bigint). */
function objectVariants<E extends z.ZodRawShape>(extra: E) {
  return [
    z.strictObject({ kind: z.literal('node'), ...objectFields, spec: nodeSpec, status: nodeStatus, ...extra }),
    z.strictObject({ kind: z.literal('host'), ...objectFields, spec: hostSpec, ...extra }),
    z.strictObject({ kind: z.literal('disk'), ...objectFields, spec: diskSpec, ...extra }),
    z.strictObject({ kind: z.literal('pool'), ...objectFields, spec: poolSpec, ...extra }),
    z.strictObject({ kind: z.literal('container'), ...objectFields, spec: containerSpec, ...extra }),
    z.strictObject({ kind: z.literal('vdisk'), ...objectFields, spec: vdiskSpec, ...extra }),
    z.strictObject({ kind: z.literal('vm'), ...objectFields, spec: vmSpec, ...extra }),
  ] as const;
}

/** A configuration object as stored in the `cfg` bucket (key `<kind>.<id>`). */
export const cfgObject = z.discriminatedUnion('kind', objectVariants({}));
export type CfgObject = z.output<typeof cfgObject>;

/** An object with its KV revision (the compare-and-set token), as replies carry it. */
export const cfgObjectWithRevision = z.discriminatedUnion('kind', objectVariants({ revision: uint }));
export type CfgObjectWithRevision = z.output<typeof cfgObjectWithRevision>;

/** The object of one kind: `ObjectOf<'vdisk'>` has `spec: VdiskSpec`. */
export type ObjectOf<K extends Kind> = Extract<CfgObjectWithRevision, { kind: K }>;

// ---- Requests and replies ---------------------------------------------------------------

/** Names an object by id or by name (exactly one). */
const selector = {
  kind: z.enum(Kind),
  id: u64.optional(),
  name: objectName.optional(),
};
const oneOf = (r: { id?: bigint | undefined; name?: string | undefined }): boolean => (r.id === undefined) !== (r.name === undefined);
const oneOfMessage = { message: 'give exactly one of id and name' };

/** Creates an object: `{kind: 'vdisk', name: 'demo', spec: {container: 5, sizeBytes: 1073741824}}`. */
export const createRequest = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('node'), name: objectName, spec: nodeSpec }),
  z.strictObject({ kind: z.literal('host'), name: objectName, spec: hostSpec }),
  z.strictObject({ kind: z.literal('disk'), name: objectName, spec: diskSpec }),
  z.strictObject({ kind: z.literal('pool'), name: objectName, spec: poolSpec }),
  z.strictObject({ kind: z.literal('container'), name: objectName, spec: containerSpec }),
  z.strictObject({ kind: z.literal('vdisk'), name: objectName, spec: vdiskSpec }),
  z.strictObject({ kind: z.literal('vm'), name: objectName, spec: vmSpec }),
]);
export type CreateRequest = z.input<typeof createRequest>;

export const getRequest = z.strictObject(selector).refine(oneOf, oneOfMessage);
export type GetRequest = z.input<typeof getRequest>;

export const listRequest = z.strictObject({ kind: z.enum(Kind) });
export type ListRequest = z.input<typeof listRequest>;
export const listReply = z.strictObject({ objects: z.array(cfgObjectWithRevision) });

const updateFields = {
  id: u64.optional(),
  name: objectName.optional(),
  /** Compare-and-set: refuse with CONFLICT unless the object is at this revision. */
  revision: uint.optional(),
};

/** Replaces an object's whole spec (not a patch); the spec is checked like a create. */
export const updateRequest = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('node'), ...updateFields, spec: nodeSpec }),
    z.strictObject({ kind: z.literal('host'), ...updateFields, spec: hostSpec }),
    z.strictObject({ kind: z.literal('disk'), ...updateFields, spec: diskSpec }),
    z.strictObject({ kind: z.literal('pool'), ...updateFields, spec: poolSpec }),
    z.strictObject({ kind: z.literal('container'), ...updateFields, spec: containerSpec }),
    z.strictObject({ kind: z.literal('vdisk'), ...updateFields, spec: vdiskSpec }),
    z.strictObject({ kind: z.literal('vm'), ...updateFields, spec: vmSpec }),
  ])
  .refine(oneOf, oneOfMessage);
export type UpdateRequest = z.input<typeof updateRequest>;

export const deleteRequest = z
  .strictObject({ ...selector, revision: uint.optional() })
  .refine(oneOf, oneOfMessage);
export type DeleteRequest = z.input<typeof deleteRequest>;
export const deleteReply = z.strictObject({ deleted: cfgObjectWithRevision });

export const statusRequest = z.strictObject({});
export const statusReply = z.strictObject({
  /** The replica answering (always the leader). */
  leader: z.string(),
  epoch: uint,
  /** How many objects of each kind exist. */
  counts: z.record(z.string(), uint),
  nodes: z.strictObject({ alive: uint, dead: uint, unknown: uint }),
});
export type StatusReply = z.output<typeof statusReply>;

/** The config leader's takeover marker, key `leader` in `cfg`: writing it fences the previous leader. */
export const cfgLeaderMarker = z.strictObject({
  /** The replica that leads (`config-2`). */
  holder: z.string(),
  /** Its lease epoch. */
  epoch: uint,
  /** Wall-clock time of the takeover, ms since the epoch. */
  atMs: uint,
});
export type CfgLeaderMarker = z.output<typeof cfgLeaderMarker>;

/** Anything stored in the `cfg` bucket. */
export const cfgEntry = z.union([cfgObject, cfgLeaderMarker]);
export type CfgEntry = z.output<typeof cfgEntry>;
