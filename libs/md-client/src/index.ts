// The metadata maps' client.
export { MdClient, mdKeyProblem, MD_NOT_HELD_HINT, MD_DEFAULT_TIMEOUT_MS, type MdMaps, type MdEntry, type MdValue, type MdValueInput, type MdClientOptions } from './client';
