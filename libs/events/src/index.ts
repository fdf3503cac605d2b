// Cluster events go to the EVENTS stream (subjects strata.events.<category>), kept
// for operators, the console and anyone watching.
import { jetstream, RetentionPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { encode } from '@strata/codec';
import { defaultReplicas, ensureStream, whileUndelivered } from '@strata/kv';
import { EventCategory, EventType, streams, subjects, type ClusterEvent } from '@strata/proto';
import { injectTraceContext } from '@strata/tracing';

const DAY_NS = 24 * 60 * 60 * 1e9;

/** Creates the EVENTS stream if missing: 7 days, at most 1,000,000 events or 1 GiB. */
export async function ensureEventStream(nc: NatsConnection): Promise<void> {
  await ensureStream(nc, {
    name: streams.events,
    subjects: [subjects.eventsAll],
    retention: RetentionPolicy.Limits,
    max_age: 7 * DAY_NS,
    max_msgs: 1_000_000,
    max_bytes: 1024 ** 3,
    num_replicas: defaultReplicas(nc),
  });
}

function categoryOf(type: ClusterEvent['type']): EventCategory {
  if (type === EventType.leaderElected) return EventCategory.leader;
  if (type.startsWith('node.')) return EventCategory.node;
  if (type.startsWith('owner.')) return EventCategory.owner;
  if (type.startsWith('ha.')) return EventCategory.ha;
  if (type.startsWith('curator.')) return EventCategory.curator;
  if (type.startsWith('space.') || type === EventType.vdiskSwept || type === EventType.egroupReclaimed) return EventCategory.space;
  return EventCategory.cfg;
}

export class EventLog {
  private readonly js: JetStreamClient;

  constructor(nc: NatsConnection) {
    this.js = jetstream(nc);
  }

  async append(event: ClusterEvent): Promise<void> {
    const h = headers();
    injectTraceContext(h);
    // Sent again while no server takes it (the stream settling after an election): nothing was stored.
    await whileUndelivered(() => this.js.publish(subjects.events(categoryOf(event.type)), encode(event), { headers: h }));
  }
}
