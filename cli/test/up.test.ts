// What `strata up` starts for each node: by default a single node-host whose command
// line names the node and the actors it hosts, or with --separate one supervised
// process per actor in start order, each naming its node; then the node's HA agent
// (every node is also a host); and the line that says which layout runs and why. Node k
// is what `strata node run --node nk --shard md-k` runs (roles.ts).
import { basename, dirname } from 'node:path';
import { Layout, NODE_ACTOR_FLAGS, nodeChildren, preferServer } from '../src/roles';
import { layoutLine, upNode, type UpOptions } from '../src/up';

/** What `strata up` starts for node k, as `strata node run` runs it. */
const upChildren = (k: number, options: Pick<UpOptions, 'nbdPort' | 'layout' | 'dir'>, url: string): ReturnType<typeof nodeChildren> => nodeChildren(upNode(k, options, url));

/** The actor's script (`gateway/main.js`) and what follows it, after node's own flags. */
const script = (args: string[]): string[] => {
  expect(args.slice(0, NODE_ACTOR_FLAGS.length)).toEqual(NODE_ACTOR_FLAGS);
  const path = args[NODE_ACTOR_FLAGS.length]!;
  return [`${basename(dirname(dirname(path)))}/${basename(path)}`, ...args.slice(NODE_ACTOR_FLAGS.length + 1)];
};

/** The HA agent's command line: its script, then its flags. */
const agent = (args: string[]): string[] => [`${basename(dirname(dirname(args[0]!)))}/${basename(args[0]!)}`, ...args.slice(1)];

test('by default one node-host process per node, naming the node, the shard, the NBD port and every actor it hosts, and the HA agent and the curator beside it', () => {
  const children = upChildren(3, { nbdPort: 10809, dir: '/data' }, 'nats://127.0.0.1:1');
  expect(children.map((c) => c.name)).toEqual(['n3-node-host', 'n3-ha-agent', 'n3-curator']);
  expect(script(children[0]!.args)).toEqual([
    'node-host/main.js',
    '--node',
    'n3',
    '--shard',
    'md-3',
    '--nbd-port',
    '10811',
    '--actors',
    'metadata-shard,extent-store,vdisk-controller,admission,io-director,gateway',
  ]);
  expect(agent(children[1]!.args)).toEqual(['ha-agent/main.js', '--host', 'n3', '--nbd-port', '10811', '--run-dir', '/data/ha/n3']);
  expect(agent(children[2]!.args)).toEqual(['curator/main.js', '--node', 'n3']);
  expect(upChildren(3, { nbdPort: 10809, layout: Layout.colocated, dir: '/data' }, 'nats://127.0.0.1:1')).toEqual(children);
});

test('--separate: one process per actor, in start order, each naming its node, then the HA agent of the host and the curator', () => {
  const all = upChildren(2, { nbdPort: 10809, layout: Layout.separate, dir: '/data' }, 'nats://127.0.0.1:1');
  const children = all.slice(0, -2);
  expect(all.map((c) => c.name)).toEqual(['n2-metadata-shard', 'n2-extent-store', 'n2-vdisk-controller', 'n2-admission', 'n2-io-director', 'n2-gateway', 'n2-ha-agent', 'n2-curator']);
  expect(agent(all.at(-2)!.args)).toEqual(['ha-agent/main.js', '--host', 'n2', '--nbd-port', '10810', '--run-dir', '/data/ha/n2']);
  expect(agent(all.at(-1)!.args)).toEqual(['curator/main.js', '--node', 'n2']);
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

test('the start line says which layout runs and why', () => {
  expect(layoutLine(3, Layout.colocated)).toMatch(/^starting 3 nodes: each node's actors in one node-host process \(the default: in npm run bench it served \d.*x the IOPS of one process per actor, on every workload; --separate runs one process per actor\)$/);
  expect(layoutLine(1, Layout.separate)).toMatch(/^starting 1 node: one process per actor \(--separate; the default runs one node-host process per node: in npm run bench it served \d/);
});

test("each node's actors prefer their own server of a NATS cluster, and the nodes spread over the servers", () => {
  const url = 'nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3';
  const first = (k: number, layout: Layout): string | undefined => upChildren(k, { nbdPort: 10809, layout, dir: '/data' }, url)[0]!.env?.NATS_URL?.split(',')[0];
  for (const layout of [Layout.colocated, Layout.separate]) {
    expect([1, 2, 3, 4].map((k) => first(k, layout))).toEqual(['nats://127.0.0.1:1', 'nats://127.0.0.1:2', 'nats://127.0.0.1:3', 'nats://127.0.0.1:1']);
  }
  expect(preferServer(url, 1)).toBe('nats://127.0.0.1:2,nats://127.0.0.1:3,nats://127.0.0.1:1');
  expect(preferServer('nats://127.0.0.1:1', 5)).toBe('nats://127.0.0.1:1');
});
