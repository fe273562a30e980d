// Values many jobs share, kept once and named in job records by a small
// number: queue names, and node lists (the nodes that may have a copy of a
// job; with replication most jobs share a handful of lists). Each entry
// counts the jobs that use it. An entry no job uses is kept a while (up to
// `idleMax` such entries): a queue that drains and fills again, or the
// one-node list every replicated job passes through on its way to two
// nodes, would otherwise be dropped and made again for every job.

/** A list of node IDs. Treated as immutable so jobs can share one array. */
export type NodeIdList = readonly string[];

/** Ids fit in 24 bits of a job record (see records.ts). */
const MAX_ID = 0xffffff;

function newId(free: number[], length: number, what: string): number {
  const id = free.pop() ?? length;
  if (id > MAX_ID) throw new RangeError(`too many different ${what} in use (at most ${MAX_ID})`);
  return id;
}

/** Ids whose users all went, kept until there are too many of them. */
class IdleIds {
  private readonly ids: number[] = [];
  constructor(private readonly max: number) {}

  /** Keeps `id` unused for now, dropping every kept one still unused once there are more than `max`. */
  keep(id: number, drop: (id: number) => void, unused: (id: number) => boolean): void {
    if (this.max === 0) return drop(id);
    this.ids.push(id);
    if (this.ids.length <= this.max) return;
    // Entries used again meanwhile (or listed twice) stay.
    for (const i of this.ids) if (unused(i)) drop(i);
    this.ids.length = 0;
  }
}

/** Default number of unused entries kept (see the top of this file). */
export const IDLE_MAX = 1024;

/** Queue names by id. Id 0 is "no queue" (a dummy ack). */
export class QueueNames {
  private readonly ids = new Map<string, number>();
  private readonly names: (string | null)[] = [null];
  private readonly refs: number[] = [0];
  private readonly free: number[] = [];
  private readonly idle: IdleIds;
  private inUse = 0;

  constructor(idleMax = IDLE_MAX) {
    this.idle = new IdleIds(idleMax);
  }

  /** The id of `name`, counting one more user. */
  acquire(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = newId(this.free, this.names.length, 'queue names');
      this.names[id] = name;
      this.refs[id] = 0;
      this.ids.set(name, id);
    }
    if (this.refs[id]!++ === 0) this.inUse++;
    return id;
  }

  release(id: number): void {
    if (id === 0) return;
    if (--this.refs[id]! > 0) return;
    this.inUse--;
    this.idle.keep(id, this.drop, this.unused);
  }

  name(id: number): string | null {
    return this.names[id] ?? null;
  }

  /** The id of a name in use (or idle), 0 when none. */
  idOf(name: string): number {
    return this.ids.get(name) ?? 0;
  }

  /** Names in use. */
  get size(): number {
    return this.inUse;
  }

  private readonly unused = (id: number): boolean => this.refs[id] === 0 && this.names[id] !== null;

  private readonly drop = (id: number): void => {
    this.ids.delete(this.names[id]!);
    this.names[id] = null;
    this.free.push(id);
  };
}

/** Node lists by id. Id 0 is the empty list, which always exists. */
export class NodeLists {
  private readonly ids = new Map<string, number>();
  private readonly lists: (NodeIdList | null)[] = [[]];
  private readonly refs: number[] = [0];
  private readonly free: number[] = [];
  private readonly idle: IdleIds;
  private inUse = 0;

  constructor(idleMax = IDLE_MAX) {
    this.idle = new IdleIds(idleMax);
  }
  /** list id -> node ID -> id of the list with that node added. */
  private readonly added = new Map<number, Map<string, number>>();
  /** The last array acquire() looked up, its id, and the list kept for it then. */
  private lastArray: NodeIdList | null = null;
  private lastId = 0;
  private lastCopy: NodeIdList | null = null;

  /** The id of a list with these nodes, in this order, counting one more user. */
  acquire(list: NodeIdList): number {
    // Most jobs come with the same array (ADDJOB's list of this node alone).
    let id: number;
    if (list === this.lastArray && this.lists[this.lastId] === this.lastCopy) id = this.lastId;
    else {
      id = this.idOf(list);
      this.lastArray = list;
      this.lastId = id;
      this.lastCopy = this.lists[id]!;
    }
    this.count(id);
    return id;
  }

  private count(id: number): void {
    if (id !== 0 && this.refs[id]!++ === 0) this.inUse++;
  }

  /**
   * acquire() of list `id` with `node` appended (the list itself if it has
   * the node). Jobs of one list gain the same nodes, so the answer is cached.
   */
  acquireWithNode(id: number, node: string): number {
    const list = this.lists[id]!;
    let byNode = this.added.get(id);
    let next = byNode?.get(node);
    // A cached id may have been freed and reused for another list.
    if (next === undefined || !this.isListPlus(next, list, node)) {
      if (list.includes(node)) next = id;
      else next = this.idOf([...list, node]);
      if (byNode === undefined) this.added.set(id, (byNode = new Map()));
      byNode.set(node, next);
    }
    this.count(next);
    return next;
  }

  release(id: number): void {
    if (id === 0) return;
    if (--this.refs[id]! > 0) return;
    this.inUse--;
    this.idle.keep(id, this.drop, this.unused);
  }

  private readonly unused = (id: number): boolean => this.refs[id] === 0 && this.lists[id] !== null;

  private readonly drop = (id: number): void => {
    this.ids.delete(this.lists[id]!.join(' '));
    this.lists[id] = null;
    this.added.delete(id);
    this.free.push(id);
  };

  private idOf(list: NodeIdList): number {
    if (list.length === 0) return 0;
    const key = list.join(' ');
    let id = this.ids.get(key);
    if (id === undefined) {
      id = newId(this.free, this.lists.length, 'node lists');
      this.lists[id] = Object.freeze([...list]);
      this.refs[id] = 0;
      this.ids.set(key, id);
    }
    return id;
  }

  /** Whether list `id` is `list` itself (already holding `node`) or `list` plus `node`. */
  private isListPlus(id: number, list: NodeIdList, node: string): boolean {
    const l = this.lists[id];
    if (l === null || l === undefined) return false;
    if (l === list) return list.includes(node);
    if (l.length !== list.length + 1 || l[list.length] !== node) return false;
    for (let i = 0; i < list.length; i++) if (l[i] !== list[i]) return false;
    return true;
  }

  list(id: number): NodeIdList {
    return this.lists[id]!;
  }

  /** Lists in use. */
  get size(): number {
    return this.inUse;
  }
}
