// How a process proves who it is to NATS and checks the server: a user and password
// (its role's, see permissions.ts) and the CA that signed the servers' certificates.
// Every process reads them from its environment, so `strata up` hands each child its
// own and an operator sets them in the role's env file (infra/env).
import type { ConnectionOptions } from '@nats-io/transport-node';

export const NATS_USER_ENV = 'STRATA_NATS_USER';
export const NATS_PASSWORD_ENV = 'STRATA_NATS_PASSWORD';
/** A PEM file of the CA the servers' certificates chain to; set, every connection uses TLS. */
export const NATS_CA_ENV = 'STRATA_NATS_CA';

export interface ClientSecurity {
  user?: string;
  password?: string;
  caFile?: string;
}

/** The security settings in `env`; a user without a password (or the reverse) is an error that says what to set. */
export function clientSecurityFromEnv(env: Record<string, string | undefined>): ClientSecurity {
  const user = nonEmpty(env[NATS_USER_ENV]);
  const password = nonEmpty(env[NATS_PASSWORD_ENV]);
  const caFile = nonEmpty(env[NATS_CA_ENV]);
  if ((user === undefined) !== (password === undefined)) {
    throw new Error(`${NATS_USER_ENV} and ${NATS_PASSWORD_ENV} go together: set both or neither`);
  }
  return { ...(user === undefined ? {} : { user, password }), ...(caFile === undefined ? {} : { caFile }) };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** The environment that gives a child `security` (what clientSecurityFromEnv reads back). */
export function securityEnv(security: ClientSecurity): Record<string, string> {
  return {
    ...(security.user === undefined ? {} : { [NATS_USER_ENV]: security.user, [NATS_PASSWORD_ENV]: security.password ?? '' }),
    ...(security.caFile === undefined ? {} : { [NATS_CA_ENV]: security.caFile }),
  };
}

/** The nats.js connection options for `security`: credentials, and TLS verified against the CA. */
export function securityOptions(security: ClientSecurity): Partial<ConnectionOptions> {
  return {
    ...(security.user === undefined ? {} : { user: security.user, pass: security.password }),
    ...(security.caFile === undefined ? {} : { tls: { caFile: security.caFile } }),
  };
}
