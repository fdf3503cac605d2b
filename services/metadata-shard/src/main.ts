#!/usr/bin/env node
// Entry point of a metadata shard: reads its settings and serves partitions until
// SIGTERM, which releases them. `node services/metadata-shard/dist/main.js --shard md-1`.
// The actor itself is in actor.ts.
import { commandLineSettings, runActor } from '@strata/actor';
import { metadataShardActor } from './actor';
import { resolveSettings, shardSettings } from './settings';

void runActor(metadataShardActor(commandLineSettings('strata-metadata-shard', shardSettings, resolveSettings)));
