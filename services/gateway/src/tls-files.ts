// The gateway's NBD TLS credentials, read from the directory its settings name
// (nbdTlsDir): QEMU's server-side file names, so one directory serves qemu-nbd too.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NbdTlsCredentials } from './nbd/connection';

export const NBD_TLS_SERVER_FILES = { ca: 'ca-cert.pem', cert: 'server-cert.pem', key: 'server-key.pem' } as const;

/** Reads ca-cert.pem, server-cert.pem and server-key.pem from `dir`; a missing one is named in the error. */
export function readNbdTlsDir(dir: string): NbdTlsCredentials {
  const read = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      throw new Error(`--nbd-tls-dir ${dir}: cannot read ${name} (${(err as Error).message}); the directory holds ${Object.values(NBD_TLS_SERVER_FILES).join(', ')} (strata auth init writes them in nbd-server/)`);
    }
  };
  return { ca: read(NBD_TLS_SERVER_FILES.ca), cert: read(NBD_TLS_SERVER_FILES.cert), key: read(NBD_TLS_SERVER_FILES.key) };
}
