// Splitting one NBD request into bus messages: pieces of at most IO_CHUNK_BYTES,
// cut at multiples of the chunk size so no piece straddles a vDisk block, and run
// with a bounded number in flight.
import { assert } from '@strata/errors';

export interface Piece {
  /** Offset in the vDisk. */
  offset: number;
  lengthBytes: number;
  /** Where the piece starts inside the request (for reassembling a read). */
  at: number;
}

/**
 * Cuts [offset, offset + lengthBytes) at every multiple of `chunkBytes`: a request of
 * 600 KiB at 100 KiB with 256 KiB chunks gives 156 + 256 + 188 KiB.
 */
export function splitRange(offset: number, lengthBytes: number, chunkBytes: number): Piece[] {
  assert(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(lengthBytes) && lengthBytes >= 0, 'a range is non-negative integers');
  assert(Number.isSafeInteger(chunkBytes) && chunkBytes > 0, 'chunkBytes is a positive integer');
  const pieces: Piece[] = [];
  let at = 0;
  while (at < lengthBytes) {
    const start = offset + at;
    const boundary = (Math.floor(start / chunkBytes) + 1) * chunkBytes;
    const pieceBytes = Math.min(boundary - start, lengthBytes - at);
    pieces.push({ offset: start, lengthBytes: pieceBytes, at });
    at += pieceBytes;
  }
  return pieces;
}

/**
 * Runs `run` on every item with at most `limit` at once. On the first failure no
 * new item starts; the call waits for the running ones, then throws that failure,
 * so nothing is still in flight when the caller answers its client.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  assert(Number.isSafeInteger(limit) && limit > 0, 'limit is a positive integer');
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await run(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.err;
}
