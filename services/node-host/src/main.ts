#!/usr/bin/env node
// Entry point of a node's actors colocated in one process (what `strata up` runs):
// `node services/node-host/dist/main.js --node n2 --shard md-2 --nbd-port 10810
// --actors metadata-shard,extent-store,vdisk-controller,admission,io-director,gateway`.
// The command line names the node and the actors, so `ps` (or `pgrep -f
// vdisk-controller`) shows which process hosts what. A bad
// setting of any actor stops the process before anything starts (exit 2).
import { SettingsError, commandLineSettings, runActors, type ActorDefinition } from '@strata/actor';
import { nodeActorDefinitions, nodeHostSettings, type NodeHostSettings } from './host';

const PROGRAM = 'strata-node-host';

function definitions(settings: NodeHostSettings): ActorDefinition[] {
  try {
    return nodeActorDefinitions(settings, process.env);
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    process.stderr.write(`${PROGRAM}: ${err.message}\n`);
    process.exit(2);
  }
}

const settings = commandLineSettings(PROGRAM, nodeHostSettings);
void runActors(definitions(settings), { name: 'node-host', node: settings.node });
