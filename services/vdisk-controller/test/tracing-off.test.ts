// With tracing off (no tracer provider registered, as in an actor with no exporter),
// the oplog and drain make no-op spans only: the appender hands no span contexts to the
// index (no per-batch array), the vDisk keeps no links, and writes, group commit and
// drain work as before.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { BlockLocation } from '@strata/proto';
import { trace } from '@strata/tracing';
import type { ExtentSpace } from '../src/extent-groups';
import { OplogAppender, type Appended } from '@strata/oplog';
import { Vdisk } from '../src/vdisk';
import { NoCuratorRequests } from './no-curator';

const BLOCK = 4096;

class NullSpace extends NoCuratorRequests implements ExtentSpace {
  writes = 0;
  private next = 0;
  allocate(_block: number, length: number): Promise<BlockLocation> {
    const location = { egroup: 1n, offset: this.next, length };
    this.next += length;
    return Promise.resolve(location);
  }

  owns(): Promise<boolean> {
    return Promise.resolve(true);
  }

  seal(): void {}

  writable(): Promise<boolean> {
    return Promise.resolve(true);
  }
  put(): Promise<void> {
    return Promise.reject(new Error('no direct writes here'));
  }
  write(): Promise<void> {
    this.writes++;
    return Promise.resolve();
  }
  read(_location: BlockLocation, _offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(length));
  }
}

test('with tracing off, appends hand no span contexts to the index and drain keeps no links', async () => {
  // Nothing registered: the API's tracers are no-ops.
  expect(trace.getTracer('probe').startSpan('probe').isRecording()).toBe(false);
  let seq = 0;
  const js = { publish: () => Promise.resolve({ seq: ++seq }) } as unknown as JetStreamClient;
  const stored: Appended[] = [];
  const appender = new OplogAppender({
    js: () => js,
    subject: 'oplog.5',
    vdisk: 5n,
    epoch: 1,
    owner: 'n1',
    lastSequence: 0,
    maxBatchBytes: 1 << 20,
    publishTimeoutMs: 1_000,
    publishAttempts: 1,
    lastMessage: () => Promise.resolve(undefined),
  });
  const space = new NullSpace();
  const vdisk = new Vdisk(
    { id: 5n, sizeBytes: 64 * BLOCK, blockSizeBytes: BLOCK },
    appender,
    space,
    { getRow: () => Promise.resolve(null), putRow: (_row, _value, revision) => Promise.resolve(revision + 1), recordDrained: () => Promise.resolve(), purgeBelow: () => Promise.resolve() },
    { undrainedBytesMax: 1 << 30, drainStartBytes: 1 << 30, drainIdleMs: 3_600_000, drainParallelism: 2, drainRoundBytesPaced: 1 << 30, rowBlocks: 16, directWriteBytesMin: 1 << 30, directLanes: 1 },
    0,
    () => undefined,
  );
  // What each append returns to the vDisk.
  const append = appender.append.bind(appender);
  appender.append = (...ops) => append(...ops).then((appended) => (stored.push(appended), appended));
  try {
    // Concurrent writes: group commit batches some of them.
    await Promise.all(Array.from({ length: 20 }, (_, i) => vdisk.write(i * BLOCK, new Uint8Array(BLOCK).fill(i + 1), Number.MAX_SAFE_INTEGER)));
    expect(stored).toHaveLength(20);
    expect(new Set(stored.map((a) => a.seq)).size).toBeLessThan(20);
    expect(stored.every((a) => a.span === undefined)).toBe(true);
    expect(vdisk.writeLinks.size).toBe(0);
    await vdisk.drain();
    expect(space.writes).toBe(1);
    expect(vdisk.index.blockCount).toBe(0);
  } finally {
    await vdisk.close();
  }
});
