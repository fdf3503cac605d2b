// Proves the bus backend speaks the I/O protocol of proto/: every vDisk in the config
// is an export, I/O goes to `strata.io.<node>.<op>` with the vDisk's 64-bit id, every
// message validates against its proto schema after a CBOR round trip, requests are
// cut into pieces (by default of at most IO_CHUNK_BYTES_DEFAULT_SERVER) run with a bounded
// fan-out and put back in order (a one-piece read answers with the reply's bytes), each with the remaining budget and retry on, and a failed or malformed
// piece fails the whole request.
import type { z } from 'zod';
import { decode, encode } from '@strata/codec';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { DirectorOp, IO_CHUNK_BYTES, IO_CHUNK_BYTES_DEFAULT_SERVER, ioChunkBytes, ioAttachRequest, ioFlushRequest, ioReadRequest, ioWriteRequest, ioZeroRequest } from '@strata/proto';
import { BusCatalog, type IoRequester, type VdiskDirectory } from '../src/bus-backend';

const KiB = 1024;
const VDISK_ID = 2n ** 40n + 5n;

interface Sent {
  subject: string;
  request: Record<string, unknown>;
  options: { timeoutMs?: number; retry?: boolean; attemptTimeoutMs?: number };
}

const requestSchemas: Record<string, z.ZodType> = { read: ioReadRequest, write: ioWriteRequest, zero: ioZeroRequest, flush: ioFlushRequest };

/** A bus that checks each request against its proto schema, records it, and answers with `answer`. */
function fakeBus(answer: (sent: Sent) => Promise<unknown>): { bus: IoRequester; sent: Sent[]; attached: Sent[]; peak: () => number } {
  const sent: Sent[] = [];
  const attached: Sent[] = [];
  let running = 0;
  let peak = 0;
  const bus = {
    request: async (subject: string, request: unknown, replySchema: z.ZodType, options: Sent['options'] = {}) => {
      const op = subject.split('.').pop()!;
      if (op === DirectorOp.attach) {
        // Opening an export volunteers the node: answered here, kept apart from the I/O.
        attached.push({ subject, request: decode(encode(request), ioAttachRequest) as Record<string, unknown>, options });
        return replySchema.parse({ owner: 'n2', epoch: 1, volunteers: ['n2', 'n1'] });
      }
      // What a real responder would decode: proves the message is valid on the wire.
      const wire = decode(encode(request), requestSchemas[op]!) as Record<string, unknown>;
      const record = { subject, request: wire, options };
      sent.push(record);
      running++;
      peak = Math.max(peak, running);
      try {
        return replySchema.parse(await answer(record));
      } finally {
        running--;
      }
    },
  } as unknown as IoRequester;
  return { bus, sent, attached, peak: () => peak };
}

function vdisk(name: string, sizeBytes: number, shared = false, id = VDISK_ID): unknown {
  return { kind: 'vdisk', id, name, createdAtMs: 1, updatedAtMs: 1, epoch: 1, revision: 3, spec: { container: 9n, sizeBytes, blockSizeBytes: 1 << 20, shared, qos: { priority: 'normal', weight: 1 } } };
}

function fakeConfig(objects: unknown[]): VdiskDirectory & { gets: number } {
  const config = {
    gets: 0,
    list: async () => objects,
    get: async ({ name }: { name: string }) => {
      config.gets++;
      const found = objects.find((o) => (o as { name: string }).name === name);
      if (found === undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk "${name}" does not exist`);
      return found;
    },
  };
  return config as unknown as VdiskDirectory & { gets: number };
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('bus catalog', () => {
  test('every vDisk is an export, with its size', async () => {
    const catalog = new BusCatalog({ bus: fakeBus(async () => ({})).bus, config: fakeConfig([vdisk('demo', 1 << 30), vdisk('web', 4096, true, 7n)]), node: 'n1' });
    expect(await catalog.list()).toEqual([
      { name: 'demo', sizeBytes: 1 << 30, description: `vDisk ${VDISK_ID}` },
      { name: 'web', sizeBytes: 4096, description: 'vDisk 7 (shared)' },
    ]);
  });

  test('open: a vDisk becomes a device; multi-conn follows `shared`; unknown names are undefined', async () => {
    const config = fakeConfig([vdisk('demo', 1 << 30), vdisk('web', 4096, true, 7n)]);
    const catalog = new BusCatalog({ bus: fakeBus(async () => ({})).bus, config, node: 'n1' });
    const demo = await catalog.open('demo');
    expect(demo).toMatchObject({ name: 'demo', sizeBytes: 1 << 30, multiConn: false, vdisk: VDISK_ID });
    expect((await catalog.open('web'))?.multiConn).toBe(true);
    expect(await catalog.open('nope')).toBeUndefined();
    // A name the config could never hold is not even asked about.
    const before = config.gets;
    expect(await catalog.open('Not A Name!')).toBeUndefined();
    expect(await catalog.open('')).toBeUndefined();
    expect(config.gets).toBe(before);
  });

  test('open: the node volunteers for the vDisk by attaching it at its io-director', async () => {
    const fake = fakeBus(async () => ({}));
    const catalog = new BusCatalog({ bus: fake.bus, config: fakeConfig([vdisk('demo', 1 << 30)]), node: 'n1' });
    await catalog.open('demo');
    expect(fake.attached).toEqual([expect.objectContaining({ subject: 'strata.io.n1.attach', request: { vdisk: VDISK_ID } })]);
    await catalog.open('nope');
    expect(fake.attached).toHaveLength(1);
  });

  test('open: the attach has the open budget, retried in attempts of at most attemptTimeoutMs', async () => {
    const fake = fakeBus(async () => ({}));
    const catalog = new BusCatalog({ bus: fake.bus, config: fakeConfig([vdisk('demo', 1 << 30)]), node: 'n1', attemptTimeoutMs: 3_000, openTimeoutMs: 8_000 });
    await catalog.open('demo');
    expect(fake.attached[0]!.options).toEqual({ timeoutMs: 8_000, retry: true, attemptTimeoutMs: 3_000 });
  });

  test('open: a config failure other than NOT_FOUND is thrown, not turned into "no such export"', async () => {
    const config = { list: async () => [], get: async () => Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'no leader')) } as unknown as VdiskDirectory;
    const catalog = new BusCatalog({ bus: fakeBus(async () => ({})).bus, config, node: 'n1' });
    await expect(catalog.open('demo')).rejects.toThrow('no leader');
  });
});

describe('bus device', () => {
  async function device(answer: (sent: Sent) => Promise<unknown>, options: { piecesInFlightMax?: number; requestTimeoutMs?: number; chunkBytes?: number } = {}) {
    const fake = fakeBus(answer);
    const catalog = new BusCatalog({ bus: fake.bus, config: fakeConfig([vdisk('demo', 1 << 30)]), node: 'n1', ...options });
    const d = await catalog.open('demo');
    return { d: d!, ...fake };
  }

  test('a read is cut at 256 KiB multiples, sent concurrently within the limit, and reassembled in order', async () => {
    const { d, sent, peak } = await device(
      async ({ request }) => {
        const offset = request.offset as number;
        const length = request.length as number;
        // Later pieces answer first, so order comes from reassembly, not arrival.
        await delay(Math.max(0, 20 - offset / (64 * KiB)));
        return { data: Buffer.from(Array.from({ length }, (_, i) => (offset + i) % 251)) };
      },
      { piecesInFlightMax: 3 },
    );
    const offset = 100 * KiB;
    const length = 2 * IO_CHUNK_BYTES_DEFAULT_SERVER + 300 * KiB;
    const data = await d.read(offset, length);
    expect(Buffer.from(data).equals(Buffer.from(Array.from({ length }, (_, i) => (offset + i) % 251)))).toBe(true);
    expect(sent.map((s) => s.subject)).toEqual(Array(4).fill('strata.io.n1.read'));
    expect(sent.map((s) => [s.request.offset, s.request.length])).toEqual([
      [100 * KiB, 156 * KiB],
      [256 * KiB, 256 * KiB],
      [512 * KiB, 256 * KiB],
      [768 * KiB, 144 * KiB],
    ]);
    expect(sent.every((s) => s.request.vdisk === VDISK_ID)).toBe(true);
    expect(peak()).toBe(3);
  });

  test('a read of one piece answers with the reply\'s bytes, not a copy; 1 MiB pieces when the servers allow', async () => {
    const replies: Uint8Array[] = [];
    const { d, sent } = await device(
      async ({ request }) => {
        const reply = Buffer.alloc(request.length as number, 7);
        replies.push(reply);
        return { data: reply };
      },
      { chunkBytes: ioChunkBytes(8 * 1024 * KiB) },
    );
    const data = await d.read(0, 1024 * KiB);
    expect(sent.map((s) => [s.request.offset, s.request.length])).toEqual([[0, 1024 * KiB]]);
    expect(data.length).toBe(1024 * KiB);
    expect(data.buffer).toBe(replies[0]!.buffer);
  });

  test('ioChunkBytes: 1 MiB pieces on servers taking at least 2 MiB messages, else 256 KiB', () => {
    expect(ioChunkBytes(8 * 1024 * KiB)).toBe(IO_CHUNK_BYTES);
    expect(ioChunkBytes(2 * IO_CHUNK_BYTES)).toBe(IO_CHUNK_BYTES);
    expect(ioChunkBytes(1024 * KiB)).toBe(256 * KiB);
    expect(ioChunkBytes(undefined)).toBe(256 * KiB);
  });

  test('every piece gets what is left of one deadline, with retry on', async () => {
    const { d, sent } = await device(async () => {
      await delay(30);
      return {};
    }, { piecesInFlightMax: 1, requestTimeoutMs: 5_000 });
    await d.zero(0, 3 * IO_CHUNK_BYTES_DEFAULT_SERVER);
    expect(sent).toHaveLength(3);
    for (const s of sent) {
      expect(s.options.retry).toBe(true);
      expect(s.options.timeoutMs).toBeLessThanOrEqual(5_000);
      expect(s.options.timeoutMs).toBeGreaterThan(4_000);
    }
    // Later pieces see a smaller budget: it is one deadline for the whole request.
    expect(sent[2]!.options.timeoutMs!).toBeLessThan(sent[0]!.options.timeoutMs!);
  });

  test('a write sends each piece its own bytes, FUA only when asked', async () => {
    const { d, sent } = await device(async () => ({}));
    const data = Buffer.from(Array.from({ length: IO_CHUNK_BYTES_DEFAULT_SERVER + 10 }, (_, i) => i % 256));
    await d.write(IO_CHUNK_BYTES_DEFAULT_SERVER - 5, data, true);
    expect(sent.map((s) => [s.subject, s.request.offset, (s.request.data as Uint8Array).length, s.request.fua])).toEqual([
      ['strata.io.n1.write', IO_CHUNK_BYTES_DEFAULT_SERVER - 5, 5, true],
      ['strata.io.n1.write', IO_CHUNK_BYTES_DEFAULT_SERVER, IO_CHUNK_BYTES_DEFAULT_SERVER, true],
      ['strata.io.n1.write', 2 * IO_CHUNK_BYTES_DEFAULT_SERVER, 5, true],
    ]);
    const rebuilt = Buffer.concat(sent.map((s) => s.request.data as Uint8Array));
    expect(rebuilt.equals(data)).toBe(true);

    sent.length = 0;
    await d.write(0, Buffer.from('x'), false);
    expect('fua' in sent[0]!.request).toBe(false);
  });

  test('flush is one message to the node', async () => {
    const { d, sent } = await device(async () => ({}));
    await d.flush();
    expect(sent.map((s) => [s.subject, s.request])).toEqual([['strata.io.n1.flush', { vdisk: VDISK_ID }]]);
  });

  test('a failed piece fails the request with its error', async () => {
    const { d } = await device(async ({ request }) => {
      if (request.offset === IO_CHUNK_BYTES_DEFAULT_SERVER) throw new StrataError(ErrorCode.NO_SPACE, 'container full');
      return {};
    });
    const err = await d.write(0, Buffer.alloc(3 * IO_CHUNK_BYTES_DEFAULT_SERVER), false).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.NO_SPACE)).toBe(true);
  });

  test('a read piece of the wrong length is INTERNAL, never a short success', async () => {
    const { d } = await device(async ({ request }) => ({ data: Buffer.alloc((request.length as number) - 1) }));
    const err = await d.read(0, 4096).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.INTERNAL)).toBe(true);
  });
});
