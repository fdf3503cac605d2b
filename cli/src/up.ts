// `strata up`: a local cluster in the foreground. It starts an embedded nats-server
// (a child process with JetStream, its store under the data directory) unless
// NATS_URL names an existing cluster, then the config replicas as supervised child
// processes, waits for a config leader, prints `ready`, and runs until Ctrl-C or
// SIGTERM, which stops every child it started.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NatsServerProcess, waitForJetStream } from '@strata/natsd';
import { ConfigClient } from '@strata/config-client';
import { NATS_URL_FILE } from './client';
import { Supervisor } from './supervisor';
import { UsageError } from './units';

export interface UpOptions {
  dir: string;
  natsPort: number;
  configReplicas: number;
}

/** Where each actor's entry point is, relative to this file once built (cli/dist). */
function actorScript(actor: string): string {
  return resolve(__dirname, '..', '..', 'services', actor, 'dist', 'main.js');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One `strata up` per data directory: a second would share the NATS store. */
function takeDirLock(dir: string): () => void {
  const file = join(dir, 'up.pid');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new UsageError(`another "strata up" (pid ${pid}) is using ${dir}; stop it first or pass --dir`);
    }
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => rmSync(file, { force: true });
}

export async function up(options: UpOptions, say: (line: string) => void): Promise<void> {
  const dir = resolve(options.dir);
  if (!(options.configReplicas >= 1 && options.configReplicas <= 7)) throw new UsageError('--config-replicas must be between 1 and 7');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const releaseLock = takeDirLock(dir);

  let nats: NatsServerProcess | undefined;
  const existing = process.env.NATS_URL;
  let url: string;
  if (existing !== undefined && existing !== '') {
    url = existing;
    say(`using the NATS cluster at ${url} (NATS_URL)`);
  } else {
    nats = new NatsServerProcess({ name: 'strata-embedded', port: options.natsPort, dir: join(dir, 'nats') });
    say(`starting nats-server on 127.0.0.1:${options.natsPort} (data in ${join(dir, 'nats')})`);
    await nats.start();
    url = nats.url;
  }
  await waitForJetStream(url);
  writeFileSync(join(dir, NATS_URL_FILE), `${url}\n`);

  const supervisor = new Supervisor(join(dir, 'logs'), say);
  for (let i = 1; i <= options.configReplicas; i++) {
    supervisor.add({ name: `config-${i}`, command: process.execPath, args: [actorScript('config'), '--replica', `config-${i}`], env: { NATS_URL: url } });
  }

  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      say(`stopping (${why})`);
      await supervisor.stop();
      await nats?.stop();
      releaseLock();
      say('stopped');
    })());
  process.on('SIGINT', () => void stop('SIGINT').then(() => process.exit(0)));
  process.on('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));
  nats
    ?.exited()
    .then(() => {
      if (stopping === undefined) {
        say('nats-server exited unexpectedly; stopping');
        void stop('nats-server exited').then(() => process.exit(1));
      }
    })
    .catch(() => undefined);

  try {
    const client = await ConfigClient.connect(url, 30_000);
    try {
      const status = await client.status();
      say(`config leader: ${status.leader} (epoch ${status.epoch})`);
    } finally {
      await client.close();
    }
  } catch (err) {
    await stop('start-up failed');
    throw err;
  }
  say('ready');
  say(`NATS_URL=${url}`);
  say(`data and logs: ${dir}`);
  say('try: ./strata status; ./strata node ls; ./strata vdisk ls   (Ctrl-C stops the cluster)');
  // Keep running until a signal arrives.
  await new Promise<never>(() => undefined);
}
