#!/usr/bin/env node
// Entry point of a node's vdisk-controller: `node services/vdisk-controller/dist/main.js --node n1`.
// The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { vdiskControllerActor } from './actor';
import { controllerSettings } from './settings';

void runActor(vdiskControllerActor(commandLineSettings('strata-vdisk-controller', controllerSettings)));
