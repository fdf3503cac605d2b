// An in-memory export catalog: sparse devices made of 64 KiB pages, allocated on
// first write and freed when zeroed whole. The NBD protocol tests serve it, and a
// benchmark can measure the NBD path without the cluster behind it.
import { ErrorCode, StrataError, assert } from '@strata/errors';
import type { BlockDevice, ExportCatalog, ExportInfo } from './backend';

/** Page size of the sparse store: a page is allocated only when written. */
export const MEMORY_PAGE_BYTES = 64 * 1024;

export interface MemoryExportSpec {
  name: string;
  sizeBytes: number;
  /** Advertise NBD_FLAG_CAN_MULTI_CONN (default true: one store, no cache, so it is safe). */
  multiConn?: boolean;
  description?: string;
}

export class MemoryDevice implements BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  readonly multiConn: boolean;
  readonly description: string | undefined;
  private readonly pages = new Map<number, Uint8Array>();

  constructor(spec: MemoryExportSpec) {
    assert(Number.isSafeInteger(spec.sizeBytes) && spec.sizeBytes >= 0, `export ${spec.name}: sizeBytes must be a non-negative integer`);
    this.name = spec.name;
    this.sizeBytes = spec.sizeBytes;
    this.multiConn = spec.multiConn ?? true;
    this.description = spec.description;
  }

  /** Bytes held in allocated pages: lets tests see that zeroing frees memory. */
  allocatedBytes(): number {
    return this.pages.size * MEMORY_PAGE_BYTES;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new StrataError(ErrorCode.INVALID, `${this.name}: range ${offset}+${length} is outside the ${this.sizeBytes}-byte device`);
    }
  }

  /** Calls `visit` for each page piece of [offset, offset+length), in order. */
  private forEachPiece(offset: number, length: number, visit: (page: number, pageOffset: number, pieceBytes: number, done: number) => void): void {
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const page = Math.floor(at / MEMORY_PAGE_BYTES);
      const pageOffset = at % MEMORY_PAGE_BYTES;
      const pieceBytes = Math.min(MEMORY_PAGE_BYTES - pageOffset, length - done);
      visit(page, pageOffset, pieceBytes, done);
      done += pieceBytes;
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.check(offset, length);
    const out = new Uint8Array(length);
    this.forEachPiece(offset, length, (page, pageOffset, pieceBytes, done) => {
      const data = this.pages.get(page);
      if (data !== undefined) out.set(data.subarray(pageOffset, pageOffset + pieceBytes), done);
    });
    return out;
  }

  async write(offset: number, data: Uint8Array, _fua: boolean): Promise<void> {
    this.check(offset, data.length);
    this.forEachPiece(offset, data.length, (page, pageOffset, pieceBytes, done) => {
      let stored = this.pages.get(page);
      if (stored === undefined) {
        stored = new Uint8Array(MEMORY_PAGE_BYTES);
        this.pages.set(page, stored);
      }
      stored.set(data.subarray(done, done + pieceBytes), pageOffset);
    });
  }

  async zero(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.forEachPiece(offset, length, (page, pageOffset, pieceBytes) => {
      if (pieceBytes === MEMORY_PAGE_BYTES) this.pages.delete(page);
      else this.pages.get(page)?.fill(0, pageOffset, pageOffset + pieceBytes);
    });
  }

  async flush(): Promise<void> {
    // Memory is as durable as it gets here.
  }
}

export class MemoryCatalog implements ExportCatalog {
  private readonly devices = new Map<string, MemoryDevice>();

  constructor(exports: readonly MemoryExportSpec[] = []) {
    for (const spec of exports) this.add(spec);
  }

  /** Adds an export; the name must be new. */
  add(spec: MemoryExportSpec): MemoryDevice {
    assert(!this.devices.has(spec.name), `export ${spec.name} already exists`);
    const device = new MemoryDevice(spec);
    this.devices.set(spec.name, device);
    return device;
  }

  /** The device behind an export, for tests that look at the stored bytes. */
  device(name: string): MemoryDevice | undefined {
    return this.devices.get(name);
  }

  async list(): Promise<ExportInfo[]> {
    return [...this.devices.values()].map((d) => ({ name: d.name, sizeBytes: d.sizeBytes, ...(d.description === undefined ? {} : { description: d.description }) }));
  }

  async open(name: string): Promise<BlockDevice | undefined> {
    return this.devices.get(name);
  }
}
