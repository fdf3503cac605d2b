// The bounded store of traced writes that drain links to: kept in oplog order up to
// its bound, handed out by sequence, forgotten once drained, and honest about writes
// it could not keep (the drain that covers them says its links are incomplete).
import { WriteLinks } from '../src/block-index';

describe('write links', () => {
  it('hands out the writes at or below a sequence and forgets them once drained', () => {
    const links = new WriteLinks<string>(8);
    links.record(1, ['a']);
    links.record(2, ['b', 'c']);
    links.record(4, ['d']);
    expect(links.upTo(0)).toEqual({ contexts: [], incomplete: false });
    expect(links.upTo(2)).toEqual({ contexts: ['a', 'b', 'c'], incomplete: false });
    // Asking is not forgetting: a failed drain asks again.
    expect(links.upTo(3).contexts).toEqual(['a', 'b', 'c']);
    links.dropUpTo(2);
    expect(links.size).toBe(1);
    expect(links.upTo(9)).toEqual({ contexts: ['d'], incomplete: false });
  });

  it('keeps at most its bound, and marks the drains that cover writes it did not keep', () => {
    const links = new WriteLinks<string>(2);
    links.record(1, ['a']);
    links.record(2, ['b', 'x']); // x: full
    links.record(3, ['y']); // full
    expect(links.size).toBe(2);
    expect(links.upTo(1)).toEqual({ contexts: ['a'], incomplete: false });
    expect(links.upTo(2)).toEqual({ contexts: ['a', 'b'], incomplete: true });
    // A drain up to 2 leaves y (at 3) unlinked; it may still be covered later.
    links.dropUpTo(2);
    links.record(4, ['c']);
    expect(links.upTo(3)).toEqual({ contexts: [], incomplete: true });
    expect(links.upTo(4)).toEqual({ contexts: ['c'], incomplete: true });
    links.dropUpTo(4);
    links.record(5, ['e']);
    expect(links.upTo(5)).toEqual({ contexts: ['e'], incomplete: false });
  });
});
