// The gateway: an NBD server that exports vDisks and turns NBD requests into Strata
// I/O requests. The server takes any backend: the bus one (vDisks through the node's
// io-director) or the in-memory one (protocol tests, benchmarks).
export { NbdServer, type NbdServerOptions, type TcpAddress } from './nbd/server';
export { defaultConnectionLimits, type ConnectionLimits, type NbdHooks, type NbdLogger } from './nbd/connection';
export { MAX_PAYLOAD_BYTES, NbdErrno } from './nbd/protocol';
export { errnoFor } from './nbd/errno';
export type { BlockDevice, ExportCatalog, ExportInfo } from './backend';
export { MemoryCatalog, MemoryDevice, MEMORY_PAGE_BYTES, type MemoryExportSpec } from './memory-backend';
export { BusCatalog, BusDevice, type BusBackendOptions, type IoRequester, type VdiskDirectory } from './bus-backend';
export { gatewayActor } from './actor';
export { Attachments, type AttachmentsDeps } from './attachments';
export { gatewaySettings, type GatewaySettings } from './settings';
