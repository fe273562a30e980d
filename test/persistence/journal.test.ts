// The journal writer against a Redis whose answers the test hands out one by
// one: writes of successive turns go out without waiting for each other
// (up to MAX_IN_FLIGHT), replies wait for the write that holds their
// changes, and a failed write holds back every write sent after it.
import { describe, it, expect, vi } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { Journal, MAX_IN_FLIGHT, COALESCE_MS, type JournalConnect } from '../../src/persistence/journal.js';
import { NodeKeys } from '../../src/persistence/keys.js';
import type { RedisHealth } from '../../src/persistence/health.js';
import type { PersistenceHost } from '../../src/persistence/host.js';

interface Call {
  /** The ZADD's arguments after the command name. */
  args: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

function setup() {
  const calls: Call[] = [];
  /** Every command sent on the connection, in order: the writes' names and the extra commands' arguments. */
  const sent: string[][] = [];
  const failures: Error[] = [];
  const health = {
    enabled: true,
    epoch: 1,
    failure: null as string | null,
    resyncWanted: false,
    lastWriteStatus: 'ok',
    keys: new NodeKeys('test:', 'a'.repeat(40)),
    redis: {},
    fail(e: Error) {
      failures.push(e);
      this.failure = e.message;
      this.resyncWanted = true;
    },
  };
  const host = { store: { clock: new FakeClock() }, log: { warning() {} }, repliesReleased() {} };
  // A connection whose replies the test hands out; as on a real one, an
  // error reply fails the connection, and nothing after it is confirmed.
  const connect: JournalConnect = (events) => {
    const link = {
      closed: false,
      write(resp: Buffer) {
        const args = Number(/^\*(\d+)/.exec(resp.latin1Slice(0, 12))![1]) - 1;
        sent.push(['write', /^\*\d+\r\n\$\d+\r\n(\w+)/.exec(resp.latin1Slice(0, 40))![1]!]);
        calls.push({
          args,
          resolve: () => {
            if (!link.closed) events.confirmed();
          },
          reject: (e) => {
            if (link.closed) return;
            link.closed = true;
            events.failed(e);
          },
        });
      },
      command(args: readonly (string | number | Buffer)[]) {
        sent.push(args.map((a) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a))));
      },
      close() {
        link.closed = true;
      },
    };
    return link;
  };
  const journal = new Journal(
    host as unknown as PersistenceHost,
    health as unknown as RedisHealth,
    { capturing: () => true, written: () => {} },
    connect,
  );
  /** One event-loop turn of a write command: a record, and the gate its reply waits for. */
  const turn = (id: string) => {
    journal.record(id);
    journal.flush();
    const gate = journal.replyGate();
    return { gate, done: () => journal.isReleased(gate) };
  };
  return { calls, sent, failures, journal, turn, health };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('journal writes in flight', () => {
  it('sends each turn at once and releases replies in order as Redis confirms', async () => {
    const { calls, turn } = setup();
    const a = turn('D-1');
    const b = turn('D-2');
    const c = turn('D-3');
    // Three writes outstanding before Redis answered any.
    expect(calls.length).toBe(3);
    calls[0]!.resolve();
    await settle();
    expect([a.done(), b.done(), c.done()]).toEqual([true, false, false]);
    calls[1]!.resolve();
    calls[2]!.resolve();
    await settle();
    expect([b.done(), c.done()]).toEqual([true, true]);
  });

  it(`keeps at most ${MAX_IN_FLIGHT} writes outstanding, gathering the rest into the next one`, async () => {
    const { calls, turn } = setup();
    const turns = [];
    for (let i = 0; i < MAX_IN_FLIGHT + 5; i++) turns.push(turn(`D-${i}`));
    expect(calls.length).toBe(MAX_IN_FLIGHT);
    calls[0]!.resolve();
    await settle();
    // The five waiting records went out together in one write.
    expect(calls.length).toBe(MAX_IN_FLIGHT + 1);
    expect(calls[MAX_IN_FLIGHT]!.args).toBe(3); // key, seq, one entry of 5 records
    for (const c of calls.slice(1)) c.resolve();
    await settle();
    expect(turns.every((t) => t.done())).toBe(true);
  });

  it('holds the replies of a failed write and of every write after it until the resync', async () => {
    const { calls, failures, journal, turn } = setup();
    const a = turn('D-1');
    const b = turn('D-2');
    const c = turn('D-3');
    calls[0]!.resolve();
    calls[1]!.reject(new Error('MISCONF no disk'));
    await settle();
    // A later write that Redis took does not let its reply overtake the failure.
    calls[2]!.resolve();
    await settle();
    expect(failures.length).toBe(1);
    expect([a.done(), b.done(), c.done()]).toEqual([true, false, false]);
    journal.releaseHeld(); // the resync snapshot committed
    await settle();
    expect([b.done(), c.done()]).toEqual([true, true]);
  });
});

describe('when records go out', () => {
  it('writes records no reply waits for together, within COALESCE_MS', async () => {
    vi.useFakeTimers();
    try {
      const { calls, journal } = setup();
      journal.record('D-1');
      await vi.advanceTimersByTimeAsync(COALESCE_MS / 2);
      journal.record('D-2');
      expect(calls.length).toBe(0);
      await vi.advanceTimersByTimeAsync(COALESCE_MS);
      // One ZADD: key, seq, one entry holding both records.
      expect(calls.map((c) => c.args)).toEqual([3]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('sends at the end of the turn once a reply waits, with the records before it', async () => {
    const { calls, journal } = setup();
    journal.record('D-1');
    journal.record('D-2');
    const gate = journal.replyGate();
    expect(gate).toBeGreaterThan(0);
    await settle();
    expect(calls.length).toBe(1);
    expect(journal.isReleased(gate)).toBe(false);
    calls[0]!.resolve();
    expect(journal.isReleased(gate)).toBe(true);
  });
});

describe('extra commands (a queue policy HSET)', () => {
  it('goes before the ZADD of the same write and shares its gate', async () => {
    const { calls, sent, journal } = setup();
    const captured = journal.captured;
    journal.record('D-1');
    journal.recordCommand((keys) => ['HSET', keys.policies, 'q', 'rec']);
    expect(journal.captured).toBe(captured + 2);
    const gate = journal.replyGate();
    await settle();
    expect(sent).toEqual([
      ['HSET', `test:{${'a'.repeat(40)}}:policies`, 'q', 'rec'],
      ['write', 'ZADD'],
    ]);
    expect(calls.length).toBe(1);
    expect(journal.isReleased(gate)).toBe(false);
    calls[0]!.resolve();
    expect(journal.isReleased(gate)).toBe(true);
  });

  it('is the write itself when no record is pending, and its reply releases the gate', async () => {
    const { calls, sent, journal } = setup();
    journal.recordCommand((keys) => ['HSET', keys.policies, 'q', 'rec']);
    const gate = journal.replyGate();
    expect(gate).toBeGreaterThan(0);
    await settle();
    expect(sent).toEqual([['write', 'HSET']]);
    expect(calls.map((c) => c.args)).toEqual([3]);
    expect(journal.isReleased(gate)).toBe(false);
    calls[0]!.resolve();
    expect(journal.isReleased(gate)).toBe(true);
  });

  it('is dropped for a resync (the snapshot rewrites the policies), its reply held until it commits', async () => {
    const { calls, journal } = setup();
    journal.recordCommand((keys) => ['HSET', keys.policies, 'q', 'rec']);
    const gate = journal.replyGate();
    journal.holdPending();
    await settle();
    journal.flush();
    expect(calls.length).toBe(0);
    expect(journal.pendingRecords).toBe(0);
    expect(journal.isReleased(gate)).toBe(false);
    journal.releaseHeld();
    expect(journal.isReleased(gate)).toBe(true);
  });
});
