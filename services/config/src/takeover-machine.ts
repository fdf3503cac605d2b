// The takeover of one vDisk after its owner was declared dead, as a state machine
// (design.md, "Ownership, liveness, fencing"; the write path's promise 6):
//
//   claim  → own names the new owner at epoch + 1 (compare-and-set)
//   fence  → the takeover marker is in the vDisk's oplog: the old owner's next
//            append fails its sequence check, however late it wakes up
//   replay → the new owner has replayed the undrained oplog tail and serves
//   serve  → the move is recorded as an event and the takeover record deleted
//
// The machine is pure: the coordinator (failover.ts) runs each step's effect and
// feeds the outcome back as an event. After every transition the coordinator
// writes the snapshot to `takeover.<vdisk>` in `own` (a TakeoverRecord: the state
// is `step`, the rest is the context), so a coordinator elected after this one died
// resumes the takeover where it stopped. Every step is idempotent, so running one
// twice (once by a coordinator that died before recording it) changes nothing.
import { assign, initialTransition, setup, transition, type SnapshotFrom } from 'xstate';
import { TakeoverStep, type TakeoverRecord } from '@strata/proto';

/** Failed attempts at one step before the coordinator gives up on the node taking over. */
export const STEP_ATTEMPTS_MAX = 3;

export type TakeoverContext = Omit<TakeoverRecord, 'step'>;

export type TakeoverEvent =
  /** The step's effect is done (or was already done). */
  | { type: 'done' }
  /** The step's effect failed; it is tried again, up to STEP_ATTEMPTS_MAX times. */
  | { type: 'failed' }
  /** The vDisk moved by other means (a relinquish, a newer takeover): nothing left to do. */
  | { type: 'superseded' }
  /** The node taking over cannot (unreachable, or dead too): start again with `to`, one epoch higher. */
  | { type: 'retarget'; to: string };

export const takeoverMachine = setup({
  types: { context: {} as TakeoverContext, events: {} as TakeoverEvent, input: {} as TakeoverContext },
  guards: {
    mayRetry: ({ context }) => context.attempts + 1 < STEP_ATTEMPTS_MAX,
  },
  actions: {
    resetAttempts: assign({ attempts: 0 }),
    countAttempt: assign({ attempts: ({ context }) => context.attempts + 1 }),
    retarget: assign(({ context, event }) => {
      if (event.type !== 'retarget') return {};
      return { to: event.to, epoch: context.epoch + 1, attempts: 0, excluded: [...context.excluded, context.to] };
    }),
  },
}).createMachine({
  id: 'takeover',
  context: ({ input }) => input,
  initial: TakeoverStep.claim,
  // A retarget is possible from any step before the new owner serves: the node
  // chosen may die while it is being given the vDisk.
  on: {
    superseded: '.abandoned',
  },
  states: {
    [TakeoverStep.claim]: {
      on: {
        done: { target: TakeoverStep.fence, actions: 'resetAttempts' },
        failed: { guard: 'mayRetry', actions: 'countAttempt' },
        retarget: { target: TakeoverStep.claim, reenter: true, actions: 'retarget' },
      },
    },
    [TakeoverStep.fence]: {
      on: {
        done: { target: TakeoverStep.replay, actions: 'resetAttempts' },
        failed: { guard: 'mayRetry', actions: 'countAttempt' },
        retarget: { target: TakeoverStep.claim, actions: 'retarget' },
      },
    },
    [TakeoverStep.replay]: {
      on: {
        done: { target: TakeoverStep.serve, actions: 'resetAttempts' },
        failed: { guard: 'mayRetry', actions: 'countAttempt' },
        retarget: { target: TakeoverStep.claim, actions: 'retarget' },
      },
    },
    [TakeoverStep.serve]: {
      on: { done: 'finished' },
    },
    finished: { type: 'final' },
    abandoned: { type: 'final' },
  },
});

export type TakeoverSnapshot = SnapshotFrom<typeof takeoverMachine>;

/** A new takeover, at its first step. */
export function startTakeover(context: TakeoverContext): TakeoverSnapshot {
  return initialTransition(takeoverMachine, context)[0];
}

/** The snapshot a stored record describes. */
export function resumeTakeover(record: TakeoverRecord): TakeoverSnapshot {
  const { step, ...context } = record;
  return takeoverMachine.resolveState({ value: step, context });
}

/** The next snapshot after `event`; an event the step does not accept (a failure past the last attempt) leaves it unchanged. */
export function nextTakeover(snapshot: TakeoverSnapshot, event: TakeoverEvent): TakeoverSnapshot {
  return transition(takeoverMachine, snapshot, event)[0];
}

/** The step a snapshot is at, or undefined once the takeover is over (finished or abandoned). */
export function stepOf(snapshot: TakeoverSnapshot): TakeoverStep | undefined {
  const value = snapshot.value;
  return typeof value === 'string' && value in TakeoverStep ? (value as TakeoverStep) : undefined;
}

/** The record to store for a snapshot that is at a step. */
export function recordOf(snapshot: TakeoverSnapshot): TakeoverRecord {
  const step = stepOf(snapshot);
  if (step === undefined) throw new Error(`takeover of vdisk ${snapshot.context.vdisk} is over (${String(snapshot.value)}); nothing to record`);
  return { step, ...snapshot.context };
}

/** True when a failed step may not be tried again: the coordinator must retarget. */
export function attemptsExhausted(snapshot: TakeoverSnapshot): boolean {
  return snapshot.context.attempts + 1 >= STEP_ATTEMPTS_MAX;
}
