// Admission control's core: a bounded queue in front of the controller and a bound
// on the requests in flight to it. The queue is an interface, so the QoS scheduler
// (priority classes, fair share, caps) can replace the FIFO without touching the
// rest. Pure apart from the dispatch function it is given, and the span of each
// request's wait in the queue.
import { ErrorCode, StrataError } from '@strata/errors';
import { SpanAttr, context, trace, withSpan, type Attributes, type Context, type Span } from '@strata/tracing';

const tracer = trace.getTracer('@strata/admission');

/** The span of a request's time in the queue, from enqueue to dispatch. */
export const QUEUE_WAIT_SPAN = 'admission queue wait';

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
  /** The submitter's context: `run` runs in it, whoever's completion dispatches it. */
  parent: Context;
  /** Set once the request is in the queue. */
  wait: Span | undefined;
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

  /**
   * Runs `run` when a slot is free; QUEUE_FULL (retryable) at once when the queue is full.
   *
   * A request that gets into the queue has an `admission queue wait` span, a child of the
   * submitter's active span, from enqueue to dispatch; `attributes` (build them only when
   * tracing records) are added to it. `run` runs in the submitter's context with the
   * wait span active, so what it starts (the request to the controller) is the wait
   * span's child: the trace reads handle, wait, then the dispatched request, even
   * though the wait ended when the request left the queue.
   */
  submit(run: () => Promise<R>, attributes?: Attributes): Promise<R> {
    return new Promise((resolve, reject) => {
      const item: Waiting<R> = { run, resolve, reject, enqueuedAtMs: this.now(), parent: context.active(), wait: undefined };
      if (!this.queue.push(item)) {
        // Refused, never queued: the bus records the error on the handler's span.
        reject(new StrataError(ErrorCode.QUEUE_FULL, `admission queue is full (${this.queue.size} waiting, ${this.inFlight} in flight)`));
        return;
      }
      const wait = tracer.startSpan(QUEUE_WAIT_SPAN, undefined, item.parent);
      if (wait.isRecording()) {
        wait.setAttributes({ [SpanAttr.queueDepth]: this.queue.size, [SpanAttr.inFlight]: this.inFlight });
        if (attributes !== undefined) wait.setAttributes(attributes);
      }
      item.wait = wait;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.inFlightMax) {
      const next = this.queue.pop();
      if (next === undefined) return;
      this.inFlight++;
      this.onDispatch(this.now() - next.enqueuedAtMs);
      const wait = next.wait!;
      wait.end();
      // pump() runs in whichever request's completion freed the slot: the dispatched
      // request must run in its own submitter's context, not in that one.
      withSpan(wait, next.run, next.parent)
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
