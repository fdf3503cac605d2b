// An in-memory stand-in for the net.Socket an NbdConnection serves: the fuzz targets
// feed it a client's bytes in chosen chunks and read back what the server wrote,
// with no kernel in between, so thousands of connections run per second and a run
// is the same every time for the same input. It honours pause(): a chunk is only
// delivered while the server is reading, as TCP backpressure would do.
import { EventEmitter } from 'node:events';

export class FakeSocket extends EventEmitter {
  readonly remoteAddress = undefined;
  readonly remotePort = undefined;
  destroyed = false;
  writable = true;
  paused = false;
  /** Set once the server ended its side or destroyed the socket. */
  closedByServer = false;
  private readonly written: Buffer[] = [];
  private wakeFeeder: (() => void) | undefined;

  // ---- The net.Socket surface the connection uses --------------------------------------

  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    this.wake();
    return this;
  }

  write(bytes: Uint8Array, callback?: () => void): boolean {
    if (!this.writable) throw new Error('write after end: the connection wrote to a socket it had ended');
    this.written.push(Buffer.from(bytes));
    if (callback !== undefined) setImmediate(callback);
    return true;
  }

  /** The server ends its side; the fake client closes at once, so 'close' follows. */
  end(): this {
    this.writable = false;
    this.closeSoon();
    return this;
  }

  destroy(): this {
    this.writable = false;
    this.closeSoon();
    return this;
  }

  // ---- The client's side ---------------------------------------------------------------

  /** Everything the server has written so far, as one buffer. */
  output(): Buffer {
    return Buffer.concat(this.written);
  }

  /**
   * Delivers `chunks` one per turn of the event loop, each only while the socket is
   * not paused, then half-closes the client's side. `onChunk` runs before each
   * delivery (the targets check their buffering bound there). Stops early if the
   * server closes the socket.
   */
  async feed(chunks: readonly Buffer[], onChunk: (chunk: Buffer) => void = () => {}): Promise<void> {
    for (const chunk of chunks) {
      while (this.paused && !this.destroyed) await new Promise<void>((resolve) => (this.wakeFeeder = resolve));
      if (this.destroyed) return;
      onChunk(chunk);
      this.emit('data', chunk);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!this.destroyed) this.emit('end');
  }

  private wake(): void {
    const wake = this.wakeFeeder;
    this.wakeFeeder = undefined;
    wake?.();
  }

  private closeSoon(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closedByServer = true;
    this.wake();
    process.nextTick(() => this.emit('close'));
  }
}

/** Cuts `bytes` at the given offsets (any order, out-of-range ones ignored) into chunks. */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  if (start < bytes.length || chunks.length === 0) chunks.push(bytes.subarray(start));
  return chunks;
}
