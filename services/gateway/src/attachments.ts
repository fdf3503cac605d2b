// Which vDisks this gateway has open, published for `strata vdisk rm` (it refuses a
// vDisk a client has open) in the `hb` bucket under `attach.<node>`. The counts
// change with each NBD connection that reaches transmission and each that ends; the
// record is rewritten at once after a change (one write at a time, the newest counts
// winning) and every `intervalMs`, so a reader can tell a live report from one a
// killed gateway left behind. It is deleted when the gateway stops.
import type { GatewayAttachments } from '@strata/proto';

export interface AttachmentsDeps {
  node: string;
  intervalMs: number;
  /** Writes the report (the hb bucket's put under keys.gatewayAttachments). */
  put(report: GatewayAttachments): Promise<unknown>;
  /** Deletes the report. */
  remove(): Promise<unknown>;
  warn(err: unknown, what: string): void;
}

export class Attachments {
  private readonly counts = new Map<bigint, number>();
  /** The write in progress, and whether another must follow it. */
  private writing: Promise<void> | undefined;
  private dirty = false;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly deps: AttachmentsDeps) {
    this.timer = setInterval(() => this.publish(), deps.intervalMs);
    this.timer.unref();
    this.publish();
  }

  /** A connection serves `vdisk` from now on; call the returned function once when it ends. */
  add(vdisk: bigint): () => void {
    this.counts.set(vdisk, (this.counts.get(vdisk) ?? 0) + 1);
    this.publish();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(vdisk) ?? 1) - 1;
      if (left <= 0) this.counts.delete(vdisk);
      else this.counts.set(vdisk, left);
      this.publish();
    };
  }

  /** The report as it stands. */
  report(nowMs: number): GatewayAttachments {
    const vdisks = [...this.counts].map(([vdisk, connections]) => ({ vdisk, connections }));
    return { node: this.deps.node, vdisks, atMs: nowMs, intervalMs: this.deps.intervalMs };
  }

  /** Writes the current counts, after the write in progress if there is one. */
  private publish(): void {
    if (this.stopped) return;
    if (this.writing !== undefined) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    this.writing = this.deps
      .put(this.report(Date.now()))
      .then(
        () => undefined,
        (err: unknown) => this.deps.warn(err, 'could not publish the open vDisks'),
      )
      .finally(() => {
        this.writing = undefined;
        if (this.dirty) this.publish();
      });
  }

  /** Stops publishing and deletes the report: this gateway has nothing open any more. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.writing;
    await this.deps.remove().catch((err: unknown) => this.deps.warn(err, 'could not delete the report of open vDisks'));
  }
}
