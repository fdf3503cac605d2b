// What `strata up` starts for each node: one supervised process per actor in start
// order, or with --colocate a single node-host, and then the node's HA agent (every
// node is also a host); every command line names its node.
import { basename, dirname } from 'node:path';
import { NODE_ACTOR_FLAGS, nodeChildren, preferServer } from '../src/up';

/** The actor's script (`gateway/main.js`) and what follows it, after node's own flags. */
const script = (args: string[]): string[] => {
  expect(args.slice(0, NODE_ACTOR_FLAGS.length)).toEqual(NODE_ACTOR_FLAGS);
  const path = args[NODE_ACTOR_FLAGS.length]!;
  return [`${basename(dirname(dirname(path)))}/${basename(path)}`, ...args.slice(NODE_ACTOR_FLAGS.length + 1)];
};

/** The HA agent's command line: its script, then its flags. */
const agent = (args: string[]): string[] => [`${basename(dirname(dirname(args[0]!)))}/${basename(args[0]!)}`, ...args.slice(1)];

test('one process per actor by default, in start order, each naming its node, then the HA agent of the host', () => {
  const all = nodeChildren(2, { nbdPort: 10809, dir: '/data' }, 'nats://127.0.0.1:1');
  const children = all.slice(0, -1);
  expect(all.map((c) => c.name)).toEqual(['n2-metadata-shard', 'n2-extent-store', 'n2-vdisk-controller', 'n2-admission', 'n2-io-director', 'n2-gateway', 'n2-ha-agent']);
  expect(agent(all.at(-1)!.args)).toEqual(['ha-agent/main.js', '--host', 'n2', '--nbd-port', '10810', '--run-dir', '/data/ha/n2']);
  expect(children.map((c) => script(c.args))).toEqual([
    ['metadata-shard/main.js', '--shard', 'md-2'],
    ['extent-store/main.js', '--node', 'n2'],
    ['vdisk-controller/main.js', '--node', 'n2'],
    ['admission/main.js', '--node', 'n2'],
    ['io-director/main.js', '--node', 'n2'],
    ['gateway/main.js', '--node', 'n2', '--nbd-port', '10810'],
  ]);
  expect(all.every((c) => c.env?.NATS_URL === 'nats://127.0.0.1:1' && c.command === process.execPath)).toBe(true);
});

test('--colocate: one node-host process per node, with the node, the shard and the NBD port, and the HA agent beside it', () => {
  const children = nodeChildren(3, { nbdPort: 10809, colocate: true, dir: '/data' }, 'nats://127.0.0.1:1');
  expect(children.map((c) => c.name)).toEqual(['n3-node-host', 'n3-ha-agent']);
  expect(script(children[0]!.args)).toEqual(['node-host/main.js', '--node', 'n3', '--shard', 'md-3', '--nbd-port', '10811']);
});

test("each node's actors prefer their own server of a NATS cluster, and the nodes spread over the servers", () => {
  const url = 'nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3';
  const first = (k: number): string | undefined => nodeChildren(k, { nbdPort: 10809, dir: '/data' }, url)[0]!.env?.NATS_URL?.split(',')[0];
  expect([1, 2, 3, 4].map(first)).toEqual(['nats://127.0.0.1:1', 'nats://127.0.0.1:2', 'nats://127.0.0.1:3', 'nats://127.0.0.1:1']);
  expect(preferServer(url, 1)).toBe('nats://127.0.0.1:2,nats://127.0.0.1:3,nats://127.0.0.1:1');
  expect(preferServer('nats://127.0.0.1:1', 5)).toBe('nats://127.0.0.1:1');
});
