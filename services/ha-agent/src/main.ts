#!/usr/bin/env node
// Entry point of a host's HA agent: `node services/ha-agent/dist/main.js --host n1
// --nbd-port 10809 [--nbd-tls-client-dir DIR] [--run-dir DIR]`. The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { haAgentActor } from './actor';
import { agentSettings } from './settings';

void runActor(haAgentActor(commandLineSettings('strata-ha-agent', agentSettings)));
