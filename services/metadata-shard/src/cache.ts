// The shard's cache of recently read and written metadata entries: an LRU bounded by
// entry count, kept correct by the rules below. No I/O here: requests.ts and the
// bucket watches feed it, and test/cache.test.ts checks every rule.
//
// Why a cached entry may answer a read. The holder of a partition's lease is the only
// shard that writes the partition's keys, and it writes through this cache; every
// other change (a straggling write of the previous holder, an operator's tool) reaches
// the cache through the bucket watch. So the cache must never be older than what this
// shard wrote or what the watch delivered, and these rules keep it so:
//  1. A write that succeeded stores its result (a put its value and new revision; a
//     delete, whose new revision the store does not return, drops the entry).
//  2. The watch replaces a cached entry with any newer revision it delivers (a delete
//     marker drops it); an older one changes nothing.
//  3. A read or write stores its result only if nothing newer about that key was
//     reported (by the watch or by another local write) while it was in flight:
//     every operation holds a ticket that collects those reports. Without this, a
//     read that began before a change and finished after the watch delivered it would
//     put the old value back.
//  4. Losing a partition drops its entries, and operations that began before cannot
//     store anything for it (a per-partition generation), so a partition taken back
//     later starts empty.
//  5. When a map's watch breaks, the map's entries are dropped and none is stored or
//     served until a new watch is running; operations that began before it started
//     cannot store (a per-map generation), because a change may have slipped between
//     the two watches. Reads then go to KV.
// When in doubt the cache answers "miss" and the read goes to KV, which is the truth.

/** A cached entry; `value` undefined means the key has no value. */
export interface CachedValue {
  value: unknown;
  revision: number;
}

interface Slot extends CachedValue {
  map: string;
  partition: number;
}

/** An operation in flight on one key, collecting what is reported about the key meanwhile. */
export interface Ticket {
  readonly id: string;
  readonly map: string;
  readonly partition: number;
  readonly mapGeneration: number;
  readonly partitionGeneration: number;
  /** The highest revision reported for the key since the operation began. */
  noted: number;
}

export class MdCache {
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly slots = new Map<string, Slot>();
  private readonly tickets = new Map<string, Set<Ticket>>();
  private readonly partitionGenerations = new Map<number, number>();
  private readonly mapGenerations = new Map<string, number>();
  /** Maps whose watch is not running: nothing of theirs is served or stored. */
  private readonly suspended = new Set<string>();
  hits = 0;
  misses = 0;

  constructor(readonly entriesMax: number) {
    if (!(Number.isInteger(entriesMax) && entriesMax > 0)) throw new Error(`assertion failed: entriesMax ${entriesMax} must be a positive integer`);
  }

  static id(map: string, key: string): string {
    return `${map}\u0000${key}`;
  }

  get size(): number {
    return this.slots.size;
  }

  /** Tickets in flight (bounded by the shard's requests in flight). */
  get ticketsInFlight(): number {
    let n = 0;
    for (const set of this.tickets.values()) n += set.size;
    return n;
  }

  isSuspended(map: string): boolean {
    return this.suspended.has(map);
  }

  /** The cached entry for a read, or undefined (a miss: read KV). */
  lookup(map: string, key: string): CachedValue | undefined {
    const id = MdCache.id(map, key);
    const slot = this.suspended.has(map) ? undefined : this.slots.get(id);
    if (slot === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.slots.delete(id);
    this.slots.set(id, slot);
    return { value: slot.value, revision: slot.revision };
  }

  /** Starts an operation on `key` of `partition`. Always end it with finish(). */
  begin(map: string, key: string, partition: number): Ticket {
    const ticket: Ticket = {
      id: MdCache.id(map, key),
      map,
      partition,
      mapGeneration: this.mapGenerations.get(map) ?? 0,
      partitionGeneration: this.partitionGenerations.get(partition) ?? 0,
      noted: 0,
    };
    let set = this.tickets.get(ticket.id);
    if (set === undefined) this.tickets.set(ticket.id, (set = new Set()));
    set.add(ticket);
    return ticket;
  }

  /**
   * Ends an operation. With `result`, stores it if rule 3, 4 and 5 allow: nothing newer
   * was reported meanwhile, and neither the partition nor the watch was reset since
   * begin(). Without, only ends the ticket (the operation failed).
   */
  finish(ticket: Ticket, result?: CachedValue): void {
    const set = this.tickets.get(ticket.id);
    set?.delete(ticket);
    if (set?.size === 0) this.tickets.delete(ticket.id);
    if (result === undefined || this.suspended.has(ticket.map)) return;
    if (ticket.mapGeneration !== (this.mapGenerations.get(ticket.map) ?? 0) || ticket.partitionGeneration !== (this.partitionGenerations.get(ticket.partition) ?? 0)) return;
    if (ticket.noted > result.revision) return;
    const existing = this.slots.get(ticket.id);
    if (existing !== undefined && existing.revision > result.revision) return;
    this.store(ticket.id, { ...result, map: ticket.map, partition: ticket.partition });
  }

  /**
   * Reports a change of `key` at `revision` (rules 1 and 2): from the watch, or from a
   * local write before its own finish(). `replacement` gives the new entry, or
   * undefined to drop it (a delete, or a value that does not decode); it is called
   * only when the key is cached, so the watch decodes nothing it does not need.
   * A local delete passes Infinity: its revision is unknown, so nothing in flight may
   * store an older view.
   */
  changed(map: string, key: string, revision: number, replacement: () => CachedValue | undefined): void {
    const id = MdCache.id(map, key);
    for (const t of this.tickets.get(id) ?? []) t.noted = Math.max(t.noted, revision);
    const slot = this.slots.get(id);
    if (slot === undefined || slot.revision > revision) return;
    const next = replacement();
    if (next === undefined || next.revision < revision) this.slots.delete(id);
    else this.slots.set(id, { ...next, map, partition: slot.partition });
  }

  /** Rule 4: the partition is no longer held. */
  dropPartition(partition: number): void {
    this.partitionGenerations.set(partition, (this.partitionGenerations.get(partition) ?? 0) + 1);
    for (const [id, slot] of this.slots) if (slot.partition === partition) this.slots.delete(id);
  }

  /** Rule 5: the map's watch broke; serve and store nothing of the map until resume(). */
  suspend(map: string): void {
    this.suspended.add(map);
    this.bumpMap(map);
    for (const [id, slot] of this.slots) if (slot.map === map) this.slots.delete(id);
  }

  /** A new watch of the map is running: operations that begin from now on may store again. */
  resume(map: string): void {
    this.bumpMap(map);
    this.suspended.delete(map);
  }

  private bumpMap(map: string): void {
    this.mapGenerations.set(map, (this.mapGenerations.get(map) ?? 0) + 1);
  }

  private store(id: string, slot: Slot): void {
    this.slots.delete(id);
    this.slots.set(id, slot);
    while (this.slots.size > this.entriesMax) {
      const oldest = this.slots.keys().next();
      if (oldest.done === true) break;
      this.slots.delete(oldest.value);
    }
  }
}
