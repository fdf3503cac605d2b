// The CLI's connection to a cluster: where it is (NATS_URL, else the nats.url file
// that `strata up` wrote in its data directory, else the local default) and typed
// calls to the config service.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { connectBus, type Bus } from '@strata/bus';
import {
  CfgOp,
  cfgObjectWithRevision,
  deleteReply,
  listReply,
  statusReply,
  subjects,
  type CfgObjectWithRevision,
  type GetRequest,
  type Kind,
  type ObjectOf,
  type StatusReply,
} from '@strata/proto';

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

export class ConfigClient {
  private constructor(
    private readonly bus: Bus,
    private readonly timeoutMs: number,
  ) {}

  static async connect(url: string, timeoutMs = 10_000): Promise<ConfigClient> {
    try {
      return new ConfigClient(await connectBus({ name: 'strata-cli', servers: url }), timeoutMs);
    } catch (err) {
      throw new Error(`cannot reach NATS at ${url} (${(err as Error).message}); is a cluster running? Start one with "strata up" or set NATS_URL`);
    }
  }

  private call<S extends z.ZodType>(op: CfgOp, request: unknown, reply: S, retry: boolean): Promise<z.output<S>> {
    return this.bus.request(subjects.cfg(op), request, reply, { timeoutMs: this.timeoutMs, retry });
  }

  /** The spec is sent as the operator typed it; the config service checks it and names the field. */
  create(request: { kind: Kind; name: string; spec: Record<string, unknown> }): Promise<CfgObjectWithRevision> {
    return this.call(CfgOp.create, request, cfgObjectWithRevision, false);
  }

  get(request: GetRequest): Promise<CfgObjectWithRevision> {
    return this.call(CfgOp.get, request, cfgObjectWithRevision, true);
  }

  async list<K extends Kind>(kind: K): Promise<ObjectOf<K>[]> {
    const { objects } = await this.call(CfgOp.list, { kind }, listReply, true);
    return objects.filter((o): o is ObjectOf<K> => o.kind === kind);
  }

  async delete(kind: Kind, name: string): Promise<CfgObjectWithRevision> {
    return (await this.call(CfgOp.delete, { kind, name }, deleteReply, false)).deleted;
  }

  status(): Promise<StatusReply> {
    return this.call(CfgOp.status, {}, statusReply, true);
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}
