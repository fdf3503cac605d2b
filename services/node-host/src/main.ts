#!/usr/bin/env node
// Entry point of a node's actors colocated in one process (`strata up --colocate`):
// `node services/node-host/dist/main.js --node n2 --shard md-2 --nbd-port 10810`.
// The command line names the node, so `ps` shows which node a process is. A bad
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
