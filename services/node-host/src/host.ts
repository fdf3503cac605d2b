// What node-host runs: the actors of one storage node (all six, or those --actors
// names), each with the settings its own program would read (its flags, then STRATA_*
// variables, then its defaults), in the start order of `strata up`. Sharing one process and one bus connection, a
// request from one to another (gateway to io-director to admission to controller) is
// dispatched in-process: same messages, errors and traces, no network hop.
import { z } from 'zod';
import { SettingsError, readSettings, type ActorDefinition } from '@strata/actor';
import { admissionActor, admissionSettings } from '@strata/admission';
import { extentStoreActor, extentStoreSettings } from '@strata/extent-store';
import { gatewayActor, gatewaySettings } from '@strata/gateway';
import { directorSettings, ioDirectorActor } from '@strata/io-director';
import { metadataShardActor, resolveSettings, shardSettings } from '@strata/metadata-shard';
import { objectName } from '@strata/proto';
import { controllerSettings, vdiskControllerActor } from '@strata/vdisk-controller';

/** The node's actors in start order: the same order as `strata up` starts their processes. */
export const nodeActors = ['metadata-shard', 'extent-store', 'vdisk-controller', 'admission', 'io-director', 'gateway'] as const;
export type NodeActor = (typeof nodeActors)[number];

/**
 * `--actors metadata-shard,gateway`: the actors to host, comma-separated, each at most
 * once; they start in `nodeActors` order whatever the order given. `strata up` names
 * all six, so that `ps` (or `pgrep -f vdisk-controller`) shows which process hosts an actor.
 */
const hostedActors = z.string().transform((text, ctx): NodeActor[] => {
  const list = text.split(',').map((a) => a.trim());
  const unknown = list.filter((a) => !(nodeActors as readonly string[]).includes(a));
  if (unknown.length > 0) ctx.addIssue({ code: 'custom', message: `${unknown.map((a) => `"${a}"`).join(', ')}: not an actor of a node (${nodeActors.join(', ')})` });
  else if (new Set(list).size !== list.length) ctx.addIssue({ code: 'custom', message: 'names an actor twice' });
  return list as NodeActor[];
});

/** node-host's own flags; every other setting reaches the actors through STRATA_* variables. */
export const nodeHostSettings = z
  .object({
    /** The node whose actors this process runs (`n2`); required. */
    node: z.string({ error: 'is required: the name of this node in the config service, e.g. --node n2' }).pipe(objectName),
    /** The metadata shard's name (`md-2`); default: the shard's own (STRATA_SHARD, else md-<host>-<pid>). */
    shard: z.string().min(1).optional(),
    /** The gateway's NBD port; default: the gateway's own (STRATA_NBD_PORT, else 10809). */
    nbdPort: z.coerce.number().int().min(0).max(65_535).optional(),
    /** The actors this process hosts; default: all of them. */
    actors: hostedActors.default([...nodeActors]),
  })
  .strict();
export type NodeHostSettings = z.output<typeof nodeHostSettings>;

/** The flags node-host hands one actor: only those that apply to it, as `strata up` would pass them. */
export function actorArgv(actor: NodeActor, s: NodeHostSettings): string[] {
  if (actor === 'metadata-shard') return s.shard === undefined ? [] : ['--shard', s.shard];
  const argv = ['--node', s.node];
  if (actor === 'gateway' && s.nbdPort !== undefined) argv.push('--nbd-port', String(s.nbdPort));
  return argv;
}

/**
 * The definitions of the actors the node host runs (`s.actors`, in start order), every
 * actor's settings read and checked before any starts. A bad setting throws
 * SettingsError naming the actor and the flag or variable.
 */
export function nodeActorDefinitions(s: NodeHostSettings, env: NodeJS.ProcessEnv): ActorDefinition[] {
  const read = <S extends z.ZodObject>(actor: NodeActor, schema: S): z.output<S> => {
    try {
      return readSettings(schema, actorArgv(actor, s), env);
    } catch (err) {
      if (err instanceof SettingsError) throw new SettingsError(`${actor}: ${err.message}`);
      throw err;
    }
  };
  const byActor: Record<NodeActor, () => ActorDefinition> = {
    // The shard's own program names no node; here its log lines carry the host's.
    'metadata-shard': () => ({ ...metadataShardActor(resolveSettings(read('metadata-shard', shardSettings))), node: s.node }),
    'extent-store': () => extentStoreActor(read('extent-store', extentStoreSettings)),
    'vdisk-controller': () => vdiskControllerActor(read('vdisk-controller', controllerSettings)),
    admission: () => admissionActor(read('admission', admissionSettings)),
    'io-director': () => ioDirectorActor(read('io-director', directorSettings)),
    gateway: () => gatewayActor(read('gateway', gatewaySettings)),
  };
  return nodeActors.filter((actor) => s.actors.includes(actor)).map((actor) => byActor[actor]());
}
