// What the NBD server needs from the storage behind it: a catalog of exports and, per
// open export, a block device. The memory backend (tests, benchmarks) and the bus
// backend (vDisks through the node's io-director) both implement it.

export interface ExportInfo {
  /** The NBD export name: the vDisk's name (`demo`). */
  readonly name: string;
  readonly sizeBytes: number;
  /** Free text shown by `nbdinfo --list`. */
  readonly description?: string;
}

export interface ExportCatalog {
  /** Every export, for NBD_OPT_LIST. */
  list(): Promise<ExportInfo[]>;
  /** The export named `name`, or undefined when there is none. */
  open(name: string): Promise<BlockDevice | undefined>;
}

/**
 * One export as a range of bytes. Callers keep every request inside [0, sizeBytes).
 * Expected failures are StrataErrors: INVALID becomes EINVAL, NO_SPACE ENOSPC, and
 * anything else EIO at the client.
 */
export interface BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  /**
   * True when writes acknowledged on one connection are seen by reads and flushes on
   * every other connection (NBD_FLAG_CAN_MULTI_CONN): no per-connection cache.
   */
  readonly multiConn: boolean;
  /** A read-only export (a snapshot): NBD_FLAG_READ_ONLY, and writes, trims and zeroings are refused EPERM. */
  readonly readOnly?: boolean;
  /** The vDisk's 64-bit id, when the device is a vDisk: for the spans of its requests. */
  readonly vdisk?: bigint;
  /** Exactly `length` bytes. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Resolves once the data is stored; with `fua`, once it is durable. */
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void>;
  /** Makes the range read as zeros (TRIM and WRITE_ZEROES). */
  zero(offset: number, length: number): Promise<void>;
  /** Makes every write acknowledged so far durable. */
  flush(): Promise<void>;
  /**
   * A connection serves this device from now on (transmission began); the returned
   * function is called once when it ends. Lets the backend say which vDisks are open.
   */
  hold?(): () => void;
}
