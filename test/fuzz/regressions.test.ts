// Every failure a fuzz target found, kept as a test: each input goes through the same
// check as in the fuzzer, and each names the bug it pins. (The fix and a test of its
// own live with the code: libs/codec/test/codec.test.ts for the codec.)
import { decode, encode } from '@strata/codec';
import { haSetRestartRequest } from '@strata/proto';
import { checkDecode } from './targets/cbor';

describe('fuzz regressions', () => {
  it.each([
    // {ok: 27(["RegExp", "x+", ""])}: cbor-x builds a RegExp from tag 27; the reply
    // envelope's `ok` is typed unknown, so it was accepted, and encoding the value
    // again failed an assertion ("cannot encode a RegExp"). Now INVALID.
    ['reply', 'a1626f6bd81b836652656745787062782b60'],
    // The same hole for a metadata value (md-put-request's `value` is typed unknown): a Date from tag 1.
    ['md-put-request', 'a4636d617065766469736b636b657961316576616c7565c11a00000000687265766973696f6e00'],
    // A whole float64 of 2^64 inside a metadata value: accepted, then encode() made it
    // a BigInt, which cbor-x writes as a tag-2 bignum that decode() refuses (found once
    // the codec refused every tag). encode() now leaves floats of 2^64 and more as floats.
    ['md-put-request', 'a4636d617065766469736b636b65796261316576616c7565a166626c6f636b73a16178fb43f0000000000000687265766973696f6e00'],
  ])('%s: %s decodes to INVALID or a value that survives a round trip', (rule, hex) => {
    checkDecode(Buffer.from(hex, 'hex'), rule);
  });

  // A restart record whose `excluded` host list held 146,213 zeros: zod checked every
  // element (one issue each) before refusing, 0.5 s of CPU per message, and the bounded
  // pass found it slow on a loaded machine. The lists of hosts, nodes and VMs in
  // messages now have a bound, which zod checks first: INVALID at once.
  it('refuses a host list past its bound without looking at each element', () => {
    const record = { vm: 5n, step: 'pending', cause: 'c', reason: 'r', priority: 'high', listedAtMs: 1, attempts: 0, excluded: new Array(146_213).fill(0), haEpoch: 1 };
    const bytes = encode({ vm: 5n, record, revision: 0, haEpoch: 1 });
    expect(() => decode(bytes, haSetRestartRequest)).toThrow(/^record\.excluded: Too big: expected array to have <=1024 items$/);
    checkDecode(bytes, 'ha-set-restart-request');
  });
});
