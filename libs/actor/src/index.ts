// What every actor's main.ts uses: settings, and the run loop with logs, traces,
// metrics, the bus, health and clean shutdown, for one actor or several in one process.
export { runActor, runActors, healthSubject, healthReply, type ActorContext, type ActorDefinition, type HostOptions } from './run';
export { readSettings, commandLineSettings, millis, flagName, envName, isLoopbackHost, SettingsError } from './settings';
