// Feeds a ReplicaHealth from the cluster's shared state: node names and the config
// leader's verdicts (nodes declared dead) from the `cfg` bucket, and every node's
// heartbeat from the `hb` bucket, both through watches. Heartbeats are keyed by node
// id and replicas name nodes by name, so the names come from the node objects.
import { WatchCache, type Entry, type TypedBucket } from '@strata/kv';
import type { Heartbeat, cfgEntry, heartbeat } from '@strata/proto';
import type { ReplicaHealth } from './replica-health';

/** Both buckets are watched under `node.>`: config objects `node.<id>`, heartbeats `node.<id>`. */
const NODE_KEYS = 'node.>';

export async function watchNodes(cfg: TypedBucket<typeof cfgEntry>, hb: TypedBucket<typeof heartbeat>, health: ReplicaHealth): Promise<() => void> {
  const [nodes, heartbeats] = await Promise.all([WatchCache.start(cfg, { key: NODE_KEYS }), WatchCache.start(hb, { key: NODE_KEYS })]);
  await Promise.all([nodes.ready, heartbeats.ready]);
  const names = new Map<string, string>();
  const onNode = (): void => {
    names.clear();
    const dead: string[] = [];
    for (const e of nodes.values()) {
      const node = e.value;
      if (!('kind' in node) || node.kind !== 'node') continue;
      names.set(e.key, node.name);
      if (node.status.liveness === 'dead') dead.push(node.name);
    }
    health.setDead(dead);
  };
  const onHeartbeat = (key: string, entry: Entry<Heartbeat> | undefined): void => {
    const name = names.get(key);
    if (name !== undefined && entry !== undefined) health.heartbeat(name, `${entry.value.incarnation}.${entry.value.seq}`);
  };
  onNode();
  for (const e of heartbeats.values()) onHeartbeat(e.key, e);
  const stops = [nodes.onChange(onNode), heartbeats.onChange(onHeartbeat)];
  return () => {
    for (const stop of stops) stop();
    nodes.stop();
    heartbeats.stop();
  };
}
