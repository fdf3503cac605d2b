// The node host: all the actors of one storage node in one process (main.ts runs it).
export { nodeActorDefinitions, actorArgv, nodeActors, nodeHostSettings, type NodeActor, type NodeHostSettings } from './host';
