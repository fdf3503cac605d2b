import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { KEPT_CHANGING_HINT, modifyRecord, type CasRecord, type Versioned } from '../src/modify';

/** An in-memory record with compare-and-set, and a rival writer that strikes before some of our writes. */
function record(initial: Versioned<number> | null, rivalWritesBefore: number[] = []): CasRecord<number> & { current: Versioned<number> | null; writes: number; conflicts: number } {
  let writeCalls = 0;
  const r = {
    what: 'counter',
    current: initial,
    writes: 0,
    conflicts: 0,
    read: () => Promise.resolve(r.current),
    write(value: number, revision: number): Promise<number> {
      writeCalls++;
      if (rivalWritesBefore.includes(writeCalls)) r.current = { value: (r.current?.value ?? 0) + 100, revision: (r.current?.revision ?? 0) + 1 };
      if ((r.current?.revision ?? 0) !== revision) return Promise.reject(new StrataError(ErrorCode.CONFLICT, 'changed'));
      r.writes++;
      r.current = { value, revision: revision + 1 };
      return Promise.resolve(r.current.revision);
    },
    afterConflict() {
      r.conflicts++;
    },
  };
  return r;
}

describe('modifyRecord', () => {
  it('creates an absent record at revision 0 and reports before and after', async () => {
    const r = record(null);
    const out = await modifyRecord(r, (c) => (c === null ? 1 : c.value + 1), 3);
    expect(out).toEqual({ before: null, after: { value: 1, revision: 1 }, written: true });
  });

  it('leaves the record alone when the change returns undefined', async () => {
    const r = record({ value: 5, revision: 7 });
    const out = await modifyRecord(r, () => undefined, 3);
    expect(out).toEqual({ before: { value: 5, revision: 7 }, after: { value: 5, revision: 7 }, written: false });
    expect(r.writes).toBe(0);
  });

  it('applies the change again on the record a rival left, after a lost compare-and-set', async () => {
    const r = record({ value: 1, revision: 1 }, [1]);
    const out = await modifyRecord(r, (c) => (c?.value ?? 0) + 1, 3);
    // The rival's +100 is kept: our +1 went on top of it.
    expect(out.after).toEqual({ value: 102, revision: 3 });
    expect(r.conflicts).toBe(1);
  });

  it('fails UNAVAILABLE, naming the record, when every attempt loses', async () => {
    const r = record({ value: 1, revision: 1 }, [1, 2, 3]);
    const err = await modifyRecord(r, (c) => (c?.value ?? 0) + 1, 3).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
    expect((err as Error).message).toMatch(/counter kept changing: 3 compare-and-set attempts/);
    expect((err as StrataError).hint).toBe(KEPT_CHANGING_HINT);
    expect(r.writes).toBe(0);
  });

  it('passes any other error through at once', async () => {
    const r = record({ value: 1, revision: 1 });
    r.write = () => Promise.reject(new StrataError(ErrorCode.TIMEOUT, 'no answer'));
    await expect(modifyRecord(r, () => 2, 3)).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    expect(r.conflicts).toBe(0);
  });

  it('passes a refusal thrown by the change through, and refuses a bad attempt count', async () => {
    const r = record(null);
    await expect(modifyRecord(r, () => { throw new StrataError(ErrorCode.NOT_FOUND, 'nothing to change'); }, 3)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    await expect(modifyRecord(r, () => 1, 0)).rejects.toThrow(RangeError);
  });
});
