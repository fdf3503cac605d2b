// The I/O path's messages (proto/io.cddl): vDisk I/O from the gateway through the
// io-director and admission to the vdisk-controller; the oplog; extent-group reads
// and writes at the extent stores; the metadata maps served by the metadata shards;
// and vDisk ownership in the `own` bucket.
import { z } from 'zod';
import { bytes, u64, uint } from '@strata/codec';
import { Priority } from './config';

// ---- vDisk I/O (gateway -> io-director -> admission -> vdisk-controller) -------------

/**
 * The most data one I/O message carries. NBD requests larger than this are split by
 * the gateway (see ioChunkBytes: 256 KiB on a server with NATS's default 1 MiB
 * payload limit).
 */
export const IO_CHUNK_BYTES = 1024 * 1024;

/** The chunk a gateway uses on a server with NATS's default payload limit. */
export const IO_CHUNK_BYTES_DEFAULT_SERVER = 256 * 1024;

/**
 * The largest I/O message a gateway sends to servers that accept `maxPayload` bytes:
 * IO_CHUNK_BYTES (1 MiB) when a message of it, and the extent-store write it becomes,
 * fit with room to spare (Strata's own servers take 8 MB), else 256 KiB. A 1 MiB NBD
 * write is then one message and one replica write per replica instead of four: on a
 * 2-core machine its latency fell from 40 to 24 ms.
 */
export function ioChunkBytes(maxPayload: number | undefined): number {
  return maxPayload !== undefined && maxPayload >= 2 * IO_CHUNK_BYTES ? IO_CHUNK_BYTES : IO_CHUNK_BYTES_DEFAULT_SERVER;
}

/** Reads `length` bytes at `offset`: offset 4096, length 4096 is the second 4 KiB block. */
/**
 * The class admission scheduled a request in, set by admission on what it passes to
 * the controller (absent before): the controller paces the drains of lower-class
 * vDisks while high-class I/O is being served.
 */
const scheduledAs = z.enum(Priority).optional();

export const ioReadRequest = z.strictObject({ vdisk: u64, offset: uint, length: uint, priority: scheduledAs });
export const ioReadReply = z.strictObject({ data: bytes });

/** Writes `data` at `offset`; acknowledged only once the oplog has stored it (a direct write: its `ref`, after its extent-group replicas took the bytes). */
export const ioWriteRequest = z.strictObject({
  vdisk: u64,
  offset: uint,
  data: bytes,
  /** Forced unit access: NBD's FUA flag. Every acknowledged write is durable anyway. */
  fua: z.boolean().optional(),
  priority: scheduledAs,
});

/** Makes a range read as zeros (NBD TRIM and WRITE_ZEROES). */
export const ioZeroRequest = z.strictObject({ vdisk: u64, offset: uint, length: uint, priority: scheduledAs });

/** Makes earlier acknowledged writes durable (they already are: the oplog is). */
export const ioFlushRequest = z.strictObject({ vdisk: u64, priority: scheduledAs });

/** Replies of write, zero and flush. */
export const ioDoneReply = z.strictObject({});

export type IoReadRequest = z.output<typeof ioReadRequest>;
export type IoWriteRequest = z.output<typeof ioWriteRequest>;
export type IoZeroRequest = z.output<typeof ioZeroRequest>;
export type IoFlushRequest = z.output<typeof ioFlushRequest>;

export const IoOp = { read: 'read', write: 'write', zero: 'zero', flush: 'flush' } as const;
/** Requests to a vdisk-controller beside I/O: `strata.vdc.<node>.open`, `.relinquish`, `.snapshot`, `.record-copy`, `.release`, `.compact`. */
export const VdcOp = { open: 'open', relinquish: 'relinquish', snapshot: 'snapshot', recordCopy: 'record-copy', release: 'release', compact: 'compact' } as const;
/** Requests to an io-director beside I/O: `strata.io.<node>.attach`, `.snapshot` (forwarded to the owner's controller). */
export const DirectorOp = { attach: 'attach', snapshot: 'snapshot' } as const;
export type IoOp = (typeof IoOp)[keyof typeof IoOp];

// ---- The oplog (stream OPLOG, subject oplog.<vdisk>) ------------------------------------

export const oplogOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('write'), offset: uint, data: bytes }),
  z.strictObject({ op: z.literal('zero'), offset: uint, length: uint }),
  /**
   * A direct write: the range's bytes were written to every replica of extent group
   * `egroup`, at `egOffset`, before this op was appended; this op is its commit point.
   */
  z.strictObject({ op: z.literal('ref'), offset: uint, length: uint, egroup: u64, egOffset: uint }),
]);
export type OplogOp = z.output<typeof oplogOp>;

/** One oplog message: a group commit of every write that arrived meanwhile, or a takeover marker. */
export const oplogEntry = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('ops'),
    /** The owner epoch that appended it. */
    epoch: uint,
    ops: z.array(oplogOp).min(1),
  }),
  z.strictObject({
    kind: z.literal('marker'),
    epoch: uint,
    /** The node that took ownership (`n2`). */
    owner: z.string(),
  }),
]);
export type OplogEntry = z.output<typeof oplogEntry>;

// ---- Ownership (bucket own, key vdisk.<id>) -------------------------------------------------

export const vdiskOwnership = z.strictObject({
  /** The node whose vdisk-controller alone serves the vDisk (`n2`). */
  owner: z.string(),
  /** Fencing token: grows with every change of owner. */
  epoch: uint,
  /** Nodes willing to take over, in order. */
  volunteers: z.array(z.string()).max(1024).default([]),
  /** The last oplog sequence whose data is in extent groups and metadata. */
  drained: uint.default(0),
  /**
   * The vDisk's generation, bumped by each snapshot: a block whose location carries a
   * lower one is shared with a snapshot, and drain never writes it in place.
   */
  generation: uint.default(0),
});
export type VdiskOwnership = z.output<typeof vdiskOwnership>;

// ---- Ownership changes -----------------------------------------------------------------------

/** `strata.io.<node>.attach`: a gateway on this node opened the vDisk (NBD GO); the node volunteers to take it over. */
export const ioAttachRequest = z.strictObject({
  vdisk: u64,
});
export type IoAttachRequest = z.output<typeof ioAttachRequest>;

/** The vDisk's ownership after the attach: its owner (claimed by this node if it had none), epoch and volunteers. */
export const ioAttachReply = z.strictObject({
  owner: z.string(),
  epoch: uint,
  volunteers: z.array(z.string()).max(1024),
});
export type IoAttachReply = z.output<typeof ioAttachReply>;

/** `strata.vdc.<node>.open`: the takeover's replay step; the new owner replays the oplog tail and serves. */
export const vdcOpenRequest = z.strictObject({
  vdisk: u64,
  /** The ownership epoch the coordinator gave this node; an older or newer record is NOT_OWNER. */
  epoch: uint,
});
export type VdcOpenRequest = z.output<typeof vdcOpenRequest>;

export const vdcOpenReply = z.strictObject({
  epoch: uint,
  /** Oplog entries replayed into the index. */
  replayed: uint,
  /** The oplog's last sequence once the vDisk was served (its takeover marker). */
  lastSeq: uint,
});
export type VdcOpenReply = z.output<typeof vdcOpenReply>;

/** `strata.vdc.<node>.relinquish`: hand an unshared vDisk to the node its VM moved to. */
export const vdcRelinquishRequest = z.strictObject({
  vdisk: u64,
  /** The node that asks for it (`n3`). */
  to: z.string(),
});
export type VdcRelinquishRequest = z.output<typeof vdcRelinquishRequest>;

export const vdcRelinquishReply = z.strictObject({
  /** The owner now (`to`, unless the vDisk had already moved elsewhere). */
  owner: z.string(),
  epoch: uint,
});
export type VdcRelinquishReply = z.output<typeof vdcRelinquishReply>;

/**
 * `strata.vdc.<node>.snapshot` (and `strata.io.<node>.snapshot`, which the director
 * forwards to the owner's controller): the owner cuts a snapshot of `vdisk` into the
 * rows of `snapshot`, a tentative vDisk the CLI created (snapshotOf = vdisk).
 */
export const vdcSnapshotRequest = z.strictObject({
  vdisk: u64,
  /** The snapshot's vDisk id: its rows receive a copy of the source's. */
  snapshot: u64,
});
export type VdcSnapshotRequest = z.output<typeof vdcSnapshotRequest>;

export const vdcSnapshotReply = z.strictObject({
  /** The source's generation after the snapshot: its blocks below it are shared. */
  generation: uint,
  /** The last oplog sequence the snapshot holds: every write stored up to it, none after. */
  cutSeq: uint,
  /** Rows copied, and blocks they hold. */
  rows: uint,
  blocks: uint,
  /** How long new writes to the source were held, ms. */
  pauseMs: uint,
});
export type VdcSnapshotReply = z.output<typeof vdcSnapshotReply>;

/** The steps of a failover takeover, in order (design.md, "Ownership, liveness, fencing"). */
export const TakeoverStep = { claim: 'claim', fence: 'fence', replay: 'replay', serve: 'serve' } as const;
export type TakeoverStep = (typeof TakeoverStep)[keyof typeof TakeoverStep];

/**
 * A failover in progress, `takeover.<vdisk>` in `own`, written by the config leader
 * after every step so that the next leader resumes it where it stopped.
 */
export const takeoverRecord = z.strictObject({
  vdisk: u64,
  /** The next step to run. */
  step: z.enum(TakeoverStep),
  /** The owner that failed (`n2`). */
  from: z.string(),
  /** The node taking over (`n1`). */
  to: z.string(),
  /** The ownership epoch the new owner gets. */
  epoch: uint,
  /** Why: `node n2 declared dead`. */
  reason: z.string(),
  /** When the takeover began (unix-ms). */
  startedAtMs: uint,
  /** Failed attempts at the current step. */
  attempts: uint,
  /** Nodes that could not take over (unreachable), not to be chosen again. */
  excluded: z.array(z.string()).max(1024),
});
export type TakeoverRecord = z.output<typeof takeoverRecord>;

// ---- Extent stores (strata.estore.<node>.<op>) --------------------------------------------

/** Most bytes one extent-store read returns, and most pieces one write carries. */
export const EG_READ_BYTES_MAX = 4 * 1024 * 1024;
export const EG_WRITE_PIECES_MAX = 4096;

/**
 * One run of bytes of an extent-group write: `data` at `offset`, or `zeros` bytes of
 * zeros at `offset` (a trimmed range costs no payload).
 */
export const egPiece = z.union([z.strictObject({ offset: uint, data: bytes }), z.strictObject({ offset: uint, zeros: uint })]);
/** A piece as written by a sender (any Uint8Array view) or decoded by a store. */
export type EgPiece = { offset: number; data: Uint8Array } | { offset: number; zeros: number };

/**
 * Writes `pieces` into an extent-group replica in place and makes it the replica's
 * version `version`. The replica grows to `sizeBytes` first if it is smaller (new
 * extents are allocated at its end; bytes never written read as zeros), and every
 * piece must end within it. The store applies the write when the replica is below
 * `version` (absent counts as 0); at `version` with the same pieces it is a retry,
 * answered without writing again. Data is fsynced before the reply. The store keeps a
 * CRC32C per slice of the replica and checks it on every read.
 */
export const egWriteRequest = z.strictObject({
  disk: u64,
  egroup: u64,
  /** The vDisk that owns the extent group (only it ever writes it). */
  vdisk: u64,
  /** The writer's ownership epoch for that vDisk: a lower one than the replica has seen is FENCED. */
  epoch: uint,
  /** The replica version after this write: above every version tried before. */
  version: uint,
  /** The replica's size after this write (never shrinks). */
  sizeBytes: uint,
  pieces: z.array(egPiece).min(1).max(EG_WRITE_PIECES_MAX),
});
/** `crc32c`: of the pieces' bytes in request order (zeros included), as the store received them. */
export const egWriteReply = z.strictObject({ version: uint, crc32c: uint });

/**
 * Reads any range of a replica below its size; every slice the range touches is
 * checked against its CRC32C first (CHECKSUM on a mismatch).
 */
export const egReadRequest = z.strictObject({ disk: u64, egroup: u64, offset: uint, length: uint });
export const egReadReply = z.strictObject({ data: bytes });

/** A replica's version and size. */
export const egStatRequest = z.strictObject({ disk: u64, egroup: u64 });
export const egStatReply = z.strictObject({ version: uint, sizeBytes: uint });

/** Removes a replica (the curator's garbage collection, services/curator/src/gc.ts). */
export const egDeleteRequest = z.strictObject({ disk: u64, egroup: u64 });
/** The reply to a delete: empty, also when the replica was not there. */
export const egDeleteReply = z.strictObject({});

/** Replicas a list returns when the request says no limit. */
export const EG_LIST_LIMIT_DEFAULT = 1000;
/** Replicas a list returns at most: a bounded reply (about 40 bytes each). */
export const EG_LIST_LIMIT_MAX = 10_000;

/**
 * One page of the replicas on a disk, in ascending extent-group id, after `after`
 * (exclusive) when given. `more`: replicas follow the last one returned (ask again
 * with `after` set to its id).
 */
export const egListRequest = z.strictObject({ disk: u64, after: u64.optional(), limit: uint.pipe(z.number().min(1, 'a page holds at least 1 replica').max(EG_LIST_LIMIT_MAX, `a page holds at most ${EG_LIST_LIMIT_MAX} replicas`)).optional() });
/** `mtimeMs`: wall-clock time of the replica's last write (or of its files, after a restart). */
export const egListedReplica = z.strictObject({ egroup: u64, sizeBytes: uint, version: uint, mtimeMs: uint });
export const egListReply = z.strictObject({ replicas: z.array(egListedReplica).max(EG_LIST_LIMIT_MAX), more: z.boolean() });
export type EgListedReplica = z.output<typeof egListedReplica>;

export const EstoreOp = { write: 'write', read: 'read', stat: 'stat', delete: 'delete', list: 'list' } as const;
export type EstoreOp = (typeof EstoreOp)[keyof typeof EstoreOp];

/** A disk's usage, in the `hb` bucket under `disk.<id>`, rewritten by its extent store. */
export const diskUsage = z.strictObject({
  node: z.string(),
  usedBytes: uint,
  capacityBytes: uint,
  atMs: uint,
});
export type DiskUsage = z.output<typeof diskUsage>;

/**
 * The vDisks a node's gateway has open (NBD connections in transmission), in the `hb`
 * bucket under `attach.<node>`: rewritten when one opens or closes and every few
 * seconds, deleted when the gateway stops. `strata vdisk rm` refuses a vDisk listed here.
 */
export const gatewayAttachments = z.strictObject({
  node: z.string(),
  /** Each open vDisk with its number of connections. */
  vdisks: z.array(z.strictObject({ vdisk: u64, connections: uint })),
  atMs: uint,
  /** How often the gateway rewrites it: a report older than a few intervals is stale (its gateway died). */
  intervalMs: uint,
});
export type GatewayAttachments = z.output<typeof gatewayAttachments>;

// ---- Metadata maps (buckets md-vdisk, md-extent, md-egroup) -----------------------------------

/**
 * Where a block's data lives: an extent of `length` bytes at `offset` of an extent
 * group. Drain rewrites the extent in place; its checksums are kept per slice by the
 * replicas themselves.
 */
export const blockLocation = z.strictObject({
  egroup: u64,
  offset: uint,
  length: uint,
  /**
   * The vDisk generation (vdiskOwnership.generation) the extent was made the block's
   * home at; absent means 0. Below the vDisk's current generation the extent is
   * shared with a snapshot, and a write to the block goes to a new extent.
   */
  gen: uint.optional(),
});
export type BlockLocation = z.output<typeof blockLocation>;

/**
 * A row of the vDisk map, key `<vdisk>.<row>`: the blocks of the row that hold data,
 * keyed by their index within the vDisk ("37"). A block with no entry reads as zeros.
 */
export const vdiskRow = z.strictObject({
  blocks: z.record(z.string().regex(/^\d+$/), blockLocation),
});
export type VdiskRow = z.output<typeof vdiskRow>;

/** The extent id map, key `<extent id>`: only for dedup and shared extents. */
export const extentEntry = z.strictObject({ egroup: u64 });

export const egroupReplica = z.strictObject({
  disk: u64,
  /** The node of that disk (`n3`). */
  node: z.string(),
});

/** The extent group map, key `<egroup>`. */
export const egroupEntry = z.strictObject({
  /** The only vDisk allowed to write it. */
  vdisk: u64,
  replicas: z.array(egroupReplica).min(1),
  /** The version every replica has reached: the last write all of them acknowledged. */
  version: uint,
  /** Bytes allocated to extents so far (the replicas' size). */
  sizeBytes: uint,
  /** A write in progress: replicas may be at `version` or this one. */
  tentative: z.strictObject({ version: uint, atMs: uint }).optional(),
  /**
   * The writing vDisk's generation when the extent group was created (absent: 0).
   * Below the vDisk's current generation it is sealed: no new extent is ever
   * allocated in it, so once no row of any vDisk names it, it is garbage.
   */
  gen: uint.optional(),
  extents: z.array(
    z.strictObject({
      /** `<vdisk>:<block>` for a non-dedup extent. */
      id: z.string(),
      offset: uint,
      length: uint,
      /** 0: no block refers to it any more (garbage for the curator). */
      refs: uint,
    }),
  ),
});
export type EgroupEntry = z.output<typeof egroupEntry>;

/**
 * `strata.vdc.<node>.record-copy`: the curator copied a replica of one of the vDisk's
 * extent groups; the owner, the only writer of the extent group, records the new
 * entry between two of its writes, and only if the replica copied from has not been
 * written since the copy read it (PROTOCOL.md, "Extent stores").
 */
export const vdcRecordCopyRequest = z.strictObject({
  vdisk: u64,
  /** The ownership epoch the curator read in `own`; another one is NOT_OWNER. */
  epoch: uint,
  egroup: u64,
  /** The replica copied from, and its version and size when the copy read it. */
  source: egroupReplica,
  sourceVersion: uint,
  sourceSizeBytes: uint,
  /** The entry with the new replica, and the revision of the entry it was made from (compare-and-set). */
  entry: egroupEntry,
  revision: uint,
});
export type VdcRecordCopyRequest = z.output<typeof vdcRecordCopyRequest>;

export const vdcRecordCopyReply = z.strictObject({
  /** The entry's revision once recorded. */
  revision: uint,
});
export type VdcRecordCopyReply = z.output<typeof vdcRecordCopyReply>;

/** Most extent groups one `strata.vdc.<node>.release` request names. */
export const RELEASE_EGROUPS_MAX = 256;

/**
 * `strata.vdc.<node>.release`: the curator found extent groups of the vDisk that no
 * row of any vDisk names; the owner, their only writer, answers with those it will
 * never allocate in, stage into, adopt from or write again (PROTOCOL.md, "Extent-level
 * garbage collection"). The curator deletes only those, and only if still unnamed.
 */
export const vdcReleaseRequest = z.strictObject({
  vdisk: u64,
  /** The ownership epoch the curator read in `own`; another one is NOT_OWNER. */
  epoch: uint,
  egroups: z.array(u64).min(1).max(RELEASE_EGROUPS_MAX),
});
export type VdcReleaseRequest = z.output<typeof vdcReleaseRequest>;

export const vdcReleaseReply = z.strictObject({
  /** The requested extent groups the owner gave up for good (the others it may still use). */
  released: z.array(u64).max(RELEASE_EGROUPS_MAX),
});
export type VdcReleaseReply = z.output<typeof vdcReleaseReply>;

/** Most extent groups one `strata.vdc.<node>.compact` request names. */
export const COMPACT_EGROUPS_MAX = 16;

/**
 * `strata.vdc.<node>.compact`: the curator found extent groups of the vDisk that are
 * mostly dead (few live bytes, every one named only by the vDisk itself at its current
 * generation); the owner evacuates them: no allocation, staging or in-place drain write
 * there from now on, and its next drain moves every block of the vDisk they hold to a
 * new extent. Once no row names them, the reclaim deletes them (PROTOCOL.md,
 * "Extent-level garbage collection").
 */
export const vdcCompactRequest = z.strictObject({
  vdisk: u64,
  /** The ownership epoch the curator read in `own`; another one is NOT_OWNER. */
  epoch: uint,
  egroups: z.array(u64).min(1).max(COMPACT_EGROUPS_MAX),
});
export type VdcCompactRequest = z.output<typeof vdcCompactRequest>;

export const vdcCompactReply = z.strictObject({
  /** The requested extent groups now evacuating (a lane's open one is not). */
  evacuating: z.array(u64).max(COMPACT_EGROUPS_MAX),
  /** The blocks queued for the next drain to move. */
  blocks: uint,
});
export type VdcCompactReply = z.output<typeof vdcCompactReply>;

export const MdMap = { vdisk: 'vdisk', extent: 'extent', egroup: 'egroup' } as const;
export type MdMap = (typeof MdMap)[keyof typeof MdMap];

export const mdValue = {
  vdisk: vdiskRow,
  extent: extentEntry,
  egroup: egroupEntry,
} as const satisfies Record<MdMap, z.ZodType>;

/** Metadata shard requests, on `strata.md.<partition>.<op>`. */
export const mdGetRequest = z.strictObject({ map: z.enum(MdMap), key: z.string().min(1).max(200) });
/** `value` absent: no entry. */
export const mdGetReply = z.strictObject({ value: z.unknown().optional(), revision: uint });
/**
 * The ownership epoch a vDisk's owner writes under: a shard refuses the write with
 * FENCED when the vDisk has a newer epoch (in `own`, or in a fenced write it accepted
 * before). Writes of tools and the curator carry none and are not checked.
 */
export const mdFence = z.strictObject({
  /** The vDisk whose owner writes (12349). */
  vdisk: u64,
  /** That owner's epoch (`vdisk-ownership`'s). */
  epoch: uint,
});
export type MdFence = z.output<typeof mdFence>;

/** Compare-and-set: `revision` 0 creates. */
export const mdPutRequest = z.strictObject({ map: z.enum(MdMap), key: z.string().min(1).max(200), value: z.unknown(), revision: uint, fence: mdFence.optional() });
export const mdPutReply = z.strictObject({ revision: uint });
export const mdDeleteRequest = z.strictObject({ map: z.enum(MdMap), key: z.string().min(1).max(200), revision: uint.optional(), fence: mdFence.optional() });
export const mdDeleteReply = z.strictObject({});

export const MdOp = { get: 'get', put: 'put', delete: 'delete' } as const;
export type MdOp = (typeof MdOp)[keyof typeof MdOp];

/** Number of hash partitions of the metadata maps. */
export const MD_PARTITIONS = 16;

/** The partition of a metadata key: FNV-1a (32-bit) of its UTF-8 bytes, modulo `count`. */
export function partitionOf(key: string, count = MD_PARTITIONS): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

/** Each vDisk I/O operation with its request and reply schemas: one table for every hop. */
export const ioSchemas = {
  read: { request: ioReadRequest, reply: ioReadReply },
  write: { request: ioWriteRequest, reply: ioDoneReply },
  zero: { request: ioZeroRequest, reply: ioDoneReply },
  flush: { request: ioFlushRequest, reply: ioDoneReply },
} as const satisfies Record<IoOp, { request: z.ZodType; reply: z.ZodType }>;

/** Any vDisk I/O request. */
export type IoRequest = IoReadRequest | IoWriteRequest | IoZeroRequest | IoFlushRequest;

/** The byte range an I/O request touches (flush touches none). */
export function ioRange(request: IoRequest): { offset: number; length: number } | undefined {
  if ('data' in request) return { offset: request.offset, length: request.data.length };
  if ('length' in request) return { offset: request.offset, length: request.length };
  return undefined;
}
