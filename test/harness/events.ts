// Reads the EVENTS stream from the start, as an operator's console would.
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decode } from '@strata/codec';
import { clusterEvent, streams, type ClusterEvent } from '@strata/proto';

export async function readEvents(nc: NatsConnection, max = 10_000): Promise<ClusterEvent[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(streams.events);
  const events: ClusterEvent[] = [];
  const batch = await consumer.fetch({ max_messages: max, expires: 1_000 });
  for await (const m of batch) {
    events.push(decode(m.data, clusterEvent));
    if (m.info.pending === 0) break;
  }
  return events;
}
