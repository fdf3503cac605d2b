// The lifecycle of one vDisk served by this node's controller, as a state machine
// (like the config leader's takeover machine, services/config/src/takeover-machine.ts):
//
//   opening   → `own` names this node: the epoch it serves at is known
//   replaying → the undrained oplog tail is read whole and applied to the index
//   marking   → the takeover marker is appended: any earlier writer is fenced
//   serving   → I/O is served, drain runs
//   leaving   → a relinquish: no new I/O; the requests being served end, then `own`
//               names the node the vDisk goes to
//   closed    → not served here (never opened, handed over, fenced, or dropped);
//               the next request opens it again from `own` and the oplog
//
// The machine is pure: the controller runs each step's effect and feeds the outcome
// back as an event. An event a state does not accept leaves the snapshot as it was.
import { assign, initialTransition, setup, transition, type SnapshotFrom } from 'xstate';

export const LifecycleState = {
  opening: 'opening',
  replaying: 'replaying',
  marking: 'marking',
  serving: 'serving',
  leaving: 'leaving',
  closed: 'closed',
} as const;
export type LifecycleState = (typeof LifecycleState)[keyof typeof LifecycleState];

export interface LifecycleContext {
  vdisk: bigint;
  /** The ownership epoch it is served at (0 until `owned`). */
  epoch: number;
  /** Oplog entries applied by the replay. */
  replayed: number;
  /** The node a relinquish hands it to. */
  to?: string;
  /** Why it closed. */
  reason?: string;
}

export type LifecycleEvent =
  /** `own` names this node at `epoch`. */
  | { type: 'owned'; epoch: number }
  /** The tail is applied: `replayed` entries. */
  | { type: 'replayed'; replayed: number }
  /** The takeover marker is stored. */
  | { type: 'marked' }
  /** Another node handles it from now on: it owns the vDisk, or its newer epoch refused something of ours. */
  | { type: 'fenced'; reason: string }
  /** A step failed (the oplog unreadable, an append's outcome unknown): closed, and opened again by the next request. */
  | { type: 'failed'; reason: string }
  /** Its VM moved to `to`: stop admitting I/O and hand it over. */
  | { type: 'relinquish'; to: string }
  /** `own` names the node it went to (or someone else got there first). */
  | { type: 'handedOver' }
  /** Stopped serving everything (the node's heartbeat lapsed, or the controller stops). */
  | { type: 'drop'; reason: string };

export const lifecycleMachine = setup({
  types: { context: {} as LifecycleContext, events: {} as LifecycleEvent, input: {} as { vdisk: bigint } },
  actions: {
    close: assign(({ event }) => ('reason' in event ? { reason: event.reason } : {})),
  },
}).createMachine({
  id: 'vdisk',
  context: ({ input }) => ({ vdisk: input.vdisk, epoch: 0, replayed: 0 }),
  initial: LifecycleState.opening,
  // Whatever it is doing, a node that stops serving everything closes it.
  on: { drop: { target: `.${LifecycleState.closed}`, actions: 'close' } },
  states: {
    [LifecycleState.opening]: {
      on: {
        owned: { target: LifecycleState.replaying, actions: assign({ epoch: ({ event }) => event.epoch }) },
        fenced: { target: LifecycleState.closed, actions: 'close' },
        failed: { target: LifecycleState.closed, actions: 'close' },
      },
    },
    [LifecycleState.replaying]: {
      on: {
        replayed: { target: LifecycleState.marking, actions: assign({ replayed: ({ event }) => event.replayed }) },
        failed: { target: LifecycleState.closed, actions: 'close' },
      },
    },
    [LifecycleState.marking]: {
      on: {
        marked: LifecycleState.serving,
        fenced: { target: LifecycleState.closed, actions: 'close' },
        failed: { target: LifecycleState.closed, actions: 'close' },
      },
    },
    [LifecycleState.serving]: {
      on: {
        relinquish: { target: LifecycleState.leaving, actions: assign({ to: ({ event }) => event.to }) },
        fenced: { target: LifecycleState.closed, actions: 'close' },
        failed: { target: LifecycleState.closed, actions: 'close' },
      },
    },
    [LifecycleState.leaving]: {
      on: {
        handedOver: { target: LifecycleState.closed, actions: assign({ reason: ({ context }) => `handed over to ${context.to}` }) },
        failed: { target: LifecycleState.closed, actions: 'close' },
      },
    },
    [LifecycleState.closed]: { type: 'final' },
  },
});

export type LifecycleSnapshot = SnapshotFrom<typeof lifecycleMachine>;

/** A vDisk about to be opened. */
export function startLifecycle(vdisk: bigint): LifecycleSnapshot {
  return initialTransition(lifecycleMachine, { vdisk })[0];
}

/** The next snapshot after `event` (unchanged when the state does not accept it). */
export function nextLifecycle(snapshot: LifecycleSnapshot, event: LifecycleEvent): LifecycleSnapshot {
  return transition(lifecycleMachine, snapshot, event)[0];
}

/** The state a snapshot is in. */
export function stateOf(snapshot: LifecycleSnapshot): LifecycleState {
  return snapshot.value as LifecycleState;
}
