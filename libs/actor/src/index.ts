// What every actor's main.ts uses: settings, and the run loop with logs, traces,
// metrics, the bus, health and clean shutdown.
export { runActor, healthSubject, healthReply, type ActorContext, type ActorDefinition } from './run';
export { readSettings, commandLineSettings, millis, flagName, envName, SettingsError } from './settings';
