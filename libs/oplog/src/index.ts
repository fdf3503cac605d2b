// A vDisk's oplog (the OPLOG stream, subject oplog.<vdisk>): the one fenced order of
// its writes. Everything that reads or writes it goes through here: the stream, the
// subject's last entry, the tail read whole on open, the group-commit append whose
// expectation is the fence (it returns the sequence the caller applies), the takeover
// marker, and the purge of what was drained.
export { OplogAppender, type Appended, type Oplog, type OplogAppenderOptions } from './append';
export { REPLAY_FETCH_BYTES, oplogFetcher, readOpsTail, readTail, type FetchFrom, type ReplayPlan, type StoredOps, type TailMessage } from './tail';
export { appendMarker, ensureOplogStream, lastEntry, lastMessage, purgeBelow, type LastMessage, type MarkerAppend } from './stream';
