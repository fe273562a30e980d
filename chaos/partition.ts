// Network partitions between nodes on their own loopback addresses: an
// iptables chain of this run, hooked into OUTPUT (loopback packets pass it),
// drops every packet between the two sides, both ways. Clients reach the
// nodes from 127.0.0.1 and are not cut off, as in a partition between
// racks that leaves the application servers connected to both. Needs root
// and Debian's iptables; the chain is removed when the run ends, even on
// Ctrl-C.
import { execFileSync } from 'node:child_process';

function iptables(...args: string[]): void {
  execFileSync('iptables', ['-w', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class Partitions {
  private active = false;
  private constructor(readonly chain: string) {}

  /** Creates the run's chain; throws with the reason when iptables cannot be used here. */
  static create(): Partitions {
    const p = new Partitions(`DQCHAOS${process.pid}`);
    try {
      iptables('-N', p.chain);
    } catch (e) {
      const why = String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim();
      throw new Error(`partitions need iptables as root (Debian: apt-get install iptables): ${why}`);
    }
    iptables('-I', 'OUTPUT', '-j', p.chain);
    process.once('exit', p.destroy);
    return p;
  }

  /** Cuts `side` off from `others` (addresses), both ways. */
  split(side: readonly string[], others: readonly string[]): void {
    this.heal();
    for (const a of side) {
      for (const b of others) {
        iptables('-A', this.chain, '-s', a, '-d', b, '-j', 'DROP');
        iptables('-A', this.chain, '-s', b, '-d', a, '-j', 'DROP');
      }
    }
    this.active = true;
  }

  heal(): void {
    if (!this.active) return;
    iptables('-F', this.chain);
    this.active = false;
  }

  readonly destroy = (): void => {
    process.off('exit', this.destroy);
    for (const args of [['-D', 'OUTPUT', '-j', this.chain], ['-F', this.chain], ['-X', this.chain]]) {
      try {
        iptables(...args);
      } catch {
        // Already gone.
      }
    }
    this.active = false;
  };
}
