// The sweep's setting from the environment for `strata vdisk sweep`, read as the curator reads it.
import { CREATING_TIMEOUT_MS_DEFAULT } from '@strata/sweep';
import { UsageError } from './units';

/** STRATA_CREATING_TIMEOUT_MS: when a snapshot or clone still being made counts as interrupted (and is swept). */
export function creatingTimeoutFrom(env: Record<string, string | undefined>): number {
  const text = env.STRATA_CREATING_TIMEOUT_MS;
  if (text === undefined || text === '') return CREATING_TIMEOUT_MS_DEFAULT;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < 1) throw new UsageError(`STRATA_CREATING_TIMEOUT_MS: "${text}" is not a positive whole number of milliseconds`);
  return ms;
}
