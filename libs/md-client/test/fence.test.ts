// The fencing rule of metadata writes: a write fenced below the vDisk's current epoch
// (the higher of its ownership record's and the highest accepted) is FENCED, with a
// message naming the vDisk and both epochs; an accepted epoch is remembered only while
// the record has not reached it, and the memory is bounded.
import { ErrorCode } from '@strata/errors';
import { MdFenceCheck, fenceRefusal } from '@strata/md-client';

describe('fenceRefusal', () => {
  it('refuses an epoch below the current one, naming the vDisk and both epochs', () => {
    const err = fenceRefusal({ vdisk: 12349n, epoch: 2 }, 3);
    expect(err?.code).toBe(ErrorCode.FENCED);
    expect(err?.retryable).toBe(false);
    expect(err?.message).toMatch(/vdisk 12349\b.*epoch 2\b.*epoch is 3\b/);
  });

  it('lets the current epoch, a newer one, and a vDisk with no epoch through', () => {
    expect(fenceRefusal({ vdisk: 1n, epoch: 3 }, 3)).toBeUndefined();
    expect(fenceRefusal({ vdisk: 1n, epoch: 4 }, 3)).toBeUndefined();
    expect(fenceRefusal({ vdisk: 1n, epoch: 0 }, undefined)).toBeUndefined();
  });
});

describe('MdFenceCheck', () => {
  function setup(acceptedMax?: number) {
    const owned = new Map<bigint, number>();
    const check = new MdFenceCheck((vdisk) => owned.get(vdisk), acceptedMax);
    const own = (vdisk: bigint, epoch: number | undefined): void => {
      if (epoch === undefined) owned.delete(vdisk);
      else owned.set(vdisk, epoch);
      check.ownershipChanged(vdisk, epoch);
    };
    const admits = (vdisk: bigint, epoch: number): boolean => {
      try {
        check.admit({ vdisk, epoch });
        return true;
      } catch (err) {
        expect(err).toMatchObject({ code: ErrorCode.FENCED });
        return false;
      }
    };
    return { check, own, admits };
  }

  it('checks against the ownership record: below it FENCED, at or above it accepted', () => {
    const { own, admits } = setup();
    own(7n, 3);
    expect(admits(7n, 2)).toBe(false);
    expect(admits(7n, 3)).toBe(true);
    // Another vDisk's epoch is its own business.
    own(8n, 1);
    expect(admits(8n, 1)).toBe(true);
    expect(admits(9n, 0)).toBe(true);
  });

  it('fences an older epoch once a newer one was accepted, before the record reaches it', () => {
    const { check, own, admits } = setup();
    own(7n, 3);
    expect(admits(7n, 4)).toBe(true);
    expect(check.currentEpoch(7n)).toBe(4);
    expect(admits(7n, 3)).toBe(false);
    expect(admits(7n, 4)).toBe(true);
    // No record at all: the accepted epoch alone fences.
    expect(admits(9n, 2)).toBe(true);
    expect(admits(9n, 1)).toBe(false);
  });

  it('forgets an accepted epoch once the record reaches it, or is deleted, and not before', () => {
    const { check, own, admits } = setup();
    own(7n, 3);
    admits(7n, 5);
    own(7n, 4);
    expect(check.acceptedAhead).toBe(1);
    expect(admits(7n, 4)).toBe(false);
    own(7n, 5);
    expect(check.acceptedAhead).toBe(0);
    expect(admits(7n, 4)).toBe(false);
    // An epoch the record already holds is not remembered at all.
    admits(7n, 5);
    expect(check.acceptedAhead).toBe(0);
    admits(8n, 2);
    own(8n, undefined);
    expect(check.acceptedAhead).toBe(0);
    expect(admits(8n, 1)).toBe(true);
  });

  it('remembers at most acceptedMax vDisks, dropping the least recently accepted', () => {
    const { check, admits } = setup(2);
    admits(1n, 5);
    admits(2n, 5);
    admits(1n, 6);
    admits(3n, 5);
    expect(check.acceptedAhead).toBe(2);
    expect(check.currentEpoch(2n)).toBeUndefined();
    expect(check.currentEpoch(1n)).toBe(6);
    expect(check.currentEpoch(3n)).toBe(5);
  });
});
