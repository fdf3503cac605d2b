// The ownership record's rules: each decision on the record as it is, whoever runs it.
import fc from 'fast-check';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { VdiskOwnership } from '@strata/proto';
import { attach, claim, claimRecord, handOver, notOwner, serves, takeOver } from '../src';

const record = (owner: string, epoch: number, volunteers: string[] = [owner]): VdiskOwnership => ({ owner, epoch, volunteers, drained: 7, generation: 2 });

describe('claim and attach', () => {
  it('claims a vDisk nobody owns at epoch 1, the claimer its first volunteer', () => {
    expect(claim(null, 'n1')).toEqual({ owner: 'n1', epoch: 1, volunteers: ['n1'], drained: 0, generation: 0 });
    expect(attach(null, 'n1')).toEqual(claimRecord('n1'));
  });

  it('leaves an owned vDisk to its owner; an attach adds the node to the volunteers once', () => {
    const r = record('n1', 4);
    expect(claim(r, 'n2')).toBeUndefined();
    expect(attach(r, 'n2')).toEqual({ ...r, volunteers: ['n1', 'n2'] });
    expect(attach({ ...r, volunteers: ['n1', 'n2'] }, 'n2')).toBeUndefined();
  });
});

describe('handOver', () => {
  it('gives the vDisk to `to` at the next epoch, keeping drained and generation, `to` a volunteer', () => {
    expect(handOver(record('n1', 4), 9n, 'n1', 'n2')).toEqual({ owner: 'n2', epoch: 5, volunteers: ['n1', 'n2'], drained: 7, generation: 2 });
    expect(handOver(record('n1', 4, ['n2', 'n1']), 9n, 'n1', 'n2')?.volunteers).toEqual(['n2', 'n1']);
  });

  it('changes nothing when the node no longer owns it, and refuses a vDisk with no record', () => {
    expect(handOver(record('n3', 5), 9n, 'n1', 'n2')).toBeUndefined();
    let err: unknown;
    try {
      handOver(null, 9n, 'n1', 'n2');
    } catch (e) {
      err = e;
    }
    expect(isStrataError(err, ErrorCode.NOT_FOUND)).toBe(true);
  });
});

describe('takeOver', () => {
  it('writes `to` at the new epoch over an older one; done when so already; superseded by a newer move or no record', () => {
    expect(takeOver(record('n1', 4), 'n2', 5)).toEqual({ kind: 'write', next: { ...record('n1', 4), owner: 'n2', epoch: 5 } });
    expect(takeOver(record('n2', 5), 'n2', 5)).toEqual({ kind: 'done' });
    expect(takeOver(record('n3', 5), 'n2', 5)).toEqual({ kind: 'superseded' });
    expect(takeOver(record('n3', 6), 'n2', 5)).toEqual({ kind: 'superseded' });
    expect(takeOver(null, 'n2', 5)).toEqual({ kind: 'superseded' });
  });

  it('never lowers the epoch, whatever the record', () => {
    fc.assert(
      fc.property(fc.constantFrom('n1', 'n2', 'n3'), fc.integer({ min: 1, max: 20 }), fc.constantFrom('n1', 'n2', 'n3'), fc.integer({ min: 1, max: 20 }), (owner, epoch, to, next) => {
        const d = takeOver(record(owner, epoch), to, next);
        if (d.kind === 'write') expect(d.next.epoch).toBeGreaterThan(epoch);
        const h = handOver(record(owner, epoch), 1n, owner, to);
        expect(h?.epoch).toBe(epoch + 1);
      }),
    );
  });
});

describe('serves and notOwner', () => {
  it('serves the owner, at its epoch when one is given', () => {
    expect(serves(record('n1', 4), 'n1')).toBe(true);
    expect(serves(record('n1', 4), 'n1', 4)).toBe(true);
    expect(serves(record('n1', 4), 'n1', 3)).toBe(false);
    expect(serves(record('n1', 4), 'n2')).toBe(false);
    expect(serves(null, 'n1')).toBe(false);
    expect(serves(undefined, 'n1')).toBe(false);
  });

  it('refuses NOT_OWNER with the owner as hint when known', () => {
    const known = notOwner('n2', 9n, 'n1');
    expect(known.code).toBe(ErrorCode.NOT_OWNER);
    expect(known.message).toBe('node n2 does not own vdisk 9; n1 does');
    expect(known.hint).toBe('n1');
    expect(notOwner('n2', 9n, undefined).hint).toBeUndefined();
  });
});
