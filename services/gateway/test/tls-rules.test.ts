// The FORCEDTLS rules of option haggling (the NBD spec's "TLS support"), case by case.
import { NbdOpt, NbdRep } from '../src/nbd/protocol';
import { gateOption } from '../src/nbd/tls-rules';

const plain = { configured: false, secured: false };
const forced = { configured: true, secured: false };
const secured = { configured: true, secured: true };

describe('gateOption', () => {
  test('without TLS configured every option is handled as usual, and STARTTLS is refused by policy', () => {
    for (const option of [NbdOpt.EXPORT_NAME, NbdOpt.ABORT, NbdOpt.LIST, NbdOpt.INFO, NbdOpt.GO, NbdOpt.STRUCTURED_REPLY, 4242]) expect(gateOption(option, 0, plain)).toEqual({ action: 'handle' });
    expect(gateOption(NbdOpt.STARTTLS, 0, plain)).toMatchObject({ action: 'refuse', reply: NbdRep.ERR_POLICY });
  });

  test('FORCEDTLS before STARTTLS: every option is ERR_TLS_REQD except ABORT, and EXPORT_NAME closes', () => {
    for (const option of [NbdOpt.LIST, NbdOpt.INFO, NbdOpt.GO, NbdOpt.STRUCTURED_REPLY, NbdOpt.PEEK_EXPORT, 4242]) expect(gateOption(option, 6, forced)).toMatchObject({ action: 'refuse', reply: NbdRep.ERR_TLS_REQD });
    expect(gateOption(NbdOpt.ABORT, 0, forced)).toEqual({ action: 'handle' });
    expect(gateOption(NbdOpt.EXPORT_NAME, 3, forced)).toMatchObject({ action: 'close', reason: expect.stringMatching(/requires TLS/) as unknown });
  });

  test('STARTTLS upgrades once: with data it is ERR_INVALID, and a second one is ERR_INVALID', () => {
    expect(gateOption(NbdOpt.STARTTLS, 0, forced)).toEqual({ action: 'starttls' });
    expect(gateOption(NbdOpt.STARTTLS, 1, forced)).toMatchObject({ action: 'refuse', reply: NbdRep.ERR_INVALID });
    expect(gateOption(NbdOpt.STARTTLS, 0, secured)).toMatchObject({ action: 'refuse', reply: NbdRep.ERR_INVALID, message: 'TLS is already negotiated' });
  });

  test('after STARTTLS every other option is handled as usual', () => {
    for (const option of [NbdOpt.EXPORT_NAME, NbdOpt.ABORT, NbdOpt.LIST, NbdOpt.INFO, NbdOpt.GO, 4242]) expect(gateOption(option, 0, secured)).toEqual({ action: 'handle' });
  });
});
