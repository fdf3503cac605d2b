// A lease on one KV key, renewed with compare-and-set, with the rules of decide.ts.
// The holder hears `onAcquired(epoch)` and `onLost(epoch, why)`; `isHeld()` answers
// from the local monotonic clock, so a process that wakes from a pause knows at once
// that it may no longer act, before any timer has had a chance to run.
import { performance } from 'node:perf_hooks';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import { decide, type leaseRecord, validUntil, type LeaseRecord, type Observation } from './decide';

export type LeaseBucket = TypedBucket<typeof leaseRecord>;

export interface LeaseLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LeaseOptions {
  /** KV key of the lease (`role.config`). */
  key: string;
  /** This contender's unique name. */
  holder: string;
  /** How long a lease lasts without renewal. */
  ttlMs: number;
  /** How often the holder renews and contenders look (default ttlMs / 3). */
  renewIntervalMs?: number;
  /** Bound on clock-rate difference between processes (default 0.1). */
  driftFraction?: number;
  onAcquired?: (epoch: number) => void;
  onLost?: (epoch: number, why: string) => void;
  log?: LeaseLogger;
  /** Monotonic clock in ms; injectable for tests. */
  now?: () => number;
}

export class Lease {
  private readonly ttlMs: number;
  private readonly renewIntervalMs: number;
  private readonly driftFraction: number;
  private readonly now: () => number;
  private heldEpoch: number | undefined;
  private heldUntilMs = 0;
  private observation: Observation | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking: Promise<void> = Promise.resolve();
  /** The record as last read: who holds the lease, for status displays. */
  lastSeen: LeaseRecord | undefined;

  constructor(
    private readonly bucket: LeaseBucket,
    private readonly options: LeaseOptions,
  ) {
    this.ttlMs = options.ttlMs;
    this.renewIntervalMs = options.renewIntervalMs ?? Math.floor(options.ttlMs / 3);
    this.driftFraction = options.driftFraction ?? 0.1;
    this.now = options.now ?? (() => performance.now());
    if (!(this.renewIntervalMs > 0 && this.renewIntervalMs < this.ttlMs * (1 - this.driftFraction))) {
      throw new Error(`lease ${options.key}: renewIntervalMs (${this.renewIntervalMs}) must be above 0 and below ttlMs * (1 - driftFraction)`);
    }
  }

  /** True while this process holds the lease by its own clock. */
  isHeld(): boolean {
    return this.heldEpoch !== undefined && this.now() < this.heldUntilMs;
  }

  /** The epoch held now (the fencing token), or undefined. */
  get epoch(): number | undefined {
    return this.isHeld() ? this.heldEpoch : undefined;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops contending; a holder releases the lease so a successor need not wait a TTL. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    clearTimeout(this.tickTimer);
    await this.ticking;
    const epoch = this.heldEpoch;
    if (epoch !== undefined && (options.release ?? true) && this.isHeld()) {
      try {
        const current = await this.bucket.get(this.options.key);
        if (current !== null && current.value.holder === this.options.holder && current.value.epoch === epoch) {
          await this.bucket.update(this.options.key, { ...current.value, holder: '' }, current.revision);
        }
      } catch (err) {
        this.options.log?.warn({ err, key: this.options.key }, 'could not release lease; successors will wait for it to expire');
      }
    }
    if (epoch !== undefined) this.lose('stopped');
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        if (this.running) this.schedule(this.nextDelay());
      });
    }, delayMs);
  }

  private nextDelay(): number {
    if (this.heldEpoch !== undefined) return this.renewIntervalMs;
    // Contenders look again soon after the holder's lease would expire.
    return Math.min(this.renewIntervalMs, Math.max(10, this.observationExpiresInMs()));
  }

  private observationExpiresInMs(): number {
    if (this.observation === undefined) return this.renewIntervalMs;
    return this.observation.sinceMs + this.ttlMs - this.now() + 5;
  }

  private async tick(): Promise<void> {
    const { key, holder } = this.options;
    let current;
    try {
      current = await this.bucket.get(key);
    } catch (err) {
      // Unreachable store: a holder keeps acting until its own validity runs out.
      this.options.log?.warn({ err, key }, 'lease read failed');
      return;
    }
    this.lastSeen = current?.value;
    const d = decide({
      me: holder,
      heldEpoch: this.heldEpoch,
      current: current === null ? null : { revision: current.revision, record: current.value },
      observation: this.observation,
      nowMs: this.now(),
      wallNowMs: Date.now(),
      ttlMs: this.ttlMs,
    });
    if (d.kind === 'wait') {
      this.observation = d.observation;
      return;
    }
    if (d.kind === 'lost') {
      this.lose(`now held by ${d.record.holder || 'nobody'} at epoch ${d.record.epoch}`);
      return;
    }
    const sentAtMs = this.now();
    try {
      if (d.kind === 'create') await this.bucket.create(key, d.record);
      else await this.bucket.update(key, d.record, d.revision);
    } catch (err) {
      if (isStrataError(err, ErrorCode.CONFLICT)) {
        // Someone else wrote first. A holder that loses a renewal race has lost the lease.
        if (d.kind === 'renew') this.lose('renewal lost a compare-and-set race');
        this.observation = undefined;
        return;
      }
      this.options.log?.warn({ err, key }, 'lease write failed');
      return;
    }
    this.lastSeen = d.record;
    this.observation = undefined;
    this.hold(d.record.epoch, validUntil(sentAtMs, this.ttlMs, this.driftFraction));
  }

  private hold(epoch: number, untilMs: number): void {
    const acquired = this.heldEpoch === undefined;
    this.heldEpoch = epoch;
    this.heldUntilMs = untilMs;
    this.armExpiry();
    if (acquired) {
      this.options.log?.info({ key: this.options.key, epoch }, 'lease acquired');
      this.options.onAcquired?.(epoch);
    }
  }

  /**
   * Declares the lease lost once its validity has run out without a renewal. Node
   * timers may fire a little (about a millisecond) before performance.now() reaches
   * their target: a timer that finds the lease still valid arms itself again, or an
   * expiry would pass unnoticed and the holder would never step down.
   */
  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(
      () => {
        if (this.heldEpoch === undefined) return;
        if (this.now() >= this.heldUntilMs) this.lose('renewal overdue');
        else this.armExpiry();
      },
      Math.max(1, Math.ceil(this.heldUntilMs - this.now())),
    );
  }

  private lose(why: string): void {
    const epoch = this.heldEpoch;
    if (epoch === undefined) return;
    this.heldEpoch = undefined;
    this.heldUntilMs = 0;
    clearTimeout(this.expiryTimer);
    this.options.log?.warn({ key: this.options.key, epoch, why }, 'lease lost');
    this.options.onLost?.(epoch, why);
  }
}
