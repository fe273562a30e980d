// The nodes file (cluster-config-file): the node table as CLUSTER NODES
// prints it, so a restarted node keeps its ID and finds its peers again.
// Loaded once at start; saved atomically, at most once per event when
// gossip or failure detection changed the table (scheduleSave).
import { readFileSync, writeFileSync, renameSync, existsSync, openSync, fsyncSync, closeSync } from 'node:fs';
import type { ClusterHost } from './host.js';
import type { NodeTable } from './node-table.js';
import { ClusterNode, NodeFlag, NODE_FLAG_NAMES } from './cluster-node.js';

export class NodesFile {
  private saveScheduled = false;

  constructor(
    private readonly host: ClusterHost,
    private readonly table: NodeTable,
  ) {}

  private get file(): string {
    return this.host.config.str('cluster-config-file');
  }

  /** Fills the node table from the file; false when there is none (or it is empty). */
  load(): boolean {
    const file = this.file;
    if (!existsSync(file)) return false;
    const text = readFileSync(file, 'utf8');
    if (text.trim() === '') return false;
    const nodes = new Map<string, ClusterNode>();
    let me: ClusterNode | null = null;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const argv = line.trim().split(/\s+/);
      if (argv[0] === 'vars') continue;
      if (argv.length !== 6 || !/^[0-9a-f]{40}$/.test(argv[0]!)) {
        throw new Error(`Unrecoverable error: corrupted cluster config file ${file}: '${line}'`);
      }
      const n = new ClusterNode(argv[0]!, 0);
      const at = argv[1]!.lastIndexOf(':');
      if (at < 0) throw new Error(`Unrecoverable error: corrupted cluster config file ${file}: '${line}'`);
      n.ip = argv[1]!.slice(0, at);
      n.port = Number(argv[1]!.slice(at + 1)) || 0;
      for (const f of argv[2]!.split(',')) {
        const flag = NODE_FLAG_NAMES.find(([, name]) => name === f)?.[0];
        if (flag !== undefined) n.flags |= flag;
        else if (f !== 'noflags') throw new Error(`Unknown flag '${f}' in cluster config file ${file}`);
      }
      if (n.has(NodeFlag.MYSELF)) me = n;
      if (n.has(NodeFlag.FAIL)) n.failTime = Date.now();
      // A restarted node expects answers from everyone: failure detection
      // starts over rather than trusting old timestamps.
      if (Number(argv[3])) n.pingSent = Date.now();
      if (Number(argv[4])) n.pongReceived = Date.now();
      nodes.set(n.id, n);
    }
    if (!me) throw new Error(`Unrecoverable error: cluster config file ${file} has no 'myself' node`);
    const table = this.table;
    table.nodes.clear();
    for (const [id, n] of nodes) table.nodes.set(id, n);
    table.myself = me;
    this.host.log.notice(`Node configuration loaded, I'm ${me.id}`);
    return true;
  }

  /** Writes the nodes file atomically (temporary file, fsync, rename). */
  save(): boolean {
    this.saveScheduled = false;
    const file = this.file;
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, this.table.nodesDescription(true));
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, file);
      return true;
    } catch (e) {
      this.host.log.warning(`Can't update cluster config file ${file}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Saves the nodes file once, after the current event. */
  scheduleSave(): void {
    if (this.saveScheduled) return;
    this.saveScheduled = true;
    setImmediate(() => {
      if (this.saveScheduled) this.save();
    });
  }

  /** At shutdown: a save still scheduled is done now. */
  saveIfScheduled(): void {
    if (this.saveScheduled) this.save();
  }
}
