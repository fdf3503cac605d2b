// Proves the NBD server's behaviour on a real loopback socket with a hand-rolled
// client and a backend whose every call the test completes by hand: negotiation
// replies and refusals, replies out of order, backend errors mapped to errnos,
// backpressure at the in-flight limits, connections closed on unrecoverable input
// (and only those), DISC and shutdown that answer what is in flight first.
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockDevice, ExportCatalog, ExportInfo } from '../src/backend';
import { MemoryCatalog } from '../src/memory-backend';
import type { ConnectionLimits, NbdLogger } from '../src/nbd/connection';
import { NbdServer } from '../src/nbd/server';
import { RawClient, goData, optionBytes, requestBytes } from './raw-client';

const MiB = 1024 * 1024;
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 };
const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_POLICY: 0x80000002, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006, ERR_TOO_BIG: 0x80000009 };
const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, WRITE_ZEROES: 6 };
const EINVAL = 22;
const ENOSPC = 28;
const EIO = 5;

interface Call {
  op: 'read' | 'write' | 'zero' | 'flush';
  offset: number;
  length: number;
  fua?: boolean;
  data?: Uint8Array;
  resolve(value?: Uint8Array): void;
  reject(err: unknown): void;
}

/** A device that answers only when the test says so, and counts what is outstanding. */
class ControlledDevice implements BlockDevice {
  readonly calls: Call[] = [];
  outstanding = 0;
  maxOutstanding = 0;
  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    readonly multiConn = false,
  ) {}

  private call<T>(op: Call['op'], offset: number, length: number, extra: Partial<Call> = {}): Promise<T> {
    this.outstanding++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    return new Promise<T>((resolve, reject) => {
      this.calls.push({ op, offset, length, ...extra, resolve: resolve as (v?: Uint8Array) => void, reject });
    }).finally(() => this.outstanding--);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.call('read', offset, length);
  }
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    return this.call('write', offset, data.length, { fua, data: Buffer.from(data) });
  }
  zero(offset: number, length: number): Promise<void> {
    return this.call('zero', offset, length);
  }
  flush(): Promise<void> {
    return this.call('flush', 0, 0);
  }

  async waitForCalls(count: number, timeoutMs = 3_000): Promise<Call[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.calls.length < count) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} backend calls (have ${this.calls.length})`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.calls;
  }
}

class FakeCatalog implements ExportCatalog {
  failWith: unknown;
  constructor(readonly devices: BlockDevice[]) {}
  async list(): Promise<ExportInfo[]> {
    if (this.failWith !== undefined) throw this.failWith;
    return this.devices.map((d) => ({ name: d.name, sizeBytes: d.sizeBytes }));
  }
  async open(name: string): Promise<BlockDevice | undefined> {
    if (this.failWith !== undefined) throw this.failWith;
    return this.devices.find((d) => d.name === name);
  }
}

/** Collects warnings and errors, so a test can see why a connection was closed. */
function recordingLogger(): NbdLogger & { lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (obj: object, msg: string) => lines.push(`${level} ${msg} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Error ? v.message : v))}`);
  return { lines, debug: () => {}, info: record('info'), warn: record('warn'), error: record('error') };
}

describe('NBD server', () => {
  let server: NbdServer;
  let port: number;
  let device: ControlledDevice;
  let catalog: FakeCatalog;
  let log: ReturnType<typeof recordingLogger>;
  const clients: RawClient[] = [];

  async function start(limits: Partial<ConnectionLimits> = {}, devices?: BlockDevice[]): Promise<void> {
    device = new ControlledDevice('alpha', 64 * MiB);
    catalog = new FakeCatalog(devices ?? [device, new ControlledDevice('shared', 8 * MiB, true)]);
    log = recordingLogger();
    server = new NbdServer({ catalog, log, limits });
    port = (await server.listenTcp(0)).port;
  }

  async function open(name = 'alpha'): Promise<RawClient> {
    const { client } = await RawClient.open(port, name);
    clients.push(client);
    return client;
  }

  async function handshake(flags?: number): Promise<RawClient> {
    const client = await RawClient.handshake(port, flags);
    clients.push(client);
    return client;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    // Settle whatever a test left pending, so the server can close.
    for (const call of device?.calls ?? []) call.reject(new Error('test over'));
    await server?.close(100);
  });

  describe('negotiation', () => {
    beforeEach(() => start());

    test('NBD_OPT_LIST lists every export, then ACK', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.LIST));
      const names: string[] = [];
      for (;;) {
        const reply = await client.readOptionReply();
        expect(reply.option).toBe(OPT.LIST);
        if (reply.type === REP.ACK) break;
        expect(reply.type).toBe(REP.SERVER);
        names.push(reply.data.subarray(4, 4 + reply.data.readUInt32BE(0)).toString());
      }
      expect(names).toEqual(['alpha', 'shared']);
    });

    test('NBD_OPT_LIST with data is ERR_INVALID, and negotiation goes on', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.LIST, Buffer.from('x')));
      expect((await client.readOptionReply()).type).toBe(REP.ERR_INVALID);
      client.write(optionBytes(OPT.GO, goData('alpha')));
      expect((await client.readOptionReply()).type).toBe(REP.INFO);
    });

    test.each([
      ['STRUCTURED_REPLY', OPT.STRUCTURED_REPLY, REP.ERR_UNSUP],
      ['STARTTLS without TLS configured', OPT.STARTTLS, REP.ERR_POLICY],
      ['an unknown option', 4242, REP.ERR_UNSUP],
    ])('%s is refused, and negotiation goes on', async (_name, option, type) => {
      const client = await handshake();
      client.write(optionBytes(option));
      const reply = await client.readOptionReply();
      expect(reply).toMatchObject({ option, type });
      client.write(optionBytes(OPT.LIST));
      expect((await client.readOptionReply()).type).toBe(REP.SERVER);
    });

    test('NBD_OPT_INFO answers size, flags and block sizes, and stays in negotiation', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.INFO, goData('alpha', [3])));
      const exportInfo = await client.readOptionReply();
      expect(exportInfo.type).toBe(REP.INFO);
      expect(exportInfo.data.toString('hex')).toBe('0000' + '0000000004000000' + '006d');
      const blockSize = await client.readOptionReply();
      expect(blockSize.data.toString('hex')).toBe('0003' + '00000001' + '00001000' + '02000000');
      expect((await client.readOptionReply()).type).toBe(REP.ACK);
      // Still negotiating: another option is answered.
      client.write(optionBytes(OPT.LIST));
      expect((await client.readOptionReply()).type).toBe(REP.SERVER);
    });

    test('CAN_MULTI_CONN is advertised only for a device that allows it', async () => {
      const { flags: plain } = await RawClient.open(port, 'alpha').then((r) => (clients.push(r.client), r));
      const { flags: shared } = await RawClient.open(port, 'shared').then((r) => (clients.push(r.client), r));
      expect(plain & 0x100).toBe(0);
      expect(shared & 0x100).toBe(0x100);
    });

    test('NBD_OPT_GO on an unknown export is ERR_UNKNOWN; malformed GO data is ERR_INVALID', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.GO, goData('nope')));
      const unknown = await client.readOptionReply();
      expect(unknown.type).toBe(REP.ERR_UNKNOWN);
      expect(unknown.data.toString()).toMatch(/no export named "nope"/);
      client.write(optionBytes(OPT.GO, Buffer.from('00000009616c7068610000', 'hex')));
      expect((await client.readOptionReply()).type).toBe(REP.ERR_INVALID);
      client.write(optionBytes(OPT.GO, goData('alpha')));
      expect((await client.readOptionReply()).type).toBe(REP.INFO);
    });

    test('a backend failure during NBD_OPT_GO is an error reply that names it', async () => {
      catalog.failWith = new StrataError(ErrorCode.UNAVAILABLE, 'no config leader');
      const client = await handshake();
      client.write(optionBytes(OPT.GO, goData('alpha')));
      const reply = await client.readOptionReply();
      expect(reply.type).toBe(REP.ERR_UNKNOWN);
      expect(reply.data.toString()).toMatch(/UNAVAILABLE: no config leader/);
    });

    test('an option longer than the limit is skipped and answered ERR_TOO_BIG', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.INFO, Buffer.alloc(20_000)));
      expect((await client.readOptionReply()).type).toBe(REP.ERR_TOO_BIG);
      client.write(optionBytes(OPT.GO, goData('alpha')));
      expect((await client.readOptionReply()).type).toBe(REP.INFO);
    });

    test('NBD_OPT_EXPORT_NAME: size and flags, with the 124 zeros only when NO_ZEROES was not agreed', async () => {
      const terse = await handshake(3);
      terse.write(optionBytes(OPT.EXPORT_NAME, Buffer.from('alpha')));
      expect((await terse.read(10)).toString('hex')).toBe('0000000004000000006d');
      // The next bytes are ours to send: a request, answered at once.
      terse.write(requestBytes(CMD.FLUSH, 9n, 0, 0));
      (await device.waitForCalls(1))[0]!.resolve();
      expect(await terse.readSimpleReply()).toEqual({ error: 0, handle: 9n });

      const padded = await handshake(1);
      padded.write(optionBytes(OPT.EXPORT_NAME, Buffer.from('alpha')));
      const reply = await padded.read(134);
      expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
    });

    test('NBD_OPT_EXPORT_NAME on an unknown export closes the connection (it has no error reply)', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.EXPORT_NAME, Buffer.from('nope')));
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(client.pendingBytes).toBe(0);
    });

    test('NBD_OPT_ABORT is acknowledged, then the connection ends', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.ABORT));
      expect((await client.readOptionReply()).type).toBe(REP.ACK);
      expect(await client.closesWithin(2_000)).toBe(true);
    });

    test('unknown client flags close the connection', async () => {
      const client = await handshake(0x10);
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(log.lines.join('\n')).toMatch(/unknown client flags 0x10/);
    });

    test('an option with a bad magic closes the connection', async () => {
      const client = await handshake();
      client.write(optionBytes(OPT.LIST, Buffer.alloc(0), Buffer.from('IHAVEOPX')));
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(log.lines.join('\n')).toMatch(/bad option magic/);
    });
  });

  test('a client that stalls in the handshake is dropped after the handshake timeout', async () => {
    await start({ handshakeTimeoutMs: 200 });
    const client = await handshake();
    const startedMs = Date.now();
    expect(await client.closesWithin(3_000)).toBe(true);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(150);
    expect(log.lines.join('\n')).toMatch(/handshake timed out/);
  });

  describe('transmission', () => {
    beforeEach(() => start({ requestsInFlightMax: 4, inFlightBytesMax: 32 * MiB }));

    test('replies go out as requests finish, out of order, each with its own data', async () => {
      const client = await open();
      client.write(Buffer.concat([requestBytes(CMD.READ, 1n, 0, 4), requestBytes(CMD.READ, 2n, 4096, 3)]));
      const [first, second] = await device.waitForCalls(2);
      second!.resolve(Buffer.from('bbb'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 2n });
      expect((await client.read(3)).toString()).toBe('bbb');
      first!.resolve(Buffer.from('aaaa'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
      expect((await client.read(4)).toString()).toBe('aaaa');
    });

    test('writes, FUA, trim, write-zeroes and flush reach the device with their arguments', async () => {
      const client = await open();
      client.write(
        Buffer.concat([
          requestBytes(CMD.WRITE, 1n, 100, 5, 1, Buffer.from('hello')),
          requestBytes(CMD.TRIM, 2n, 0, 65536),
          requestBytes(CMD.WRITE_ZEROES, 3n, 512, 512, 2),
          requestBytes(CMD.FLUSH, 4n, 0, 0),
        ]),
      );
      const calls = await device.waitForCalls(4);
      expect(calls.map(({ op, offset, length, fua }) => ({ op, offset, length, fua }))).toEqual([
        { op: 'write', offset: 100, length: 5, fua: true },
        { op: 'zero', offset: 0, length: 65536, fua: undefined },
        { op: 'zero', offset: 512, length: 512, fua: undefined },
        { op: 'flush', offset: 0, length: 0, fua: undefined },
      ]);
      expect(Buffer.from(calls[0]!.data!).toString()).toBe('hello');
      for (const c of calls) c.resolve();
      const handles = [];
      for (let i = 0; i < 4; i++) handles.push(await client.readSimpleReply());
      expect(handles.map((r) => r.error)).toEqual([0, 0, 0, 0]);
      expect(handles.map((r) => r.handle).sort()).toEqual([1n, 2n, 3n, 4n]);
    });

    test.each([
      ['INVALID', EINVAL, new StrataError(ErrorCode.INVALID, 'x')],
      ['NO_SPACE', ENOSPC, new StrataError(ErrorCode.NO_SPACE, 'x')],
      ['UNAVAILABLE', EIO, new StrataError(ErrorCode.UNAVAILABLE, 'x')],
      ['TIMEOUT', EIO, new StrataError(ErrorCode.TIMEOUT, 'x')],
      ['CHECKSUM', EIO, new StrataError(ErrorCode.CHECKSUM, 'x')],
      ['a plain exception', EIO, new TypeError('bug')],
    ])('a backend %s failure is errno %d, and the connection goes on', async (_what, errno, err) => {
      const client = await open();
      client.write(requestBytes(CMD.WRITE, 7n, 0, 4, 0, Buffer.from('abcd')));
      (await device.waitForCalls(1))[0]!.reject(err);
      expect(await client.readSimpleReply()).toEqual({ error: errno, handle: 7n });
      client.write(requestBytes(CMD.READ, 8n, 0, 2));
      (await device.waitForCalls(2))[1]!.resolve(Buffer.from('ok'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 8n });
      expect((await client.read(2)).toString()).toBe('ok');
    });

    test('a failed read sends no data; a short read from the backend is EIO, not a short reply', async () => {
      const client = await open();
      client.write(Buffer.concat([requestBytes(CMD.READ, 1n, 0, 8), requestBytes(CMD.READ, 2n, 0, 8)]));
      const [a, b] = await device.waitForCalls(2);
      a!.reject(new StrataError(ErrorCode.CHECKSUM, 'bad crc'));
      expect(await client.readSimpleReply()).toEqual({ error: EIO, handle: 1n });
      b!.resolve(Buffer.from('short'));
      expect(await client.readSimpleReply()).toEqual({ error: EIO, handle: 2n });
      client.write(requestBytes(CMD.READ, 3n, 0, 1));
      (await device.waitForCalls(3))[2]!.resolve(Buffer.from('z'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 3n });
      expect((await client.read(1)).toString()).toBe('z');
    });

    test('requests beyond the end, of length 0, unknown or with bad flags are refused and the stream stays in step', async () => {
      const client = await open();
      client.write(
        Buffer.concat([
          requestBytes(CMD.READ, 1n, 64 * MiB - 4, 8),
          requestBytes(CMD.WRITE, 2n, 64 * MiB - 2, 4, 0, Buffer.from('WXYZ')),
          requestBytes(CMD.READ, 3n, 0, 0),
          requestBytes(5, 4n, 0, 4096),
          requestBytes(CMD.WRITE, 5n, 0, 3, 4, Buffer.from('QRS')),
          requestBytes(CMD.READ, 6n, 10, 3),
        ]),
      );
      const expected = [
        { error: EINVAL, handle: 1n },
        { error: ENOSPC, handle: 2n },
        { error: EINVAL, handle: 3n },
        { error: EINVAL, handle: 4n },
        { error: EINVAL, handle: 5n },
      ];
      for (const e of expected) expect(await client.readSimpleReply()).toEqual(e);
      // Only the last, valid request reached the device.
      const calls = await device.waitForCalls(1);
      expect(calls.map((c) => [c.op, c.offset, c.length])).toEqual([['read', 10, 3]]);
      calls[0]!.resolve(Buffer.from('abc'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 6n });
    });

    test('at the in-flight limit the server stops reading, and serves the rest as replies drain', async () => {
      const client = await open();
      const requests = Array.from({ length: 10 }, (_, i) => requestBytes(CMD.READ, BigInt(i + 1), i * 4096, 1));
      client.write(Buffer.concat(requests));
      await device.waitForCalls(4);
      await new Promise((r) => setTimeout(r, 100));
      expect(device.calls).toHaveLength(4);
      let answered = 0;
      while (answered < 10) {
        const calls = await device.waitForCalls(answered + 1);
        calls[answered]!.resolve(Buffer.from('x'));
        answered++;
      }
      const handles = new Set<bigint>();
      for (let i = 0; i < 10; i++) {
        const r = await client.readSimpleReply();
        expect(r.error).toBe(0);
        await client.read(1);
        handles.add(r.handle);
      }
      expect(handles.size).toBe(10);
      expect(device.maxOutstanding).toBe(4);
    });

    test('READ/WRITE bytes in flight are bounded: a second 20 MiB read waits for the first', async () => {
      const client = await open();
      client.write(Buffer.concat([requestBytes(CMD.READ, 1n, 0, 20 * MiB), requestBytes(CMD.READ, 2n, 20 * MiB, 20 * MiB)]));
      const [first] = await device.waitForCalls(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(device.calls).toHaveLength(1);
      first!.resolve(Buffer.alloc(20 * MiB, 1));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
      await client.read(20 * MiB);
      const [, second] = await device.waitForCalls(2);
      second!.resolve(Buffer.alloc(20 * MiB, 2));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 2n });
      expect((await client.read(20 * MiB))[0]).toBe(2);
    });

    test('a WRITE over 32 MiB closes the connection without a reply; others are unaffected', async () => {
      const client = await open();
      client.write(requestBytes(CMD.WRITE, 1n, 0, 32 * MiB + 1));
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(client.pendingBytes).toBe(0);
      expect(device.calls).toHaveLength(0);
      const other = await open();
      other.write(requestBytes(CMD.FLUSH, 2n, 0, 0));
      (await device.waitForCalls(1))[0]!.resolve();
      expect(await other.readSimpleReply()).toEqual({ error: 0, handle: 2n });
    });

    test('a request with a bad magic closes the connection after the replies in flight', async () => {
      const client = await open();
      client.write(Buffer.concat([requestBytes(CMD.READ, 1n, 0, 2), requestBytes(CMD.READ, 2n, 0, 2, 0, undefined, 0x12345678)]));
      const [call] = await device.waitForCalls(1);
      call!.resolve(Buffer.from('hi'));
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
      expect((await client.read(2)).toString()).toBe('hi');
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(log.lines.join('\n')).toMatch(/bad request magic 0x12345678/);
    });

    test('NBD_CMD_DISC answers what is in flight, then closes', async () => {
      const client = await open();
      client.write(Buffer.concat([requestBytes(CMD.WRITE, 1n, 0, 2, 0, Buffer.from('ab')), requestBytes(CMD.DISC, 2n, 0, 0)]));
      const [call] = await device.waitForCalls(1);
      expect(await client.closesWithin(200)).toBe(false);
      call!.resolve();
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(client.pendingBytes).toBe(0);
    });

    test('a truncated request header and a vanished client harm no one', async () => {
      const client = await open();
      client.write(requestBytes(CMD.READ, 1n, 0, 2).subarray(0, 11));
      await new Promise((r) => setTimeout(r, 50));
      client.destroy();
      const other = await open();
      other.write(requestBytes(CMD.FLUSH, 2n, 0, 0));
      (await device.waitForCalls(1))[0]!.resolve();
      expect(await other.readSimpleReply()).toEqual({ error: 0, handle: 2n });
      expect(log.lines.filter((l) => l.startsWith('error'))).toEqual([]);
    });

    test('server close lets requests in flight answer, then closes the connections', async () => {
      const client = await open();
      client.write(requestBytes(CMD.READ, 1n, 0, 2));
      const [call] = await device.waitForCalls(1);
      const closing = server.close(2_000);
      setTimeout(() => call!.resolve(Buffer.from('ok')), 50);
      expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
      expect((await client.read(2)).toString()).toBe('ok');
      await closing;
      expect(await client.closesWithin(2_000)).toBe(true);
      expect(server.connectionCount).toBe(0);
    });
  });

  test('the memory backend serves real bytes through the server', async () => {
    await start({}, []);
    await server.close(100);
    const memory = new MemoryCatalog([{ name: 'mem', sizeBytes: 1 * MiB }]);
    server = new NbdServer({ catalog: memory });
    port = (await server.listenTcp(0)).port;
    const client = await open('mem');
    client.write(requestBytes(CMD.WRITE, 1n, 65_530, 12, 0, Buffer.from('across-pages')));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
    client.write(requestBytes(CMD.READ, 2n, 65_528, 16));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 2n });
    expect((await client.read(16)).toString('latin1')).toBe('\0\0across-pages\0\0');
  });
});
