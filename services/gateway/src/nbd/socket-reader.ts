// Exact-length reads from a socket (`await reader.read(28)`), with backpressure: the
// socket is paused whenever more than `highWaterBytes` wait unread and nobody asks
// for them, so a client that sends faster than we serve is slowed down by TCP
// instead of growing our memory.
import { assert } from '@strata/errors';

/** The peer closed its side (or the reader was stopped) before the bytes arrived. */
export class EndOfStream extends Error {
  override readonly name = 'EndOfStream';
  /** Bytes of the unfinished message that had arrived: 0 means a clean end between messages. */
  readonly partialBytes: number;
  constructor(message: string, partialBytes: number) {
    super(message);
    this.partialBytes = partialBytes;
  }
}

/** The part of a net.Socket the reader uses. */
export interface ReadableSocket {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'end' | 'close', listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

interface Waiter {
  lengthBytes: number;
  resolve: (bytes: Buffer) => void;
  reject: (err: Error) => void;
}

export class SocketReader {
  private chunks: Buffer[] = [];
  private queuedBytes = 0;
  private waiter: Waiter | undefined;
  private ended = false;
  private stopped = false;
  private readonly dataListener = (chunk: Buffer): void => this.onData(chunk);
  private readonly endListener = (): void => this.onEnd();

  constructor(
    private readonly socket: ReadableSocket,
    private readonly highWaterBytes: number,
  ) {
    assert(highWaterBytes > 0, 'highWaterBytes must be positive');
    socket.on('data', this.dataListener);
    socket.on('end', this.endListener);
    socket.on('close', this.endListener);
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.queuedBytes;
  }

  /** Resolves with exactly `lengthBytes` bytes; rejects with EndOfStream if they never come. */
  read(lengthBytes: number): Promise<Buffer> {
    assert(this.waiter === undefined, 'one read at a time');
    assert(Number.isSafeInteger(lengthBytes) && lengthBytes >= 0, 'a read length is a non-negative integer');
    if (this.queuedBytes >= lengthBytes) {
      const bytes = this.take(lengthBytes);
      if (this.queuedBytes < this.highWaterBytes) this.socket.resume();
      return Promise.resolve(bytes);
    }
    if (this.ended || this.stopped) return Promise.reject(this.endError(lengthBytes));
    this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { lengthBytes, resolve, reject };
    });
  }

  /** Reads and drops `lengthBytes` without holding them all in memory. */
  async skip(lengthBytes: number): Promise<void> {
    let left = lengthBytes;
    while (left > 0) {
      const piece = Math.min(left, this.highWaterBytes);
      await this.read(piece);
      left -= piece;
    }
  }

  /**
   * Stops reading for good: a pending read fails, buffered bytes are dropped, and
   * whatever still arrives is discarded, so the peer's close is seen.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.chunks = [];
    const partial = this.queuedBytes;
    this.queuedBytes = 0;
    this.socket.resume();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(new EndOfStream('the connection stopped reading', partial));
  }

  /**
   * Hands the socket back (for an upgrade to TLS): the reader stops listening to it and
   * returns how many bytes had arrived unread, which the caller must treat as an error
   * since the new owner never sees them. No read may be pending.
   */
  release(): number {
    assert(this.waiter === undefined, 'release with no read pending');
    this.socket.off('data', this.dataListener);
    this.socket.off('end', this.endListener);
    this.socket.off('close', this.endListener);
    const unread = this.queuedBytes;
    this.stopped = true;
    this.chunks = [];
    this.queuedBytes = 0;
    return unread;
  }

  private onData(chunk: Buffer): void {
    if (this.stopped) return;
    this.chunks.push(chunk);
    this.queuedBytes += chunk.length;
    const waiter = this.waiter;
    if (waiter !== undefined && this.queuedBytes >= waiter.lengthBytes) {
      this.waiter = undefined;
      waiter.resolve(this.take(waiter.lengthBytes));
    }
    if (this.waiter === undefined && this.queuedBytes >= this.highWaterBytes) this.socket.pause();
  }

  private onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.endError(waiter.lengthBytes));
  }

  private endError(wantedBytes: number): EndOfStream {
    return new EndOfStream(`the peer closed the connection with ${this.queuedBytes} of ${wantedBytes} bytes received`, this.queuedBytes);
  }

  private take(lengthBytes: number): Buffer {
    assert(lengthBytes <= this.queuedBytes, 'take only what has arrived');
    this.queuedBytes -= lengthBytes;
    const first = this.chunks[0];
    // The common case, one chunk holding the whole message, costs no copy.
    if (first !== undefined && first.length >= lengthBytes) {
      if (first.length === lengthBytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(lengthBytes);
      return first.subarray(0, lengthBytes);
    }
    const out = Buffer.allocUnsafe(lengthBytes);
    let filled = 0;
    while (filled < lengthBytes) {
      const chunk = this.chunks[0];
      assert(chunk !== undefined, 'queued bytes are in chunks');
      const n = Math.min(chunk.length, lengthBytes - filled);
      chunk.copy(out, filled, 0, n);
      filled += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    return out;
  }
}
