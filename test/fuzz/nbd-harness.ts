// Runs one NBD connection in-process over a FakeSocket: the real NbdConnection (its
// handshake, its SocketReader, its request parser and rules) against a memory export
// wrapped to record every call. What the server wrote comes back as bytes, to be
// read by the targets' own decoders, never through the gateway's codec.
import type { Socket } from 'node:net';
import { MemoryCatalog, type BlockDevice, type ExportCatalog, type ExportInfo } from '@strata/gateway';
import { NbdConnection, defaultConnectionLimits, type ConnectionLimits, type NbdLogger } from '../../services/gateway/src/nbd/connection';
import { FakeSocket } from './fake-socket';

/** The export every fuzzed connection sees: small, so offsets past its end are common. */
export const EXPORT_NAME = 'disk';
export const EXPORT_SIZE_BYTES = 1024 * 1024;

/**
 * Limits small enough that a fuzzed input reaches them: a 4 KiB read high-water mark
 * (the socket pauses often), few requests in flight, few options.
 */
export const fuzzLimits: ConnectionLimits = {
  ...defaultConnectionLimits,
  handshakeTimeoutMs: 60_000,
  requestsInFlightMax: 4,
  optionsMax: 64,
  readHighWaterBytes: 4096,
  lingerMs: 1_000,
};

/** How long one connection may take before the target calls it a hang. */
export const HANG_MS = 5_000;

export interface DeviceCall {
  op: 'read' | 'write' | 'zero' | 'flush';
  offset: number;
  lengthBytes: number;
  fua?: boolean;
  data?: Buffer;
}

/** A device that records each call and refuses any outside the export (a broken promise of the caller). */
class RecordingDevice implements BlockDevice {
  readonly calls: DeviceCall[] = [];
  readonly outOfRange: string[] = [];
  constructor(private readonly inner: BlockDevice) {}
  get name(): string {
    return this.inner.name;
  }
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get multiConn(): boolean {
    return this.inner.multiConn;
  }
  private check(op: string, offset: number, lengthBytes: number): void {
    const inRange = Number.isSafeInteger(offset) && offset >= 0 && lengthBytes >= 0 && offset + lengthBytes <= this.sizeBytes;
    if (!inRange) this.outOfRange.push(`${op} ${offset}+${lengthBytes}`);
  }
  read(offset: number, lengthBytes: number): Promise<Uint8Array> {
    this.check('read', offset, lengthBytes);
    this.calls.push({ op: 'read', offset, lengthBytes });
    return this.inner.read(offset, lengthBytes);
  }
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    this.check('write', offset, data.length);
    this.calls.push({ op: 'write', offset, lengthBytes: data.length, fua, data: Buffer.from(data) });
    return this.inner.write(offset, data, fua);
  }
  zero(offset: number, lengthBytes: number): Promise<void> {
    this.check('zero', offset, lengthBytes);
    this.calls.push({ op: 'zero', offset, lengthBytes });
    return this.inner.zero(offset, lengthBytes);
  }
  flush(): Promise<void> {
    this.calls.push({ op: 'flush', offset: 0, lengthBytes: 0 });
    return this.inner.flush();
  }
}

class RecordingCatalog implements ExportCatalog {
  readonly device: RecordingDevice;
  private readonly memory: MemoryCatalog;
  constructor() {
    this.memory = new MemoryCatalog([{ name: EXPORT_NAME, sizeBytes: EXPORT_SIZE_BYTES, description: 'fuzz' }]);
    const inner = this.memory.device(EXPORT_NAME);
    if (inner === undefined) throw new Error('the memory catalog lost its export');
    this.device = new RecordingDevice(inner);
  }
  list(): Promise<ExportInfo[]> {
    return this.memory.list();
  }
  async open(name: string): Promise<BlockDevice | undefined> {
    return name === EXPORT_NAME ? this.device : undefined;
  }
}

export interface ConnectionRun {
  /** Every byte the server wrote. */
  output: Buffer;
  /** The server ended or destroyed the socket (as opposed to only answering the client's end). */
  closedByServer: boolean;
  /** Messages the connection logged as its own bug ("connection failed") or any error log. */
  errors: string[];
  calls: DeviceCall[];
  outOfRange: string[];
  /** The most bytes the connection's reader held unread beyond what it had asked for. */
  excessBufferedBytes: number;
}

/** A logger that keeps error and warn lines; the targets fail on an error line. */
function recordingLogger(errors: string[]): NbdLogger {
  return {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (obj, msg) => errors.push(`${msg}: ${describe(obj)}`),
  };
}

function describe(obj: object): string {
  const err = (obj as { err?: unknown }).err;
  if (err instanceof Error) return err.stack ?? err.message;
  return JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
}

interface ReaderInternals {
  bufferedBytes: number;
  waiter: { lengthBytes: number } | undefined;
}

/**
 * Serves one connection to the end over `chunks` of client bytes. Throws if the
 * connection does not finish within HANG_MS after the client's bytes ran out.
 */
export async function runConnection(chunks: readonly Buffer[], limits: ConnectionLimits = fuzzLimits): Promise<ConnectionRun> {
  const socket = new FakeSocket();
  const catalog = new RecordingCatalog();
  const errors: string[] = [];
  const connection = new NbdConnection(socket as unknown as Socket, catalog, limits, recordingLogger(errors));
  // The reader is private; its buffered total is what "never buffers unbounded" is about.
  const reader = (connection as unknown as { reader: ReaderInternals }).reader;
  let excessBufferedBytes = 0;
  const measure = (): void => {
    // A chunk is delivered only while the socket is not paused, so what the reader
    // holds before it must be under the high-water mark, or what a read asked for.
    const allowed = Math.max(limits.readHighWaterBytes, reader.waiter?.lengthBytes ?? 0);
    excessBufferedBytes = Math.max(excessBufferedBytes, reader.bufferedBytes - allowed);
  };
  const finished = Promise.all([connection.run(), socket.feed(chunks, measure), connection.closed]);
  let timer: NodeJS.Timeout | undefined;
  const hung = await Promise.race([
    finished.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), HANG_MS))),
  ]);
  clearTimeout(timer);
  if (hung) {
    socket.destroy();
    throw new Error(`the connection did not finish within ${HANG_MS} ms (paused: ${socket.paused}, ended by the server: ${socket.closedByServer})`);
  }
  return {
    output: socket.output(),
    closedByServer: socket.closedByServer,
    errors,
    calls: catalog.device.calls,
    outOfRange: catalog.device.outOfRange,
    excessBufferedBytes,
  };
}
