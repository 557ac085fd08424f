/**
 * Values by string id, for a set of entries that changes all the time: the jobs a worker holds, each
 * added when it is taken and removed when it is settled.
 *
 * Not a Map: with entries deleted as fast as they are added, V8 gives a Map a new table every few dozen
 * additions and links the old table to the new one. An old table that reached the old generation (one
 * in use during a full collection does) then keeps every later table, and every job they refer to,
 * alive through young-generation collections until the next full one: at tens of thousands of jobs a
 * second that was most of what the worker's young collections copied. An object used as a dictionary is
 * rebuilt without such a link.
 */
export class IdTable<V> {
  private readonly entries: Record<string, V> = Object.create(null) as Record<string, V>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: string): V | undefined {
    return this.entries[id];
  }

  has(id: string): boolean {
    return id in this.entries;
  }

  set(id: string, value: V): this {
    if (!(id in this.entries)) this.count++;
    this.entries[id] = value;
    return this;
  }

  delete(id: string): boolean {
    if (!(id in this.entries)) return false;
    delete this.entries[id];
    this.count--;
    return true;
  }

  /** The ids, in no particular order. */
  keys(): string[] {
    return Object.keys(this.entries);
  }

  /** The values, in no particular order. */
  values(): V[] {
    return Object.values(this.entries);
  }
}
