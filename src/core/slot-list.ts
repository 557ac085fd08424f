/**
 * A set of objects that changes all the time (the jobs a worker holds, each added when it is taken and
 * removed when it is settled), where each member carries its own position: adding and removing one are a
 * few array writes, with nothing hashed.
 *
 * Not keyed by job id: a Map gets a new table every few dozen additions when entries are deleted as fast
 * as they are added, and links the old table to the new one, so one table that reached V8's old
 * generation keeps every later one, and every job they refer to, alive until a full collection; an object
 * used as a dictionary internalises every id and cost about 1.4 µs a job. Finding a member by id is a
 * scan, for the rare paths that need it (a lease lost).
 */
export interface Slotted {
  /** The member's position in its list; -1 while it is in none. */
  slot: number;
}

export class SlotList<T extends Slotted> {
  /**
   * Members in [0, count); the rest is undefined. Never shortened: a shorter array would be reallocated
   * as it grows again, and a discarded copy in the old generation would keep the members it held alive.
   */
  private readonly items: Array<T | undefined> = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `item` (which is in no list). */
  add(item: T): void {
    if (item.slot !== -1) throw new Error('SlotList.add: the item is in a list already');
    item.slot = this.count;
    if (this.count === this.items.length) this.items.push(item);
    else this.items[this.count] = item;
    this.count++;
  }

  /** Removes `item` if it is in this list; the last member takes its place. */
  remove(item: T): void {
    const slot = item.slot;
    if (slot < 0 || slot >= this.count || this.items[slot] !== item) return;
    const lastSlot = --this.count;
    const last = this.items[lastSlot] as T;
    this.items[lastSlot] = undefined;
    if (last !== item) {
      this.items[slot] = last;
      last.slot = slot;
    }
    item.slot = -1;
  }

  /** The members, in no particular order (a copy). */
  values(): T[] {
    return this.items.slice(0, this.count) as T[];
  }
}
