// A node's heartbeat: its record in the `hb` bucket, rewritten every interval with
// a growing sequence number. Each process start takes a new incarnation, and so does
// a node that finds itself declared dead (it rejoins as a new member, SWIM-style).
import { performance } from 'node:perf_hooks';
import type { TypedBucket, WatchCache } from '@strata/kv';
import { keys, type CfgEntry, type NodeStatus, type heartbeat } from '@strata/proto';

function nodeStatusOf(entry: CfgEntry | undefined): NodeStatus | undefined {
  return entry !== undefined && 'kind' in entry && entry.kind === 'node' ? entry.status : undefined;
}

export interface HeartbeaterOptions {
  intervalMs: number;
  /** The config cache, to notice being declared dead (optional). */
  config?: WatchCache<CfgEntry>;
  onDeclaredDead?: (incarnation: number) => void;
  /**
   * Called before a renewal is recorded when the one before it is older than
   * `fenceTimeoutMs` (the process was paused or cut off): whoever fences on the
   * heartbeat's age must act on that gap even if nothing looked meanwhile.
   */
  fenceTimeoutMs?: number;
  onLapse?: (gapMs: number) => void;
  /**
   * Every this many beats, and at the first beat after a lapse, the node's record is
   * read from the config bucket itself (default 10): a config watch that stalled
   * while the node was cut off would otherwise hide that it was declared dead, and
   * the node would beat on with an incarnation the detector never accepts again.
   */
  recordCheckEveryBeats?: number;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

export class Heartbeater {
  private incarnationValue = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private removeListener: (() => void) | undefined;
  /** performance.now() of the last heartbeat the store acknowledged. */
  lastAckedAtMs = 0;

  constructor(
    private readonly bucket: TypedBucket<typeof heartbeat>,
    private readonly nodeId: bigint,
    private readonly options: HeartbeaterOptions,
  ) {}

  get incarnation(): number {
    return this.incarnationValue;
  }

  /** Takes the next incarnation and starts beating. */
  async start(): Promise<void> {
    const key = keys.nodeHeartbeat(this.nodeId);
    const previous = await this.bucket.get(key);
    const recorded = nodeStatusOf(this.options.config?.get(keys.object('node', this.nodeId))?.value)?.incarnation ?? 0;
    this.incarnationValue = Math.max(previous?.value.incarnation ?? 0, recorded) + 1;
    this.seq = 0;
    this.stopped = false;
    if (this.options.config !== undefined) {
      this.removeListener = this.options.config.onChange((changed, entry) => {
        if (changed !== keys.object('node', this.nodeId)) return;
        const status = nodeStatusOf(entry?.value);
        if (status?.liveness === 'dead' && status.incarnation >= this.incarnationValue) this.rejoin(status.incarnation);
      });
    }
    await this.beat();
  }

  /** Takes an incarnation above `deadIncarnation` after being declared dead. */
  rejoin(deadIncarnation: number): void {
    this.options.log?.warn({ node: String(this.nodeId), deadIncarnation }, 'declared dead: rejoining with a new incarnation');
    this.incarnationValue = Math.max(this.incarnationValue, deadIncarnation) + 1;
    this.seq = 0;
    this.options.onDeclaredDead?.(deadIncarnation);
  }

  private async beat(): Promise<void> {
    this.seq += 1;
    const sentAtMs = performance.now();
    try {
      await this.bucket.put(keys.nodeHeartbeat(this.nodeId), {
        incarnation: this.incarnationValue,
        seq: this.seq,
        atMs: Date.now(),
        intervalMs: this.options.intervalMs,
      });
      const gapMs = sentAtMs - this.lastAckedAtMs;
      const lapsed = this.lastAckedAtMs > 0 && this.options.fenceTimeoutMs !== undefined && gapMs > this.options.fenceTimeoutMs;
      if (lapsed) this.options.onLapse?.(gapMs);
      this.lastAckedAtMs = sentAtMs;
      if (lapsed || this.seq % (this.options.recordCheckEveryBeats ?? 10) === 0) void this.checkRecord();
    } catch (err) {
      this.options.log?.warn({ err }, 'heartbeat failed');
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.options.intervalMs);
  }

  /** Catches the config watch up with the node's stored record; its listener then sees a dead verdict. */
  private async checkRecord(): Promise<void> {
    try {
      const behind = await this.options.config?.catchUp(keys.object('node', this.nodeId));
      if (behind === true) this.options.log?.warn({ node: String(this.nodeId) }, "the config watch was behind the node's record; resumed it");
    } catch (err) {
      this.options.log?.warn({ err }, "could not read the node's record from the config bucket");
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.removeListener?.();
  }
}
