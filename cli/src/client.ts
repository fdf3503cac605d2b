// Where the CLI finds a cluster: NATS_URL, else the nats.url file that `strata up`
// wrote in its data directory, else the local default.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_DIR = '.strata';
export const NATS_URL_FILE = 'nats.url';

/** Where the cluster is: NATS_URL, else `<dir>/nats.url`, else nats://127.0.0.1:4222. */
export function clusterUrl(dir: string): string {
  const fromEnv = process.env.NATS_URL;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const file = join(dir, NATS_URL_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  return 'nats://127.0.0.1:4222';
}

