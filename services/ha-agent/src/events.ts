// HA decisions as cluster events (strata.events.ha), each with its reason. Events
// are written best effort: a decision is not undone because its event could not be
// stored (the agent may be cut off from JetStream: that is when HA acts most), and
// the failure is logged.
import type { EventLog } from '@strata/events';
import type { Logger } from '@strata/log';
import { HaService, type EventType } from '@strata/proto';

export interface HaEventFields {
  vm?: { id: bigint; name: string };
  host?: string;
  haEpoch?: number;
  powerOnEpoch?: number;
}

export class HaEvents {
  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
  ) {}

  async emit(type: EventType, cause: HaService, fields: HaEventFields, message: string): Promise<void> {
    const { vm, ...rest } = fields;
    const event = {
      type,
      atMs: Date.now(),
      epoch: 0,
      ...(vm === undefined ? {} : { kind: 'vm', id: vm.id, name: vm.name }),
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      cause,
      message,
    };
    this.logger.info({ event: type, vm: vm?.name, host: fields.host }, message);
    try {
      await this.log.append(event);
    } catch (err) {
      this.logger.warn({ err, event: type }, 'could not record an HA event');
    }
  }

  /** The same, from the master. */
  master(type: EventType, fields: HaEventFields, message: string): Promise<void> {
    return this.emit(type, HaService.master, fields, message);
  }

  /** The same, from a host's agent. */
  agent(type: EventType, fields: HaEventFields, message: string): Promise<void> {
    return this.emit(type, HaService.agent, fields, message);
  }
}
