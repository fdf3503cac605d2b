#!/usr/bin/env node
// Entry point of a node's io-director: `node services/io-director/dist/main.js --node n1`.
// The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { directorSettings, ioDirectorActor } from './actor';

void runActor(ioDirectorActor(commandLineSettings('strata-io-director', directorSettings)));
