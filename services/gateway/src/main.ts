#!/usr/bin/env node
// Entry point of a node's gateway: the NBD server over the bus backend, so every vDisk
// in the configuration is an export. `node services/gateway/dist/main.js --node n1
// --nbd-port 10809 [--nbd-host 127.0.0.1] [--nbd-tls-dir DIR | --nbd-insecure true]
// [--unix-socket PATH]`. The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { gatewayActor } from './actor';
import { gatewaySettings } from './settings';

void runActor(gatewayActor(commandLineSettings('strata-gateway', gatewaySettings)));
