// The whole suite runs with TLS and authentication on the bus, as a real cluster
// does: every nats-server the harness starts takes TLS connections only, verified
// against one CA made for this test process, and users with passwords; `strata up`
// clusters give each process its own user with its role's permissions (PROTOCOL.md
// section 14). The test process and the actors the harness starts directly connect
// as `admin`: the harness sets STRATA_NATS_USER, STRATA_NATS_PASSWORD and
// STRATA_NATS_CA before every test file (after-file.ts), which every client of the
// libraries reads, and children inherit.
//
// STRATA_TEST_INSECURE=1 runs the suite on plain, anonymous servers instead. A test
// that starts servers of its own without TLS (the network-namespace hosts) calls
// plainBus() first; the next file gets the credentials again.
import { existsSync, mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from '@nats-io/transport-node';
import { NATS_CA_ENV, NATS_PASSWORD_ENV, NATS_USER_ENV, authorizationBlock, clientSecurityFromEnv, ensurePasswords, ensureTlsFiles, securityEnv, securityOptions, type ClientSecurity, type TlsFiles } from '@strata/natsd';

export const ADMIN = 'admin';

export interface SuiteSecurity {
  tls: TlsFiles;
  /** How the test process and directly started actors connect. */
  admin: ClientSecurity;
  /** The servers' users block: the admin alone. */
  authorization: string;
}

export const suiteIsSecure = process.env.STRATA_TEST_INSECURE !== '1';

const dir = join(tmpdir(), `strata-suite-auth-${process.pid}`);
const CLEANUP = Symbol.for('strata.suite-security.cleanup');

/** The suite's CA, server certificate and admin password, made once per test process (undefined when insecure). */
export function suiteSecurity(): SuiteSecurity | undefined {
  if (!suiteIsSecure) return undefined;
  const tls = ensureTlsFiles(dir);
  const password = ensurePasswords(join(dir, 'passwords.json'), [ADMIN])[ADMIN]!;
  const registry = globalThis as unknown as Record<symbol, boolean>;
  if (registry[CLEANUP] !== true) {
    registry[CLEANUP] = true;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return { tls, admin: { user: ADMIN, password, caFile: tls.caFile }, authorization: authorizationBlock([{ user: ADMIN, password, grant: 'all' }]) };
}

/** What a nats-server the harness starts takes: the suite's TLS and admin (empty when the suite runs insecure). */
export function suiteServerOptions(): { tls?: TlsFiles; authorization?: string; probe?: ClientSecurity } {
  const suite = suiteSecurity();
  return suite === undefined ? {} : { tls: suite.tls, authorization: suite.authorization, probe: suite.admin };
}

/** Sets the admin's credentials in this process's environment (before each test file). */
export function applySuiteSecurity(): void {
  const security = suiteSecurity();
  if (security === undefined) return;
  Object.assign(process.env, securityEnv(security.admin));
}

/** For a test file on servers of its own without TLS: this process and its children connect plainly. */
export function plainBus(): void {
  for (const name of [NATS_USER_ENV, NATS_PASSWORD_ENV, NATS_CA_ENV]) delete process.env[name];
}

/** The environment that makes a child connect plainly even while the suite's credentials are set. */
export const PLAIN_ENV: Record<string, string> = { [NATS_USER_ENV]: '', [NATS_PASSWORD_ENV]: '', [NATS_CA_ENV]: '' };

/**
 * Seeds `strata up`'s auth directory (<dataDir>/auth, see cli/src/local-auth.ts) with
 * the suite's certificates and admin password, so the clients of the test process
 * reach the cluster as its admin; `strata up` adds a user per process.
 */
export function seedUpAuth(dataDir: string): ClientSecurity | undefined {
  const security = suiteSecurity();
  if (security === undefined) return undefined;
  const auth = join(dataDir, 'auth');
  mkdirSync(auth, { recursive: true, mode: 0o700 });
  for (const name of ['ca.pem', 'server.pem', 'server-key.pem']) if (!existsSync(join(auth, name))) copyFileSync(join(dir, name), join(auth, name));
  if (!existsSync(join(auth, 'passwords.json'))) writeFileSync(join(auth, 'passwords.json'), JSON.stringify({ [ADMIN]: security.admin.password }, null, 2) + '\n', { mode: 0o600 });
  return { ...security.admin, caFile: join(auth, 'ca.pem') };
}

/** nats.js connection options with the credentials in this process's environment (the suite's, or none). */
export function envSecurityOptions(): Partial<ConnectionOptions> {
  return securityOptions(clientSecurityFromEnv(process.env));
}
