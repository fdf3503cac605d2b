#!/usr/bin/env node
// Entry point of a node's extent store: reads its settings and runs the store until
// SIGTERM. `node services/extent-store/dist/main.js --node n1`. The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { extentStoreActor } from './actor';
import { extentStoreSettings } from './settings';

void runActor(extentStoreActor(commandLineSettings('strata-extent-store', extentStoreSettings)));
