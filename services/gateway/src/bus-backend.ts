// The real backend: every vDisk in the configuration is an export, and a block device
// is a stream of CBOR I/O requests to this node's io-director (`strata.io.<node>.<op>`),
// each NBD request cut into pieces of at most IO_CHUNK_BYTES that run concurrently,
// with one deadline for the whole request and the bus retrying retryable errors.
import { performance } from 'node:perf_hooks';
import type { Bus, RequestOptions } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, assert, isStrataError } from '@strata/errors';
import {
  DirectorOp,
  IO_CHUNK_BYTES,
  IO_CHUNK_BYTES_DEFAULT_SERVER,
  IoOp,
  ioAttachReply,
  ioDoneReply,
  ioReadReply,
  subjects,
  type IoFlushRequest,
  type IoReadRequest,
  type IoWriteRequest,
  type IoZeroRequest,
} from '@strata/proto';
import type { Attachments } from './attachments';
import type { BlockDevice, ExportCatalog, ExportInfo } from './backend';
import { parseExportName, type ExportGuard, type StillValid } from './lease-guard';
import { forEachLimited, splitRange, type Piece } from './pieces';

/** The part of the bus the backend uses (a fake in unit tests). */
export type IoRequester = Pick<Bus, 'request'>;
/** The part of the config client the backend uses. */
export type VdiskDirectory = Pick<ConfigClient, 'list' | 'get'>;

export interface BusBackendOptions {
  bus: IoRequester;
  config: VdiskDirectory;
  /** This gateway's node: its io-director serves the requests (`n1`). */
  node: string;
  /** Budget of one NBD request, all pieces and retries included. */
  requestTimeoutMs?: number;
  /** The most one attempt of one piece may take before the bus retries it. */
  attemptTimeoutMs?: number;
  /**
   * Budget of an export's open (its attach at this node's io-director), retries
   * included. Just after a partition heals the director's compare-and-set waits for
   * the bus to elect a stream leader (seconds), so it spans several attempts.
   */
  openTimeoutMs?: number;
  /** Pieces of one NBD request in flight at once. */
  piecesInFlightMax?: number;
  /**
   * Largest piece (at most IO_CHUNK_BYTES): what the servers' payload limit allows
   * (ioChunkBytes). The default, 256 KiB, fits NATS's default 1 MiB limit.
   */
  chunkBytes?: number;
  /**
   * The power-on lease check of VMs' vDisks (lease-guard.ts). Without one, only plain
   * vDisk names are exports.
   */
  guard?: ExportGuard;
  /** Where the vDisks open on this gateway are counted (published for `strata vdisk rm`). */
  attachments?: Pick<Attachments, 'add'>;
}

interface DeviceSettings {
  bus: IoRequester;
  node: string;
  requestTimeoutMs: number;
  attemptTimeoutMs: number;
  openTimeoutMs: number;
  piecesInFlightMax: number;
  chunkBytes: number;
  attachments?: Pick<Attachments, 'add'> | undefined;
}

export class BusCatalog implements ExportCatalog {
  private readonly config: VdiskDirectory;
  private readonly settings: DeviceSettings;
  private readonly guard: ExportGuard | undefined;

  constructor(options: BusBackendOptions) {
    this.config = options.config;
    this.guard = options.guard;
    this.settings = {
      bus: options.bus,
      node: options.node,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      attemptTimeoutMs: options.attemptTimeoutMs ?? 10_000,
      openTimeoutMs: options.openTimeoutMs ?? 8_000,
      piecesInFlightMax: options.piecesInFlightMax ?? 16,
      chunkBytes: options.chunkBytes ?? IO_CHUNK_BYTES_DEFAULT_SERVER,
      attachments: options.attachments,
    };
    const s = this.settings;
    assert(s.requestTimeoutMs > 0 && s.attemptTimeoutMs > 0 && s.openTimeoutMs > 0 && s.piecesInFlightMax > 0, 'bus backend limits are positive');
    assert(s.chunkBytes > 0 && s.chunkBytes <= IO_CHUNK_BYTES, `chunkBytes must be in (0, ${IO_CHUNK_BYTES}]`);
  }

  /** Asked on every NBD_OPT_LIST, so vDisks created later are listed too. */
  async list(): Promise<ExportInfo[]> {
    const vdisks = await this.config.list('vdisk');
    // A vDisk being deleted is no longer an export.
    return vdisks.filter((v) => v.spec.deletingSinceMs === undefined).map((v) => ({ name: v.name, sizeBytes: v.spec.sizeBytes, description: `vDisk ${v.id}${v.spec.shared ? ' (shared)' : ''}` }));
  }

  /**
   * `name` is a vDisk's name, or `<vdisk>@<vm>.<epoch>` for the instance of a VM that
   * holds its power-on lease at that epoch (checked by the guard).
   */
  async open(name: string): Promise<BlockDevice | undefined> {
    // A name the config service could never hold is simply not an export.
    const parsed = parseExportName(name);
    if (parsed === undefined || (parsed.claim !== undefined && this.guard === undefined)) return undefined;
    let object;
    try {
      object = await this.config.get({ kind: 'vdisk', name: parsed.vdisk });
    } catch (err) {
      if (isStrataError(err, ErrorCode.NOT_FOUND)) return undefined;
      throw err;
    }
    assert(object.kind === 'vdisk', 'config answered a vdisk query with a vdisk');
    // Being deleted, or a snapshot or clone still being made: not an export (yet).
    if (object.spec.deletingSinceMs !== undefined || object.spec.creatingSinceMs !== undefined) return undefined;
    const stillValid = await this.guard?.admit(object, parsed.claim);
    // This node volunteers to take the vDisk over when its owner fails (and claims it if nobody owns it).
    await this.settings.bus.request(subjects.io(this.settings.node, DirectorOp.attach), { vdisk: object.id }, ioAttachReply, {
      timeoutMs: this.settings.openTimeoutMs,
      retry: true,
      attemptTimeoutMs: Math.min(this.settings.attemptTimeoutMs, this.settings.openTimeoutMs),
    });
    const device = new BusDevice(name, object.id, object.spec.sizeBytes, object.spec.shared, this.settings, stillValid);
    device.readOnly = object.spec.snapshotOf !== undefined;
    return device;
  }
}

export class BusDevice implements BlockDevice {
  constructor(
    readonly name: string,
    /** The vDisk's 64-bit id: the `vdisk` field of every I/O message. */
    readonly vdisk: bigint,
    readonly sizeBytes: number,
    /** Shared vDisks are served by one owner for every host: many connections see one state. */
    readonly multiConn: boolean,
    private readonly settings: DeviceSettings,
    /** Checked before every attempt of every piece: the connection may still be served (the power-on lease). */
    private readonly stillValid?: StillValid,
  ) {}

  /** A snapshot: exported read-only (see BlockDevice). */
  readOnly = false;

  hold(): () => void {
    return this.settings.attachments?.add(this.vdisk) ?? (() => undefined);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const deadline = performance.now() + this.settings.requestTimeoutMs;
    const pieces = splitRange(offset, length, this.settings.chunkBytes);
    // One piece: its reply's bytes are the answer, with no copy.
    if (pieces.length === 1) return this.readPiece(pieces[0]!, deadline);
    const out = new Uint8Array(length);
    await forEachLimited(pieces, this.settings.piecesInFlightMax, async (piece) => out.set(await this.readPiece(piece, deadline), piece.at));
    return out;
  }

  private async readPiece(piece: Piece, deadline: number): Promise<Uint8Array> {
    const request: IoReadRequest = { vdisk: this.vdisk, offset: piece.offset, length: piece.lengthBytes };
    const reply = await this.settings.bus.request(this.subject(IoOp.read), request, ioReadReply, this.options(deadline));
    if (reply.data.length !== piece.lengthBytes) {
      throw new StrataError(ErrorCode.INTERNAL, `read of ${piece.lengthBytes} bytes at ${piece.offset} of vdisk ${this.vdisk} returned ${reply.data.length}`);
    }
    return reply.data;
  }

  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    const deadline = performance.now() + this.settings.requestTimeoutMs;
    await forEachLimited(splitRange(offset, data.length, this.settings.chunkBytes), this.settings.piecesInFlightMax, async (piece) => {
      const request: IoWriteRequest = {
        vdisk: this.vdisk,
        offset: piece.offset,
        // Socket buffers are never shared memory; the schema's type just says ArrayBuffer.
        data: data.subarray(piece.at, piece.at + piece.lengthBytes) as Uint8Array<ArrayBuffer>,
        ...(fua ? { fua: true } : {}),
      };
      await this.settings.bus.request(this.subject(IoOp.write), request, ioDoneReply, this.options(deadline));
    });
  }

  async zero(offset: number, length: number): Promise<void> {
    const deadline = performance.now() + this.settings.requestTimeoutMs;
    await forEachLimited(splitRange(offset, length, this.settings.chunkBytes), this.settings.piecesInFlightMax, async (piece) => {
      const request: IoZeroRequest = { vdisk: this.vdisk, offset: piece.offset, length: piece.lengthBytes };
      await this.settings.bus.request(this.subject(IoOp.zero), request, ioDoneReply, this.options(deadline));
    });
  }

  async flush(): Promise<void> {
    const deadline = performance.now() + this.settings.requestTimeoutMs;
    const request: IoFlushRequest = { vdisk: this.vdisk };
    await this.settings.bus.request(this.subject(IoOp.flush), request, ioDoneReply, this.options(deadline));
  }

  private subject(op: IoOp): string {
    return subjects.io(this.settings.node, op);
  }

  /**
   * What is left of the request's budget. Retrying is safe: a piece is a write of the
   * same bytes at the same place (or a read, a zero, a flush), so repeating it changes nothing.
   */
  private options(deadline: number): RequestOptions {
    const options: RequestOptions = { timeoutMs: Math.max(0, Math.floor(deadline - performance.now())), retry: true, attemptTimeoutMs: this.settings.attemptTimeoutMs };
    const stillValid = this.stillValid;
    if (stillValid !== undefined) {
      options.beforeAttempt = () => {
        const why = stillValid();
        if (why !== undefined) throw new StrataError(ErrorCode.FENCED, why);
      };
    }
    return options;
  }
}
