// A small NBD client for the workload process: fixed newstyle negotiation with
// NBD_OPT_GO (after NBD_OPT_STARTTLS when given a TLS directory), then one request at a
// time (READ, WRITE, FLUSH, DISC) with simple replies. Enough for a VM-like workload;
// the gateway is tested against real clients (qemu-io, nbdcopy, fio) elsewhere.
import { readFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';

const NBD_MAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_STARTTLS = 5;
const OPT_GO = 7;
const REP_ACK = 1;
const REP_INFO = 3;
const INFO_EXPORT = 0;
const CMD = { read: 0, write: 1, disc: 2, flush: 3 } as const;

/** The server refused the export (its reason in the message): the disk cannot be opened. */
export class ExportRefused extends Error {
  override readonly name = 'ExportRefused';
}

/** Reads exact byte counts from a socket, in order. */
class Reader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.pump();
    });
    const fail = (err: Error): void => {
      this.failed ??= err;
      this.waiting?.reject(this.failed);
      this.waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('the NBD server closed the connection')));
  }

  read(n: number): Promise<Buffer> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiting;
    if (w === undefined || this.length < w.n) return;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(w.n)];
    this.length = all.length - w.n;
    this.waiting = undefined;
    w.resolve(all.subarray(0, w.n));
  }
}

export class NbdClient {
  private handle = 0n;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: Reader,
    readonly sizeBytes: number,
  ) {}

  /**
   * Connects and opens `exportName` with NBD_OPT_GO; ExportRefused when the server says
   * no. With `tlsDir` (ca-cert.pem, client-cert.pem, client-key.pem) it starts TLS first.
   */
  static async open(host: string, port: number, exportName: string, timeoutMs: number, tlsDir?: string): Promise<NbdClient> {
    let socket: Socket = connect({ host, port });
    socket.setNoDelay(true);
    let reader = new Reader(socket);
    const timer = setTimeout(() => socket.destroy(new Error(`NBD negotiation with ${host}:${port} took more than ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const hello = await reader.read(18);
      if (hello.readBigUInt64BE(0) !== NBD_MAGIC || hello.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('not a newstyle NBD server');
      const flags = hello.readUInt16BE(16);
      if ((flags & FLAG_FIXED_NEWSTYLE) === 0) throw new Error('the NBD server does not speak fixed newstyle');
      socket.write(u32(FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)));
      if (tlsDir !== undefined) {
        socket.write(Buffer.concat([u64(IHAVEOPT), u32(OPT_STARTTLS), u32(0)]));
        await readStartTlsReply(reader);
        socket = await startTls(socket, host, tlsDir);
        reader = new Reader(socket);
      }
      const name = Buffer.from(exportName, 'utf8');
      const data = Buffer.concat([u32(name.length), name, u16(0)]);
      socket.write(Buffer.concat([u64(IHAVEOPT), u32(OPT_GO), u32(data.length), data]));
      const sizeBytes = await readGoReplies(reader, exportName);
      return new NbdClient(socket, reader, sizeBytes);
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.request(CMD.read, offset, length)) ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.request(CMD.write, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(CMD.flush, 0, 0);
  }

  close(): void {
    if (this.socket.destroyed) return;
    this.socket.write(header(CMD.disc, this.handle + 1n, 0, 0));
    this.socket.end();
  }

  private async request(cmd: number, offset: number, length: number, data?: Buffer): Promise<Buffer | undefined> {
    const handle = ++this.handle;
    this.socket.write(data === undefined ? header(cmd, handle, offset, length) : Buffer.concat([header(cmd, handle, offset, length), data]));
    const reply = await this.reader.read(16);
    if (reply.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error('bad NBD reply magic');
    if (reply.readBigUInt64BE(8) !== handle) throw new Error('NBD reply for another request');
    const errno = reply.readUInt32BE(4);
    if (errno !== 0) throw new Error(`NBD ${Object.keys(CMD)[cmd]} at ${offset} failed: errno ${errno}`);
    return cmd === CMD.read ? this.reader.read(length) : undefined;
  }
}

async function readStartTlsReply(reader: Reader): Promise<void> {
  const head = await reader.read(20);
  if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('bad NBD option reply magic');
  const type = head.readUInt32BE(12);
  const body = await reader.read(head.readUInt32BE(16));
  if (type !== REP_ACK) throw new Error(`the NBD server refused STARTTLS: ${body.toString('utf8') || `reply type ${type}`}`);
}

/** The TLS handshake over `socket`, as a client with the certificate in `dir`. */
async function startTls(socket: Socket, host: string, dir: string): Promise<Socket> {
  const read = (name: string): Buffer => readFileSync(join(dir, name));
  const secure = connectTls({ socket, host, servername: host, ca: read('ca-cert.pem'), cert: read('client-cert.pem'), key: read('client-key.pem') });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

async function readGoReplies(reader: Reader, exportName: string): Promise<number> {
  let sizeBytes: number | undefined;
  for (let replies = 0; replies < 64; replies++) {
    const head = await reader.read(20);
    if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('bad NBD option reply magic');
    const type = head.readUInt32BE(12);
    const body = await reader.read(head.readUInt32BE(16));
    if (type >= 0x80000000) throw new ExportRefused(`export ${JSON.stringify(exportName)} refused: ${body.toString('utf8') || `error ${type - 0x80000000}`}`);
    if (type === REP_INFO && body.readUInt16BE(0) === INFO_EXPORT) sizeBytes = Number(body.readBigUInt64BE(2));
    if (type === REP_ACK) {
      if (sizeBytes === undefined) throw new Error('the NBD server sent no export size');
      return sizeBytes;
    }
  }
  throw new Error('the NBD server sent too many option replies');
}

function header(cmd: number, handle: bigint, offset: number, length: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(cmd, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
