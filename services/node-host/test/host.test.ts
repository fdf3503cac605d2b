// node-host hands each actor only the flags that apply to it, reads every actor's
// settings (flags, then STRATA_* variables, then defaults) before any starts, keeps
// `strata up`'s start order, runs only the actors --actors names, and names the actor
// when one of its settings is bad.
import { SettingsError } from '@strata/actor';
import { actorArgv, nodeActorDefinitions, nodeActors, nodeHostSettings } from '../src/host';

const settings = nodeHostSettings.parse({ node: 'n2', shard: 'md-2', nbdPort: '10810' });

test('each actor gets only its own flags', () => {
  expect(actorArgv('metadata-shard', settings)).toEqual(['--shard', 'md-2']);
  expect(actorArgv('gateway', settings)).toEqual(['--node', 'n2', '--nbd-port', '10810']);
  for (const actor of ['extent-store', 'vdisk-controller', 'admission', 'io-director'] as const) expect(actorArgv(actor, settings)).toEqual(['--node', 'n2']);
  // Without --shard, the shard's own default (or STRATA_SHARD) applies.
  expect(actorArgv('metadata-shard', nodeHostSettings.parse({ node: 'n2' }))).toEqual([]);
});

test('the definitions follow strata up\'s start order and name the node', () => {
  const defs = nodeActorDefinitions(settings, {});
  expect(defs.map((d) => d.actor)).toEqual([...nodeActors]);
  expect(defs.map((d) => d.instance)).toEqual(['md-2', 'n2', 'n2', 'n2', 'n2', 'n2']);
  expect(defs.every((d) => d.node === 'n2')).toBe(true);
});

test('a bad setting names the actor and the variable, before anything starts', () => {
  expect(() => nodeActorDefinitions(settings, { STRATA_QUEUE_DEPTH_MAX: '-1' })).toThrow(SettingsError);
  expect(() => nodeActorDefinitions(settings, { STRATA_QUEUE_DEPTH_MAX: '-1' })).toThrow(/^admission: bad setting: --queue-depth-max \(STRATA_QUEUE_DEPTH_MAX\)/);
  expect(() => nodeActorDefinitions(settings, { STRATA_LEASE_TTL_MS: '100' })).toThrow(/^metadata-shard: /);
});

test('a setting in the environment reaches every actor that has it, as it does the separate programs under strata up', () => {
  // requestsInFlightMax is a setting of five of the six actors; one variable sets them all.
  expect(() => nodeActorDefinitions(settings, { STRATA_REQUESTS_IN_FLIGHT_MAX: '0' })).toThrow(/^metadata-shard: bad setting: --requests-in-flight-max/);
});

test('--actors picks the actors to host, in start order whatever the order given; all six by default', () => {
  expect(settings.actors).toEqual([...nodeActors]);
  const two = nodeHostSettings.parse({ node: 'n2', actors: 'gateway, metadata-shard' });
  expect(nodeActorDefinitions(two, {}).map((d) => d.actor)).toEqual(['metadata-shard', 'gateway']);
  // The settings of an actor not hosted are not read: its bad variable does not stop the others.
  const gatewayOnly = nodeHostSettings.parse({ node: 'n2', actors: 'gateway' });
  expect(nodeActorDefinitions(gatewayOnly, { STRATA_QUEUE_DEPTH_MAX: '-1' }).map((d) => d.actor)).toEqual(['gateway']);
});

test('--actors refuses an unknown actor, an actor named twice and an empty list', () => {
  expect(nodeHostSettings.safeParse({ node: 'n2', actors: 'gateway,curator' }).success).toBe(false);
  expect(nodeHostSettings.safeParse({ node: 'n2', actors: 'gateway,gateway' }).success).toBe(false);
  expect(nodeHostSettings.safeParse({ node: 'n2', actors: '' }).success).toBe(false);
});

test('node-host\'s own flags are checked: --node is required, the port is a port', () => {
  expect(nodeHostSettings.safeParse({}).success).toBe(false);
  expect(nodeHostSettings.safeParse({ node: 'n2', nbdPort: '70000' }).success).toBe(false);
  expect(nodeHostSettings.safeParse({ node: 'n2', colour: 'red' }).success).toBe(false);
});
