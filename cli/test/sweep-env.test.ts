// STRATA_CREATING_TIMEOUT_MS for `strata vdisk sweep`: the default, a value, and bad input refused with its name.
import { CREATING_TIMEOUT_MS_DEFAULT } from '@strata/sweep';
import { creatingTimeoutFrom } from '../src/sweep-env';

describe('creatingTimeoutFrom', () => {
  it('reads STRATA_CREATING_TIMEOUT_MS, defaults when unset or empty, and refuses what is not a positive whole number', () => {
    expect(creatingTimeoutFrom({})).toBe(CREATING_TIMEOUT_MS_DEFAULT);
    expect(creatingTimeoutFrom({ STRATA_CREATING_TIMEOUT_MS: '' })).toBe(CREATING_TIMEOUT_MS_DEFAULT);
    expect(creatingTimeoutFrom({ STRATA_CREATING_TIMEOUT_MS: '2000' })).toBe(2000);
    for (const bad of ['0', '-5', '1.5', 'soon']) expect(() => creatingTimeoutFrom({ STRATA_CREATING_TIMEOUT_MS: bad })).toThrow(/^STRATA_CREATING_TIMEOUT_MS: ".*" is not a positive whole number/);
  });
});
