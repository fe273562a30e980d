// Intern tables: queue names and node lists shared by many jobs, counted
// by their users and gone with the last one; ids are reused, and the cache
// of "this list plus that node" must survive ids being freed and reused.
import { describe, it, expect } from 'vitest';
import { QueueNames, NodeLists, type NodeIdList } from '../../src/core/intern.js';
import { prng } from '../helpers/prng.js';


const node = (c: string) => c.repeat(40);
const A = node('a');
const B = node('b');
const C = node('c');
const D = node('d');

describe('QueueNames', () => {
  it('gives one id per name, counts users, and frees the id with the last user', () => {
    const qn = new QueueNames(0);
    expect(qn.name(0)).toBeNull(); // 0: no queue (a dummy ack)
    const q1 = qn.acquire('q1');
    const q2 = qn.acquire('q2');
    expect(q1).not.toBe(0);
    expect(q2).not.toBe(q1);
    expect(qn.acquire('q1')).toBe(q1);
    expect(qn.size).toBe(2);
    qn.release(q1);
    expect(qn.name(q1)).toBe('q1'); // one user left
    qn.release(q1);
    expect(qn.name(q1)).toBeNull();
    expect(qn.size).toBe(1);
    // The freed id goes to the next new name; the old name gets a new id.
    const q3 = qn.acquire('q3');
    expect(q3).toBe(q1);
    expect(qn.name(q3)).toBe('q3');
    const again = qn.acquire('q1');
    expect(again).not.toBe(q1);
    expect(qn.name(again)).toBe('q1');
    expect(qn.name(q2)).toBe('q2');
    qn.release(0); // no-op
    expect(qn.size).toBe(3);
  });

  it('handles the empty name and latin1 names like any other', () => {
    const qn = new QueueNames(0);
    const e = qn.acquire('');
    const l = qn.acquire('caf\xe9\xff');
    expect(e).not.toBe(0);
    expect(qn.name(e)).toBe('');
    expect(qn.name(l)).toBe('caf\xe9\xff');
    qn.release(e);
    expect(qn.name(e)).toBeNull();
    expect(qn.size).toBe(1);
  });

  for (const seed of [3, 77]) {
    it(`agrees with a reference count model through random acquire/release (seed ${seed})`, () => {
      const rnd = prng(seed);
      const qn = new QueueNames(0);
      const held: { name: string; id: number }[] = [];
      const refs = new Map<string, number>();
      let maxId = 0;
      for (let step = 0; step < 20_000; step++) {
        if (held.length === 0 || rnd() < (held.length > 200 ? 0.4 : 0.6)) {
          const name = `q${Math.floor(rnd() * 40)}`;
          const id = qn.acquire(name);
          maxId = Math.max(maxId, id);
          held.push({ name, id });
          refs.set(name, (refs.get(name) ?? 0) + 1);
        } else {
          const i = Math.floor(rnd() * held.length);
          const h = held[i]!;
          held[i] = held[held.length - 1]!;
          held.pop();
          qn.release(h.id);
          const n = refs.get(h.name)! - 1;
          if (n === 0) refs.delete(h.name);
          else refs.set(h.name, n);
        }
        if (step % 97 === 0) {
          expect(qn.size).toBe(refs.size);
          const idOf = new Map<string, number>();
          for (const h of held) {
            if (qn.name(h.id) !== h.name) expect.fail(`step ${step}: id ${h.id} should name ${h.name}, names ${qn.name(h.id)}`);
            const prev = idOf.get(h.name);
            if (prev !== undefined && prev !== h.id) expect.fail(`step ${step}: ${h.name} has ids ${prev} and ${h.id}`);
            idOf.set(h.name, h.id);
          }
          // Distinct names, distinct ids.
          expect(new Set(idOf.values()).size).toBe(idOf.size);
        }
      }
      // Ids are reused: never more than the most names alive at once (40), plus "no queue".
      expect(maxId).toBeLessThanOrEqual(40);
    });
  }
});

describe('NodeLists', () => {
  it('keeps id 0 for the empty list and one id per list content, in order', () => {
    const nl = new NodeLists(0);
    expect(nl.acquire([])).toBe(0);
    expect(nl.list(0)).toEqual([]);
    const ab = nl.acquire([A, B]);
    expect(ab).not.toBe(0);
    expect(nl.acquire([A, B])).toBe(ab); // same content, another array
    const ba = nl.acquire([B, A]);
    expect(ba).not.toBe(ab); // order matters
    expect(nl.list(ab)).toEqual([A, B]);
    expect(Object.isFrozen(nl.list(ab))).toBe(true);
    expect(nl.size).toBe(2);
    // The stored list is a copy: changing the caller's array changes nothing.
    const mine = [C];
    const c = nl.acquire(mine);
    mine.push(D);
    expect(nl.list(c)).toEqual([C]);
    nl.release(0); // no-op
    expect(nl.list(0)).toEqual([]);
  });

  it('frees a list with its last user and reuses its id', () => {
    const nl = new NodeLists(0);
    const ab = nl.acquire([A, B]);
    nl.acquire([A, B]);
    nl.release(ab);
    expect(nl.list(ab)).toEqual([A, B]);
    nl.release(ab);
    expect(nl.size).toBe(0);
    const cd = nl.acquire([C, D]);
    expect(cd).toBe(ab);
    expect(nl.list(cd)).toEqual([C, D]);
    // The old content gets a fresh id.
    const ab2 = nl.acquire([A, B]);
    expect(ab2).not.toBe(cd);
    expect(nl.list(ab2)).toEqual([A, B]);
  });

  it('acquireWithNode appends the node, or counts the same list when it has it', () => {
    const nl = new NodeLists(0);
    const a = nl.acquire([A]);
    const ab = nl.acquireWithNode(a, B);
    expect(nl.list(ab)).toEqual([A, B]);
    expect(nl.acquire([A, B])).toBe(ab);
    expect(nl.acquireWithNode(a, B)).toBe(ab); // cached
    // Already there: the same id, one more user.
    expect(nl.acquireWithNode(ab, A)).toBe(ab);
    // From the empty list.
    const c = nl.acquireWithNode(0, C);
    expect(nl.list(c)).toEqual([C]);
    // ab has 4 users now: acquireWithNode x2, acquire, acquireWithNode(ab, A).
    for (let i = 0; i < 3; i++) nl.release(ab);
    expect(nl.list(ab)).toEqual([A, B]);
    nl.release(ab);
    expect(nl.size).toBe(2); // [A] and [C]
  });

  it('acquireWithNode stays right when the cached result is freed and its id reused for another list', () => {
    const nl = new NodeLists(0);
    const a = nl.acquire([A]);
    const ab = nl.acquireWithNode(a, B); // caches a + B -> ab
    nl.release(ab); // [A, B] is gone...
    const cd = nl.acquire([C, D]); // ...and its id now names [C, D]
    expect(cd).toBe(ab);
    const ab2 = nl.acquireWithNode(a, B);
    expect(nl.list(ab2)).toEqual([A, B]);
    expect(ab2).not.toBe(cd);
    expect(nl.list(cd)).toEqual([C, D]);
    // [C, D]'s count was not touched: one release frees it.
    nl.release(cd);
    expect(nl.acquire([C, D])).not.toBe(ab2);
    expect(nl.list(ab2)).toEqual([A, B]);
  });

  it('acquireWithNode stays right when the cached result is freed and reused for the same content', () => {
    const nl = new NodeLists(0);
    const a = nl.acquire([A]);
    const ab = nl.acquireWithNode(a, B);
    nl.release(ab);
    const ab2 = nl.acquire([A, B]); // same content, same id again
    expect(ab2).toBe(ab);
    expect(nl.acquireWithNode(a, B)).toBe(ab2);
    nl.release(ab2);
    expect(nl.list(ab2)).toEqual([A, B]); // one user left
    nl.release(ab2);
    expect(nl.size).toBe(1);
  });

  it('acquireWithNode stays right when the source list is freed and its id reused for another list', () => {
    const nl = new NodeLists(0);
    const a = nl.acquire([A]);
    const ab = nl.acquireWithNode(a, B); // cache: a + B -> ab
    nl.release(a); // [A] gone; its id is free
    const c = nl.acquire([C]);
    expect(c).toBe(a);
    const cb = nl.acquireWithNode(c, B);
    expect(nl.list(cb)).toEqual([C, B]);
    expect(cb).not.toBe(ab);
    expect(nl.list(ab)).toEqual([A, B]);
    // And when the reused id's list already holds the node.
    const cc = nl.acquireWithNode(c, C);
    expect(cc).toBe(c);
  });

  it('acquireWithNode stays right when the cached result was "the list itself" and the ids move', () => {
    const nl = new NodeLists(0);
    const ab = nl.acquire([A, B]);
    expect(nl.acquireWithNode(ab, A)).toBe(ab); // cache: ab + A -> ab
    nl.release(ab);
    nl.release(ab); // gone
    const cd = nl.acquire([C, D]); // reuses the id
    expect(cd).toBe(ab);
    const cda = nl.acquireWithNode(cd, A);
    expect(nl.list(cda)).toEqual([C, D, A]);
  });

  for (const seed of [5, 1001, 65537]) {
    it(`agrees with a reference model through random acquire/acquireWithNode/release (seed ${seed})`, () => {
      const rnd = prng(seed);
      const nl = new NodeLists(0);
      const nodes = [A, B, C, D, node('e')];
      /** What each holder holds: an id and the content it stands for. */
      const held: { id: number; list: NodeIdList }[] = [];
      const key = (l: NodeIdList) => l.join(',');
      const randomList = (): NodeIdList => {
        const n = Math.floor(rnd() * 4);
        const out: string[] = [];
        while (out.length < n) {
          const x = nodes[Math.floor(rnd() * nodes.length)]!;
          if (!out.includes(x)) out.push(x);
        }
        return out;
      };
      for (let step = 0; step < 10_000; step++) {
        // Hover around a few hundred holders.
        const r = held.length > 300 ? rnd() * 1.2 : rnd();
        if (held.length === 0 || r < 0.3) {
          const list = randomList();
          held.push({ id: nl.acquire(list), list });
        } else if (r < 0.6) {
          const h = held[Math.floor(rnd() * held.length)]!;
          const x = nodes[Math.floor(rnd() * nodes.length)]!;
          const list = h.list.includes(x) ? h.list : [...h.list, x];
          held.push({ id: nl.acquireWithNode(h.id, x), list });
        } else {
          const i = Math.floor(rnd() * held.length);
          const h = held[i]!;
          held[i] = held[held.length - 1]!;
          held.pop();
          nl.release(h.id);
        }
        if (step % 53 === 0 || step > 9_950) {
          const idOf = new Map<string, number>();
          for (const h of held) {
            const got = nl.list(h.id);
            if (got === null || key(got) !== key(h.list)) {
              expect.fail(`step ${step}: id ${h.id} should be [${key(h.list)}], is [${got === null ? 'freed' : key(got)}]`);
            }
            const prev = idOf.get(key(h.list));
            if (prev !== undefined && prev !== h.id) expect.fail(`step ${step}: [${key(h.list)}] has ids ${prev} and ${h.id}`);
            idOf.set(key(h.list), h.id);
          }
          idOf.delete('');
          expect(nl.size).toBe(idOf.size);
        }
      }
      // Releasing everything leaves nothing.
      for (const h of held) nl.release(h.id);
      expect(nl.size).toBe(0);
    });
  }
});

describe('unused entries kept for a while', () => {
  it('keeps up to idleMax unused names, then drops the ones still unused', () => {
    const qn = new QueueNames(2);
    const a = qn.acquire('a');
    const b = qn.acquire('b');
    qn.release(a);
    qn.release(b);
    expect(qn.size).toBe(0);
    expect(qn.name(a)).toBe('a'); // kept
    expect(qn.acquire('a')).toBe(a); // the same id again
    const c = qn.acquire('c');
    qn.release(c); // a third entry set aside (a, b, c): the unused ones go, a (in use again) stays
    expect(qn.name(b)).toBeNull();
    expect(qn.name(c)).toBeNull();
    expect(qn.name(a)).toBe('a');
    expect(qn.size).toBe(1);
    expect(qn.acquire('b')).not.toBe(a);
  });

  it('keeps unused node lists, and acquireWithNode still answers right after they go', () => {
    const nl = new NodeLists(1);
    const a = nl.acquire(['A']);
    const ab = nl.acquireWithNode(a, 'B');
    nl.release(a); // [A] kept unused
    expect(nl.list(a)).toEqual(['A']);
    nl.release(ab); // a second unused list: both go
    expect(nl.size).toBe(0);
    const c = nl.acquire(['C']);
    expect(nl.list(c)).toEqual(['C']);
    const cb = nl.acquireWithNode(c, 'B');
    expect(nl.list(cb)).toEqual(['C', 'B']);
  });
});

