// A hand-rolled NBD client for the server's tests: it builds every message byte by
// byte (never through src/nbd/codec.ts, so a codec bug cannot hide itself) and reads
// exact lengths with a bound on every wait.
import { connect, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

export const MAGIC = Buffer.from('NBDMAGIC');
export const IHAVEOPT = Buffer.from('IHAVEOPT');
export const OPTION_REPLY_MAGIC = Buffer.from('0003e889045565a9', 'hex');
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

export function optionBytes(option: number, data: Buffer = Buffer.alloc(0), magic: Buffer = IHAVEOPT): Buffer {
  const header = Buffer.alloc(16);
  magic.copy(header, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.length, 12);
  return Buffer.concat([header, data]);
}

/** NBD_OPT_GO / NBD_OPT_INFO data: name length, name, info count, info types. */
export function goData(name: string, infos: number[] = []): Buffer {
  const nameBytes = Buffer.from(name);
  const out = Buffer.alloc(4 + nameBytes.length + 2 + infos.length * 2);
  out.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(out, 4);
  out.writeUInt16BE(infos.length, 4 + nameBytes.length);
  infos.forEach((t, i) => out.writeUInt16BE(t, 6 + nameBytes.length + i * 2));
  return out;
}

export function requestBytes(type: number, handle: bigint, offset: bigint | number, length: number, flags = 0, payload?: Buffer, magic = REQUEST_MAGIC): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(magic, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  header.writeBigUInt64BE(handle, 8);
  header.writeBigUInt64BE(BigInt(offset), 16);
  header.writeUInt32BE(length, 24);
  return payload === undefined ? header : Buffer.concat([header, payload]);
}

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface SimpleReply {
  error: number;
  handle: bigint;
}

export class RawClient {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
      this.wake?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects, checks the greeting, sends client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  static async handshake(port: number, clientFlags = 3): Promise<RawClient> {
    const client = await RawClient.connect(port);
    const greeting = await client.read(18);
    if (!greeting.subarray(0, 8).equals(MAGIC) || !greeting.subarray(8, 16).equals(IHAVEOPT)) throw new Error(`bad greeting ${greeting.toString('hex')}`);
    client.write(Buffer.from([0, 0, 0, clientFlags]));
    return client;
  }

  /** Handshake plus NBD_OPT_GO on `name`; returns the export's size and transmission flags. */
  static async open(port: number, name: string): Promise<{ client: RawClient; sizeBytes: bigint; flags: number }> {
    const client = await RawClient.handshake(port);
    client.write(optionBytes(7, goData(name)));
    let sizeBytes = -1n;
    let flags = -1;
    for (;;) {
      const reply = await client.readOptionReply();
      if (reply.type === 1) break;
      if (reply.type !== 3) throw new Error(`NBD_OPT_GO on ${name} failed with reply type 0x${reply.type.toString(16)}: ${reply.data.toString()}`);
      if (reply.data.readUInt16BE(0) === 0) {
        sizeBytes = reply.data.readBigUInt64BE(2);
        flags = reply.data.readUInt16BE(10);
      }
    }
    return { client, sizeBytes, flags };
  }

  /**
   * After the server's ACK of NBD_OPT_STARTTLS: the TLS handshake over this socket.
   * Resolves with a client on the TLS socket once it is up, rejects if it fails.
   */
  async startTls(options: ConnectionOptions, timeoutMs = 5_000): Promise<RawClient> {
    if (this.bufferedBytes !== 0) throw new Error(`${this.bufferedBytes} bytes unread before the TLS handshake`);
    const secure = connectTls({ ...options, socket: this.socket });
    const client = new RawClient(secure);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
        secure.once('close', () => reject(new Error('closed during the TLS handshake')));
        timer = setTimeout(() => reject(new Error('the TLS handshake timed out')), timeoutMs);
      });
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async read(lengthBytes: number, timeoutMs = 5_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.bufferedBytes < lengthBytes) {
      if (this.ended) throw new Error(`connection closed with ${this.bufferedBytes} of ${lengthBytes} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${lengthBytes} bytes (have ${this.bufferedBytes})`);
      await this.change(left);
    }
    // Joined once per read, not once per chunk: a 20 MiB reply arrives in hundreds of chunks.
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > lengthBytes ? [all.subarray(lengthBytes)] : [];
    this.bufferedBytes -= lengthBytes;
    return all.subarray(0, lengthBytes);
  }

  /** Waits for more bytes or the end, at most `timeoutMs`. */
  private async change(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    this.wake = undefined;
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(20);
    if (!header.subarray(0, 8).equals(OPTION_REPLY_MAGIC)) throw new Error(`bad option reply magic ${header.subarray(0, 8).toString('hex')}`);
    const length = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await this.read(length) };
  }

  async readSimpleReply(): Promise<SimpleReply> {
    const header = await this.read(16);
    if (header.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error(`bad reply magic ${header.toString('hex')}`);
    return { error: header.readUInt32BE(4), handle: header.readBigUInt64BE(8) };
  }

  /** Resolves true if the server ends the connection (FIN or reset) within `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.change(left);
    }
    return true;
  }

  /** Bytes received and not read yet. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
