import { describe, expect, it } from 'vitest';
import { IdTable } from '../../src/core/id-table.js';

describe('IdTable', () => {
  it('keeps one value per id, counts them, and forgets a deleted one', () => {
    const table = new IdTable<{ n: number }>();
    expect(table.size).toBe(0);
    table.set('a', { n: 1 }).set('b', { n: 2 });
    table.set('a', { n: 3 }); // replaces, as Map.set does
    expect(table.size).toBe(2);
    expect(table.get('a')).toEqual({ n: 3 });
    expect(table.has('b')).toBe(true);
    expect(table.delete('b')).toBe(true);
    expect(table.delete('b')).toBe(false);
    expect(table.has('b')).toBe(false);
    expect(table.get('b')).toBeUndefined();
    expect(table.size).toBe(1);
    expect(table.keys()).toEqual(['a']);
    expect(table.values()).toEqual([{ n: 3 }]);
  });

  it('takes any string as an id, including ones an object would inherit or order first', () => {
    const table = new IdTable<string>();
    const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '42', '7', '', 'job 1'];
    for (const id of ids) {
      expect(table.has(id)).toBe(false);
      expect(table.get(id)).toBeUndefined();
      table.set(id, `value of ${id}`);
    }
    expect(table.size).toBe(ids.length);
    for (const id of ids) expect(table.get(id)).toBe(`value of ${id}`);
    expect(table.keys().sort()).toEqual([...ids].sort());
    for (const id of ids) expect(table.delete(id)).toBe(true);
    expect(table.size).toBe(0);
    expect(table.keys()).toEqual([]);
  });

  it('stays exact through many additions and removals, as a worker uses it', () => {
    const table = new IdTable<number>();
    const model = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const id = `job-${i}`;
      table.set(id, i);
      model.set(id, i);
      if (i >= 60) {
        const old = `job-${i - 60}`;
        expect(table.delete(old)).toBe(model.delete(old));
      }
    }
    expect(table.size).toBe(model.size);
    expect(table.keys().sort()).toEqual([...model.keys()].sort());
    for (const [id, value] of model) expect(table.get(id)).toBe(value);
  });
});
