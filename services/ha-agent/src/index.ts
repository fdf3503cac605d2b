// The HA agent: one per host; the agents elect a master that restarts protected VMs
// elsewhere, never twice (PROTOCOL.md section 12).
export { haAgentActor } from './actor';
export { agentSettings, type AgentSettings } from './settings';
export { NbdClient, ExportRefused } from './workload/nbd-client';
export { BLOCK_BYTES, DATA_BLOCKS, dataOffset, decodeBlock, readCounter } from './workload/blocks';
export { consolePath } from './drivers/driver';
