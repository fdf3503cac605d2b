// The restart of one VM, as a state machine (design.md, "HA"; PROTOCOL.md section 12).
// Its steps are the lists of the VMware design: the restart list (pending, powering-on,
// retry-delay, wait-capacity) and the wait list (wait-access).
//
//   pending ──placed──▶ powering-on ──poweredOn──▶ restarted
//      │  ◀──redispatch──┘   │ powerOnFailed: capacity ▶ wait-capacity ──capacityChanged──▶ pending
//      │                     │ powerOnFailed: inaccessible ▶ wait-access ──accessible──▶ pending
//      │                     │ powerOnFailed: other ▶ retry-delay ──retryDue──▶ pending
//      │                     └ (the last attempt failed) ▶ gave-up
//      ├─noCapacity──▶ wait-capacity
//      └─inaccessible──▶ wait-access
//   any step ──cancel──▶ cancelled (stopped or deleted by the operator, running again)
//
// The machine is pure. The master (master.ts) feeds it events and writes each new
// snapshot to `restart.<vm>` in the `ha` bucket (a RestartRecord: the step, and the
// context) before it acts on it, so a master elected after this one died resumes the
// restart where it stopped. Times are absolute (unix-ms) in the context: delayed
// transitions are not restored from snapshots, so the master feeds `retryDue` itself.
import { assign, initialTransition, setup, transition, type SnapshotFrom } from 'xstate';
import { RestartStep, type RestartRecord } from '@strata/proto';

export type RestartContext = Omit<RestartRecord, 'step'>;

/** Why a power-on failed, as the master classifies the host's error. */
export type PowerOnFailure = 'capacity' | 'inaccessible' | 'other';

export type RestartEvent =
  /** A host with capacity was chosen and told to power the VM on. */
  | { type: 'placed'; host: string }
  /** No host can take the VM now. */
  | { type: 'noCapacity'; reason: string }
  /** A vDisk of the VM is not accessible. */
  | { type: 'inaccessible'; reason: string }
  /** Its vDisks are all accessible again. */
  | { type: 'accessible' }
  /** Some host's free capacity changed. */
  | { type: 'capacityChanged' }
  /** The host runs it. */
  | { type: 'poweredOn' }
  /** The host could not power it on. */
  | { type: 'powerOnFailed'; cause: PowerOnFailure; reason: string; atMs: number }
  /** retryAtMs has come. */
  | { type: 'retryDue' }
  /** A power-on an earlier master sent did not happen (the lease is still free): send it again. */
  | { type: 'redispatch'; reason: string }
  /** The VM no longer needs a restart. */
  | { type: 'cancel'; reason: string };

export interface RetryPolicy {
  /** Delay after the first failed power-on; doubled after each further one. */
  retryDelayMs: number;
  retryDelayMaxMs: number;
  /** Failed power-ons after which HA gives up. */
  attemptsMax: number;
}

/** The delay before attempt `attempts + 1`, after `attempts` failures (at least 1). */
export function retryDelay(policy: RetryPolicy, attempts: number): number {
  return Math.min(policy.retryDelayMaxMs, policy.retryDelayMs * 2 ** Math.max(0, attempts - 1));
}

export function restartMachine(policy: RetryPolicy) {
  return setup({
    types: { context: {} as RestartContext, events: {} as RestartEvent, input: {} as RestartContext },
    guards: {
      lastAttempt: ({ context }) => context.attempts + 1 >= policy.attemptsMax,
      capacity: ({ event }) => event.type === 'powerOnFailed' && event.cause === 'capacity',
      inaccessible: ({ event }) => event.type === 'powerOnFailed' && event.cause === 'inaccessible',
    },
    actions: {
      placed: assign(({ event }) => (event.type === 'placed' ? { host: event.host, reason: `told ${event.host} to power it on`, retryAtMs: undefined } : {})),
      because: assign(({ event }) => ('reason' in event ? { reason: event.reason } : {})),
      ready: assign({ reason: 'to be placed on a host with capacity', host: undefined, retryAtMs: undefined }),
      failed: assign(({ context, event }) => {
        if (event.type !== 'powerOnFailed') return {};
        const attempts = context.attempts + 1;
        const excluded = context.host === undefined || context.excluded.includes(context.host) ? context.excluded : [...context.excluded, context.host];
        return { attempts, excluded, reason: event.reason, host: undefined, retryAtMs: event.atMs + retryDelay(policy, attempts) };
      }),
    },
  }).createMachine({
    id: 'restart',
    context: ({ input }) => input,
    initial: RestartStep.pending,
    on: { cancel: { target: '.cancelled', actions: 'because' } },
    states: {
      [RestartStep.pending]: {
        on: {
          placed: { target: RestartStep.poweringOn, actions: 'placed' },
          noCapacity: { target: RestartStep.waitCapacity, actions: 'because' },
          inaccessible: { target: RestartStep.waitAccess, actions: 'because' },
        },
      },
      [RestartStep.poweringOn]: {
        on: {
          poweredOn: 'restarted',
          redispatch: { target: RestartStep.pending, actions: 'because' },
          powerOnFailed: [
            { guard: 'lastAttempt', target: 'gaveUp', actions: 'failed' },
            { guard: 'capacity', target: RestartStep.waitCapacity, actions: 'failed' },
            { guard: 'inaccessible', target: RestartStep.waitAccess, actions: 'failed' },
            { target: RestartStep.retryDelay, actions: 'failed' },
          ],
        },
      },
      [RestartStep.retryDelay]: { on: { retryDue: { target: RestartStep.pending, actions: 'ready' } } },
      [RestartStep.waitCapacity]: { on: { capacityChanged: { target: RestartStep.pending, actions: 'ready' } } },
      [RestartStep.waitAccess]: { on: { accessible: { target: RestartStep.pending, actions: 'ready' } } },
      restarted: { type: 'final' },
      gaveUp: { type: 'final' },
      cancelled: { type: 'final' },
    },
  });
}

export type RestartMachine = ReturnType<typeof restartMachine>;
export type RestartSnapshot = SnapshotFrom<RestartMachine>;

/** A new restart, at `pending`. */
export function startRestart(machine: RestartMachine, context: RestartContext): RestartSnapshot {
  return initialTransition(machine, context)[0];
}

/** The snapshot a stored record describes. */
export function resumeRestart(machine: RestartMachine, record: RestartRecord): RestartSnapshot {
  const { step, ...context } = record;
  return machine.resolveState({ value: step, context });
}

/** The next snapshot; an event the step does not take leaves it unchanged (the same object). */
export function nextRestart(machine: RestartMachine, snapshot: RestartSnapshot, event: RestartEvent): RestartSnapshot {
  return transition(machine, snapshot, event)[0];
}

const steps = new Set<string>(Object.values(RestartStep));

/** The step of a snapshot, or undefined once the restart is over (restarted, gave up, cancelled). */
export function stepOf(snapshot: RestartSnapshot): RestartStep | undefined {
  const value = snapshot.value;
  return typeof value === 'string' && steps.has(value) ? (value as RestartStep) : undefined;
}

/** How a finished restart ended. */
export function outcomeOf(snapshot: RestartSnapshot): 'restarted' | 'gaveUp' | 'cancelled' | undefined {
  const value = snapshot.value;
  return value === 'restarted' || value === 'gaveUp' || value === 'cancelled' ? value : undefined;
}

/** The record to store for a snapshot that is at a step; optional members left undefined are dropped. */
export function recordOf(snapshot: RestartSnapshot): RestartRecord {
  const step = stepOf(snapshot);
  if (step === undefined) throw new Error(`the restart of vm ${snapshot.context.vm} is over (${String(snapshot.value)}); nothing to record`);
  const { host, retryAtMs, ...rest } = snapshot.context;
  return { step, ...rest, ...(host === undefined ? {} : { host }), ...(retryAtMs === undefined ? {} : { retryAtMs }) };
}

/** On the wait list (as opposed to the restart list). */
export function onWaitList(step: RestartStep): boolean {
  return step === RestartStep.waitAccess;
}
