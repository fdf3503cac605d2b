#!/usr/bin/env node
// Entry point of a node's admission control: `node services/admission/dist/main.js --node n1`.
// The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { admissionActor, admissionSettings } from './actor';

void runActor(admissionActor(commandLineSettings('strata-admission', admissionSettings)));
