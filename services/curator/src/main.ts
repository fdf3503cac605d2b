#!/usr/bin/env node
// Entry point of a node's curator: `node services/curator/dist/main.js --node n1`.
// The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { curatorActor } from './actor';
import { curatorSettings } from './settings';

void runActor(curatorActor(commandLineSettings('strata-curator', curatorSettings)));
