// "Follow producers": a consumer that mostly receives jobs created on another
// node (job IDs carry 8 hex characters of the creating node's ID) can fetch
// them there directly, saving the nodes the work of moving jobs around.
import { jobNodePrefix } from './job-id.js';

export interface FollowProducersOptions {
  /** Jobs observed before each decision. Default 100. */
  window?: number;
  /** Share of those jobs that must come from one other node to move there. Default 0.75. */
  threshold?: number;
}

export class ProducerTracker {
  private readonly window: number;
  private readonly threshold: number;
  private counts = new Map<string, number>();
  private total = 0;

  constructor(options: FollowProducersOptions = {}) {
    this.window = Math.max(1, options.window ?? 100);
    this.threshold = options.threshold ?? 0.75;
  }

  /**
   * Counts the creating nodes of received jobs; once a window is full,
   * returns the node prefix to move to, if one other node dominates.
   */
  observe(jobIds: string[], currentNodeId: string | undefined): string | undefined {
    for (const id of jobIds) {
      const prefix = jobNodePrefix(id);
      if (prefix === undefined) continue;
      this.counts.set(prefix, (this.counts.get(prefix) ?? 0) + 1);
      this.total++;
    }
    if (this.total < this.window) return undefined;
    let top: string | undefined;
    let topCount = 0;
    for (const [p, c] of this.counts) {
      if (c > topCount) {
        top = p;
        topCount = c;
      }
    }
    const total = this.total;
    this.counts = new Map();
    this.total = 0;
    if (top === undefined || currentNodeId?.startsWith(top)) return undefined;
    return topCount / total >= this.threshold ? top : undefined;
  }
}
