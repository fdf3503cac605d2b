// Admission control's core: a bounded queue in front of the controller and a bound
// on the requests in flight to it. The queue is an interface, so the QoS scheduler
// (priority classes, fair share, caps) can replace the FIFO without touching the
// rest. Pure apart from the dispatch function it is given.
import { ErrorCode, StrataError } from '@strata/errors';

/** What the gate needs of a queue discipline. */
export interface AdmissionQueue<T> {
  /** Adds an item; false when the queue is full. */
  push(item: T): boolean;
  /** The next item to dispatch, if any. */
  pop(): T | undefined;
  readonly size: number;
}

/** First come, first served, up to `depthMax` waiting. */
export class FifoQueue<T> implements AdmissionQueue<T> {
  private items: T[] = [];
  private head = 0;

  constructor(private readonly depthMax: number) {}

  push(item: T): boolean {
    if (this.size >= this.depthMax) return false;
    this.items.push(item);
    return true;
  }

  pop(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    // Compact now and then instead of shifting on every pop.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}

interface Waiting<R> {
  run: () => Promise<R>;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
  enqueuedAtMs: number;
}

export class Gate<R> {
  private inFlight = 0;

  constructor(
    private readonly queue: AdmissionQueue<Waiting<R>>,
    private readonly inFlightMax: number,
    private readonly now: () => number,
    /** Called with how long each request waited in the queue. */
    private readonly onDispatch: (waitedMs: number) => void = () => undefined,
  ) {}

  /** Runs `run` when a slot is free; QUEUE_FULL (retryable) at once when the queue is full. */
  submit(run: () => Promise<R>): Promise<R> {
    return new Promise((resolve, reject) => {
      if (!this.queue.push({ run, resolve, reject, enqueuedAtMs: this.now() })) {
        reject(new StrataError(ErrorCode.QUEUE_FULL, `admission queue is full (${this.queue.size} waiting, ${this.inFlight} in flight)`));
        return;
      }
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.inFlightMax) {
      const next = this.queue.pop();
      if (next === undefined) return;
      this.inFlight++;
      this.onDispatch(this.now() - next.enqueuedAtMs);
      next
        .run()
        .then(next.resolve, next.reject)
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  get depth(): number {
    return this.queue.size;
  }

  get active(): number {
    return this.inFlight;
  }
}
