// A typed client of the configuration service, for the CLI, the tests and the
// actors: each call is a request to `strata.cfg.<op>` with a deadline; reads are
// retried on retryable errors, writes are not (a timed-out write may have applied).
import type { z } from 'zod';
import { connectBus, type Bus, type ClientSecurity } from '@strata/bus';
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

export class ConfigClient {
  constructor(
    private readonly bus: Bus,
    private readonly timeoutMs = 10_000,
    private readonly ownsBus = false,
  ) {}

  /** Connects to `url` as `security` (default: the credentials in the environment). */
  static async connect(url: string, timeoutMs = 10_000, security?: ClientSecurity): Promise<ConfigClient> {
    try {
      return new ConfigClient(await connectBus({ name: 'strata-config-client', servers: url, ...(security === undefined ? {} : { security }) }), timeoutMs, true);
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

  /** Replaces an object's spec; with `revision`, only if it is still at that revision. */
  update(request: { kind: Kind; id?: bigint; name?: string; spec: Record<string, unknown>; revision?: number }): Promise<CfgObjectWithRevision> {
    return this.call(CfgOp.update, request, cfgObjectWithRevision, false);
  }

  async list<K extends Kind>(kind: K): Promise<ObjectOf<K>[]> {
    const { objects } = await this.call(CfgOp.list, { kind }, listReply, true);
    return objects.filter((o): o is ObjectOf<K> => o.kind === kind);
  }

  /** Deletes an object; with `revision`, only if it is still at that revision (CONFLICT otherwise). */
  async delete(kind: Kind, name: string, revision?: number): Promise<CfgObjectWithRevision> {
    return (await this.call(CfgOp.delete, { kind, name, ...(revision === undefined ? {} : { revision }) }, deleteReply, false)).deleted;
  }

  status(): Promise<StatusReply> {
    return this.call(CfgOp.status, {}, statusReply, true);
  }

  /** Closes the connection if this client opened it. */
  async close(): Promise<void> {
    if (this.ownsBus) await this.bus.close();
  }
}
