import { describe, expect, it } from 'vitest';
import { SlotList } from '../../src/core/slot-list.js';

interface Item {
  slot: number;
  name: string;
}

const item = (name: string): Item => ({ slot: -1, name });
const names = (list: SlotList<Item>): string[] => list.values().map((i) => i.name);

describe('SlotList', () => {
  it('adds and removes members, each recording its place, the last one moving into a freed place', () => {
    const list = new SlotList<Item>();
    const [a, b, c] = [item('a'), item('b'), item('c')];
    list.add(a);
    list.add(b);
    list.add(c);
    expect(list.size).toBe(3);
    expect([a.slot, b.slot, c.slot]).toEqual([0, 1, 2]);

    list.remove(a);
    expect(a.slot).toBe(-1);
    expect(c.slot).toBe(0); // the last member took the freed place
    expect(names(list)).toEqual(['c', 'b']);
    list.remove(b); // the last member: nothing moves
    expect(names(list)).toEqual(['c']);
    expect(list.size).toBe(1);
  });

  it('holds two members with the same name (a job id taken twice) apart', () => {
    const list = new SlotList<Item>();
    const [first, second] = [item('job-1'), item('job-1')];
    list.add(first);
    list.add(second);
    list.remove(first);
    expect(list.values()).toEqual([second]);
    expect(list.values()[0]).toBe(second);
  });

  it('ignores the removal of a member that is not in it, and refuses to add one twice', () => {
    const list = new SlotList<Item>();
    const [a, b, stranger] = [item('a'), item('b'), item('stranger')];
    list.add(a);
    list.add(b);
    list.remove(stranger);
    list.remove(a);
    list.remove(a); // removed already
    expect(names(list)).toEqual(['b']);
    expect(() => list.add(b)).toThrow(/in a list already/);
    // An item of another list whose slot points here is not taken for a member.
    const other = new SlotList<Item>();
    const foreign = item('foreign');
    other.add(foreign);
    list.remove(foreign);
    expect(names(list)).toEqual(['b']);
    expect(names(other)).toEqual(['foreign']);
  });

  it('values() is a copy: removing members while going through it is safe', () => {
    const list = new SlotList<Item>();
    const items = ['a', 'b', 'c', 'd'].map(item);
    for (const i of items) list.add(i);
    for (const i of list.values()) if (i.name !== 'c') list.remove(i);
    expect(names(list)).toEqual(['c']);
  });

  it('stays exact through many additions and removals in any order, as a worker uses it', () => {
    const list = new SlotList<Item>();
    const model = new Set<Item>();
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      const added = item(`job-${i}`);
      list.add(added);
      model.add(added);
      if (model.size > 60 || random(3) === 0) {
        const members = [...model];
        const removed = members[random(members.length)]!;
        list.remove(removed);
        model.delete(removed);
      }
      if (i % 500 === 0) {
        expect(new Set(list.values())).toEqual(model);
        list.values().forEach((member, slot) => expect(member.slot).toBe(slot));
      }
    }
    expect(list.size).toBe(model.size);
    expect(new Set(list.values())).toEqual(model);
  });
});
