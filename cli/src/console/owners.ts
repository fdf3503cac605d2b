// Every vDisk's ownership and takeover records for the console, kept by two watches of
// the `own` bucket instead of read each second (two requests per vDisk a second).
// Until the bucket exists (nothing has run on the cluster yet) there is no record;
// the watches are tried again at the next read.
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { TypedBucket, WatchCache } from '@strata/kv';
import { buckets, keys, takeoverRecord, vdiskOwnership, type TakeoverRecord, type VdiskOwnership } from '@strata/proto';
import { isStreamNotFound } from '../client';
import type { OwnerState } from '../ownership';

/** How long the first read waits for the watches' initial copies. */
const SYNC_TIMEOUT_MS = 2_000;

interface Watches {
  ownership: WatchCache<VdiskOwnership>;
  takeover: WatchCache<TakeoverRecord>;
}

export class OwnerWatch {
  private watches: Promise<Watches | undefined> | undefined;

  constructor(private readonly nc: NatsConnection) {}

  /** The records of `vdisk` as the watches have them (none before the bucket exists). */
  async of(vdisk: bigint): Promise<OwnerState> {
    const w = await (this.watches ??= this.start()).catch((err: unknown) => {
      this.watches = undefined;
      throw err;
    });
    // No bucket yet: tried again at the next read.
    if (w === undefined) this.watches = undefined;
    return { ownership: w?.ownership.get(keys.vdiskOwnership(vdisk))?.value ?? null, takeover: w?.takeover.get(keys.takeover(vdisk))?.value ?? null };
  }

  async stop(): Promise<void> {
    const w = await this.watches?.catch(() => undefined);
    w?.ownership.stop();
    w?.takeover.stop();
  }

  private async start(): Promise<Watches | undefined> {
    try {
      const kv = await new Kvm(this.nc).open(buckets.own);
      const [ownership, takeover] = await Promise.all([
        WatchCache.start(new TypedBucket(buckets.own, kv, vdiskOwnership, this.nc), { key: keys.vdiskOwnershipAll }),
        WatchCache.start(new TypedBucket(buckets.own, kv, takeoverRecord, this.nc), { key: keys.takeoverAll }),
      ]);
      await Promise.race([Promise.all([ownership.ready, takeover.ready]), new Promise((resolve) => setTimeout(resolve, SYNC_TIMEOUT_MS).unref())]);
      return { ownership, takeover };
    } catch (err) {
      if (isStreamNotFound(err)) return undefined;
      throw err;
    }
  }
}
