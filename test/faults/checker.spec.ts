/**
 * The checker's proofs: crafted histories that must be reported (one per anomaly the suite exists to find)
 * and ones that must pass (the legal behaviours of a linearizable store with idempotent retries), then a
 * seeded property test: histories of a simulated linearizable store all pass, and mutations of them that
 * break a guarantee are all caught.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, checkFile, checkLinearizable } from './checker';
import {
  AnomalyKind,
  AppendOp,
  Expected,
  FinalEvent,
  History,
  Op,
  Outcome,
  ReadOp,
  SubscriberLog,
  Verdict,
} from './history';

// ---- builders ---------------------------------------------------------------------------------------------

let nextOpId = 1;

function append(
  stream: string,
  eventIds: string[],
  invokeMs: number,
  completeMs: number,
  outcome: Outcome,
  more: Partial<AppendOp> = {},
): AppendOp {
  return {
    kind: 'append',
    id: nextOpId++,
    client: more.client ?? nextOpId,
    node: 'n1',
    stream,
    eventIds,
    expected: 'any',
    invokeMs,
    completeMs,
    outcome,
    ...more,
  };
}

/** An ok append with the coordinates a 201 would carry. */
function ok(
  stream: string,
  eventIds: string[],
  invokeMs: number,
  completeMs: number,
  firstRevision: number,
  firstPosition: number,
  more: Partial<AppendOp> = {},
): AppendOp {
  return append(stream, eventIds, invokeMs, completeMs, 'ok', {
    firstRevision,
    lastRevision: firstRevision + eventIds.length - 1,
    firstPosition,
    lastPosition: firstPosition + eventIds.length - 1,
    ...more,
  });
}

function conflict(
  stream: string,
  eventIds: string[],
  invokeMs: number,
  completeMs: number,
  expected: Expected,
  actualRevision: number,
): AppendOp {
  return append(stream, eventIds, invokeMs, completeMs, 'conflict', { expected, actualRevision });
}

function read(
  stream: string,
  invokeMs: number,
  completeMs: number,
  eventIds: string[],
  outcome: Outcome = 'ok',
) {
  const op: ReadOp = {
    kind: 'read',
    id: nextOpId++,
    client: 100 + nextOpId,
    node: 'n2',
    stream,
    invokeMs,
    completeMs,
    outcome,
  };
  if (outcome === 'ok') op.eventIds = eventIds;
  return op;
}

/** `$all` from [stream, id] pairs in position order, with gapless positions and per-stream revisions. */
function all(...events: [string, string][]): FinalEvent[] {
  const rev = new Map<string, number>();
  return events.map(([stream, id], position) => {
    const revision = rev.get(stream) ?? 0;
    rev.set(stream, revision + 1);
    return { id, stream, revision, position };
  });
}

function subscriberOf(events: FinalEvent[], subscriber = 1): SubscriberLog {
  return { subscriber, node: 'n3', received: events.map((e) => ({ position: e.position, id: e.id })) };
}

/** A whole history: three nodes with the same `$all`, one subscriber that saw all of it, every append's ids sent. */
function history(ops: Op[], final: FinalEvent[], more: Partial<History> = {}): History {
  const sent = new Set<string>();
  for (const op of ops) if (op.kind === 'append') op.eventIds.forEach((id) => sent.add(id));
  return {
    ops,
    sentEventIds: [...sent],
    finalAll: { n1: clone(final), n2: clone(final), n3: clone(final) },
    subscribers: [subscriberOf(final)],
    ...more,
  };
}

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x)) as T;
}

function kinds(v: Verdict): AnomalyKind[] {
  return [...new Set(v.anomalies.map((a) => a.kind))].sort();
}

function expectValid(h: History): Verdict {
  const v = check(h);
  expect(v.anomalies).toEqual([]);
  expect(v.valid).toBe(true);
  return v;
}

function expectReported(h: History, kind: AnomalyKind): Verdict {
  const v = check(h);
  expect(v.valid).toBe(false);
  expect(kinds(v)).toContain(kind);
  return v;
}

// ---- must be reported -------------------------------------------------------------------------------------

describe('checker: histories that must be reported', () => {
  it('a stale read: misses an append acknowledged before the read began', () => {
    const a = ok('s', ['a'], 0, 10, 0, 0);
    const r = read('s', 20, 30, []);
    const v = expectReported(history([a, r], all(['s', 'a'])), 'not-linearizable');
    const anomaly = v.anomalies.find((x) => x.kind === 'not-linearizable');
    expect(anomaly?.stream).toBe('s');
    expect(anomaly?.ops).toContain(r.id);
    expect(anomaly?.message).toContain(`read #${r.id}`);
    expect(anomaly?.message).toContain('stale');
  });

  it('a stale read on its own stream while other streams are fine (streams are checked separately)', () => {
    const ops = [ok('s', ['a'], 0, 10, 0, 0), ok('t', ['b'], 0, 10, 0, 1), read('t', 20, 30, ['b'])];
    const stale = read('s', 20, 30, []);
    const v = expectReported(history([...ops, stale], all(['s', 'a'], ['t', 'b'])), 'not-linearizable');
    expect(v.anomalies.map((a) => a.stream)).toEqual(['s']);
    expect(v.streams.map((s) => s.stream)).toEqual(['s', 't']);
  });

  it('non-monotonic reads: a read that began after another ended sees an older state', () => {
    const a = append('s', ['a'], 0, 100, 'unknown');
    const ops = [a, read('s', 5, 10, ['a']), read('s', 12, 18, [])];
    expectReported(history(ops, all(['s', 'a'])), 'not-linearizable');
  });

  it('a read that shows an append invoked only after the read completed', () => {
    const ops = [read('s', 0, 10, ['a']), ok('s', ['a'], 20, 30, 0, 0)];
    expectReported(history(ops, all(['s', 'a'])), 'not-linearizable');
  });

  it('a lost acknowledged write', () => {
    const a = ok('s', ['a'], 0, 10, 0, 0);
    const b = ok('s', ['b'], 20, 30, 1, 1);
    const v = expectReported(history([a, b], all(['s', 'a'])), 'lost-acknowledged');
    expect(v.anomalies.find((x) => x.kind === 'lost-acknowledged')?.ops).toEqual([b.id]);
    // The final contents cannot come out of the history either.
    expect(kinds(v)).toContain('not-linearizable');
  });

  it('a lost acknowledged write is reported even without the final reads', () => {
    const h = history([ok('s', ['a'], 0, 10, 0, 0)], []);
    expect(kinds(check(h, { finalReads: false }))).toEqual(['lost-acknowledged']);
  });

  it('an acknowledged write at other coordinates than the 201 said', () => {
    const a = ok('s', ['a'], 0, 10, 0, 0);
    const b = ok('s', ['b'], 0, 10, 0, 1);
    const v = expectReported(history([a, b], all(['s', 'a'], ['s', 'b'])), 'wrong-coordinates');
    expect(v.anomalies.find((x) => x.kind === 'wrong-coordinates')?.ops).toEqual([b.id]);
  });

  it('a duplicated retry: the events of a retried append committed twice', () => {
    const first = append('s', ['a', 'b'], 0, 10, 'unknown');
    const retry = ok('s', ['a', 'b'], 20, 30, 0, 0, { retryOf: first.id });
    const final = all(['s', 'a'], ['s', 'b'], ['s', 'a'], ['s', 'b']);
    const v = expectReported(history([first, retry], final), 'duplicate');
    expect(kinds(v)).toContain('not-linearizable');
  });

  it('a duplicated retry: a re-send answered with new coordinates instead of the original ones', () => {
    const first = ok('s', ['a'], 0, 10, 0, 0);
    const retry = ok('s', ['a'], 20, 30, 1, 1, { retryOf: first.id });
    const v = check(history([first, retry], all(['s', 'a'])));
    expect(kinds(v)).toEqual(['not-linearizable', 'wrong-coordinates']);
  });

  it('a wrong conflict: 409 while the expected revision held', () => {
    const a = ok('s', ['a'], 0, 10, 0, 0);
    const c = conflict('s', ['b'], 20, 30, 0, 0);
    const v = expectReported(history([a, c], all(['s', 'a'])), 'not-linearizable');
    expect(v.anomalies[0].message).toContain(`append #${c.id}`);
  });

  it('a wrong conflict: 409 for `any`, for `no_stream` on no stream, for `stream_exists` on a stream', () => {
    expectReported(history([conflict('s', ['a'], 0, 10, 'any', -1)], []), 'not-linearizable');
    expectReported(history([conflict('s', ['a'], 0, 10, 'no_stream', -1)], []), 'not-linearizable');
    const exists = [ok('s', ['a'], 0, 10, 0, 0), conflict('s', ['b'], 20, 30, 'stream_exists', 0)];
    expectReported(history(exists, all(['s', 'a'])), 'not-linearizable');
  });

  it('a wrong conflict: the actualRevision is not the last revision at any possible moment', () => {
    const ops = [ok('s', ['a'], 0, 10, 0, 0), conflict('s', ['b'], 20, 30, 5, 3)];
    expectReported(history(ops, all(['s', 'a'])), 'not-linearizable');
  });

  it('a wrong conflict: a retry of a committed append is refused instead of answered with its coordinates', () => {
    // The server checks idempotency before the expected revision (state-machine.ts applyCommand).
    const first = ok('s', ['a'], 0, 10, 0, 0, { expected: 'no_stream' });
    const retry = conflict('s', ['a'], 20, 30, 'no_stream', 0);
    expectReported(history([first, retry], all(['s', 'a'])), 'not-linearizable');
  });

  it('a gap in positions', () => {
    const final = all(['s', 'a'], ['s', 'b']);
    final[1].position = 2;
    const ops = [ok('s', ['a'], 0, 10, 0, 0), ok('s', ['b'], 20, 30, 1, 2)];
    const v = expectReported(history(ops, final), 'gap');
    expect(kinds(v)).toEqual(['gap']);
  });

  it("a gap in a stream's revisions", () => {
    const final = all(['s', 'a'], ['t', 'b'], ['s', 'c']);
    final[2].revision = 2;
    const ops = [ok('s', ['a'], 0, 10, 0, 0), ok('t', ['b'], 20, 30, 0, 1), ok('s', ['c'], 40, 50, 2, 2)];
    const v = expectReported(history(ops, final), 'gap');
    expect(v.anomalies.find((a) => a.kind === 'gap')?.stream).toBe('s');
  });

  it('nodes whose $all differ', () => {
    const final = all(['s', 'a'], ['s', 'b']);
    const h = history([ok('s', ['a'], 0, 10, 0, 0), ok('s', ['b'], 20, 30, 1, 1)], final);
    h.finalAll.n3.pop();
    const v = expectReported(h, 'nodes-differ');
    expect(kinds(v)).toEqual(['nodes-differ']);
    expect(v.anomalies[0].message).toContain('n3');
  });

  it('a committed event the workload never sent', () => {
    const h = history([ok('s', ['a'], 0, 10, 0, 0)], all(['s', 'a'], ['s', 'x']));
    const v = expectReported(h, 'never-sent');
    expect(v.anomalies.find((a) => a.kind === 'never-sent')?.message).toContain('x');
  });

  describe('a subscriber', () => {
    const final = all(['s', 'a'], ['s', 'b'], ['t', 'c'], ['s', 'd']);
    const ops = [
      ok('s', ['a'], 0, 10, 0, 0),
      ok('s', ['b'], 20, 30, 1, 1),
      ok('t', ['c'], 40, 50, 0, 2),
      ok('s', ['d'], 60, 70, 2, 3),
    ];
    const withReceived = (positions: number[], ids?: string[], from?: number | null): History =>
      history(ops, final, {
        subscribers: [
          subscriberOf(final, 1),
          {
            subscriber: 2,
            node: 'n2',
            ...(from !== undefined ? { from } : {}),
            received: positions.map((p, i) => ({ position: p, id: ids?.[i] ?? final[p].id })),
          },
        ],
      });

    it('that skipped an event', () => {
      const v = expectReported(withReceived([0, 1, 3]), 'subscriber');
      expect(kinds(v)).toEqual(['subscriber']);
      expect(v.anomalies[0].message).toContain('subscriber 2');
      expect(v.anomalies[0].message).toContain('skipping 2');
    });

    it('that received an event twice', () => {
      const v = expectReported(withReceived([0, 1, 1, 2, 3]), 'subscriber');
      expect(v.anomalies[0].message).toContain('position 1 again (duplicate)');
    });

    it('that received events out of order', () => {
      const v = expectReported(withReceived([0, 2, 1, 3]), 'subscriber');
      expect(v.anomalies[0].message).toContain('position 1 after 2 (out of order)');
    });

    it('that stopped before the end of $all', () => {
      expectReported(withReceived([0, 1, 2]), 'subscriber');
    });

    it('that received another id than $all holds at a position', () => {
      expectReported(withReceived([0, 1, 2, 3], ['a', 'b', 'd', 'c']), 'subscriber');
    });

    it('that missed the first event it asked for', () => {
      expectReported(withReceived([1, 2, 3]), 'subscriber');
      expectReported(withReceived([3], undefined, 2), 'subscriber');
    });

    it('that subscribed from a later position, or to new events only, and saw the rest in order is fine', () => {
      expectValid(withReceived([2, 3], undefined, 2));
      expectValid(withReceived([1, 2, 3], undefined, null));
    });
  });

  it('a search that runs out of budget is never a pass', () => {
    // Many concurrent unknown appends and reads that match no state: the search must explore before failing.
    const ops: Op[] = [];
    for (let i = 0; i < 12; i++) ops.push(append('s', [`u${i}`], 0, 1, 'unknown'));
    // Two overlapping reads, so neither follows everything else and no unknown append can be pruned.
    ops.push(read('s', 0, 100, ['nope']), read('s', 0, 100, []));
    // All of them landed, and without the final read nothing pins their order: many states to try.
    const landed = all(...Array.from({ length: 12 }, (_, i): [string, string] => ['s', `u${11 - i}`]));
    const v = check(history(ops, landed), { maxStatesPerStream: 50, finalReads: false });
    expect(v.valid).toBe(false);
    expect(v.anomalies[0].kind).toBe('not-linearizable');
    expect(v.anomalies[0].message).toContain('gave up');
    expect(v.streams[0].states).toBeGreaterThan(50);
  });
});

// ---- must pass -------------------------------------------------------------------------------------------

describe('checker: histories that must pass', () => {
  it('concurrent overlapping appends, committed in either order', () => {
    for (const order of [
      ['a', 'b'],
      ['b', 'a'],
    ]) {
      const rev = (id: string) => order.indexOf(id);
      const a = ok('s', ['a'], 0, 20, rev('a'), rev('a'));
      const b = ok('s', ['b'], 5, 15, rev('b'), rev('b'));
      expectValid(history([a, b], all(...order.map((id): [string, string] => ['s', id]))));
    }
  });

  it('an unknown append that took effect, and one that did not', () => {
    const u = () => append('s', ['u', 'v'], 0, 10, 'unknown');
    expectValid(history([u(), read('s', 20, 30, ['u', 'v'])], all(['s', 'u'], ['s', 'v'])));
    expectValid(history([u(), read('s', 20, 30, [])], []));
  });

  it('an unknown append that took effect after the client gave up and after a later read', () => {
    const ops = [append('s', ['u'], 0, 10, 'unknown'), read('s', 20, 30, []), ok('s', ['w'], 40, 50, 0, 0)];
    expectValid(history(ops, all(['s', 'w'], ['s', 'u'])));
  });

  it('a retry after an unknown returns the original coordinates even though its expectation no longer holds', () => {
    const first = append('s', ['a', 'b'], 0, 10, 'unknown', { expected: 'no_stream' });
    const other = ok('s', ['c'], 12, 14, 2, 2);
    const retry = ok('s', ['a', 'b'], 20, 30, 0, 0, { expected: 'no_stream', retryOf: first.id });
    expectValid(history([first, other, retry], all(['s', 'a'], ['s', 'b'], ['s', 'c'])));
  });

  it('a retry after an unknown that never landed writes the events itself, once', () => {
    const first = append('s', ['a'], 0, 10, 'unknown', { expected: 'no_stream' });
    const retry = ok('s', ['a'], 20, 30, 0, 0, { expected: 'no_stream', retryOf: first.id });
    expectValid(history([first, retry], all(['s', 'a'])));
  });

  it('correct conflicts, including one concurrent with the append that made it', () => {
    const ops = [
      ok('s', ['a'], 0, 10, 0, 0, { expected: 'no_stream' }),
      conflict('s', ['b'], 20, 30, 'no_stream', 0),
      conflict('s', ['c'], 20, 30, 5, 0),
      conflict('t', ['d'], 20, 30, 'stream_exists', -1),
      conflict('t', ['e'], 20, 30, 0, -1),
      ok('s', ['f'], 40, 60, 1, 1, { expected: 0 }),
      conflict('s', ['g'], 45, 55, 0, 1),
    ];
    expectValid(history(ops, all(['s', 'a'], ['s', 'f'])));
  });

  it('a conflict without actualRevision (an idempotency_conflict) must still have been a rejection', () => {
    const first = ok('s', ['a', 'b'], 0, 10, 0, 0);
    const mixed = append('s', ['b', 'c'], 20, 30, 'conflict', { note: 'idempotency_conflict' });
    expectValid(history([first, mixed], all(['s', 'a'], ['s', 'b'])));
  });

  it('reads concurrent with an append that see either state', () => {
    const ops = [
      ok('s', ['a'], 0, 20, 0, 0),
      read('s', 5, 15, []),
      read('s', 5, 15, ['a']),
      read('s', 21, 25, ['a']),
    ];
    expectValid(history(ops, all(['s', 'a'])));
  });

  it('operations that touch at one clock tick count as concurrent', () => {
    expectValid(history([ok('s', ['a'], 0, 10, 0, 0), read('s', 10, 20, [])], all(['s', 'a'])));
  });

  it('failed appends, unfinished reads and empty streams (404 reads)', () => {
    const ops = [
      append('s', ['x'], 0, 10, 'fail'),
      read('s', 0, 10, [], 'unknown'),
      read('s', 20, 30, []),
      read('t', 20, 30, []),
      ok('s', ['a'], 40, 50, 0, 0),
    ];
    expectValid(history(ops, all(['s', 'a'])));
  });

  it('checkFile reads a history written as JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'checker-'));
    try {
      const good = join(dir, 'good.json');
      const bad = join(dir, 'bad.json');
      writeFileSync(good, JSON.stringify(history([ok('s', ['a'], 0, 10, 0, 0)], all(['s', 'a']))));
      writeFileSync(
        bad,
        JSON.stringify(history([ok('s', ['a'], 0, 10, 0, 0), read('s', 20, 30, [])], all(['s', 'a']))),
      );
      expect(checkFile(good).valid).toBe(true);
      expect(checkFile(bad).valid).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checkLinearizable takes one stream only', () => {
    expect(() => checkLinearizable([read('s', 0, 1, []), read('t', 0, 1, [])])).toThrow('one stream');
  });
});

// ---- property test ---------------------------------------------------------------------------------------

/** mulberry32: a small seeded generator, so every run draws the same histories. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type StoreResult =
  | { kind: 'ok'; firstRevision: number; firstPosition: number; duplicate: boolean }
  | { kind: 'wrong'; actual: number }
  | { kind: 'idempotency' };

/** A linearizable event store written independently of the checker's model, with the server's idempotency. */
class SimStore {
  readonly all: FinalEvent[] = [];
  private readonly byId = new Map<string, FinalEvent>();
  private readonly streams = new Map<string, string[]>();

  lastRevision(stream: string): number {
    return (this.streams.get(stream)?.length ?? 0) - 1;
  }

  append(stream: string, ids: string[], expected: Expected): StoreResult {
    const found = ids.map((id) => this.byId.get(id));
    if (found.some((e) => e !== undefined)) {
      const first = found[0];
      const same = found.every(
        (e, i) =>
          e !== undefined && first !== undefined && e.stream === stream && e.position === first.position + i,
      );
      if (!same || !first) return { kind: 'idempotency' };
      return { kind: 'ok', firstRevision: first.revision, firstPosition: first.position, duplicate: true };
    }
    const last = this.lastRevision(stream);
    const holds =
      expected === 'any' ||
      (expected === 'no_stream' && last === -1) ||
      (expected === 'stream_exists' && last >= 0) ||
      expected === last;
    if (!holds) return { kind: 'wrong', actual: last };
    const list = this.streams.get(stream) ?? [];
    this.streams.set(stream, list);
    const firstRevision = list.length;
    const firstPosition = this.all.length;
    for (const id of ids) {
      const e: FinalEvent = { id, stream, revision: list.length, position: this.all.length };
      list.push(id);
      this.all.push(e);
      this.byId.set(id, e);
    }
    return { kind: 'ok', firstRevision, firstPosition, duplicate: false };
  }

  read(stream: string): string[] {
    return [...(this.streams.get(stream) ?? [])];
  }
}

interface SimStats {
  unknownLanded: number;
  unknownLost: number;
  conflicts: number;
  retriesAnsweredOriginal: number;
  reads: number;
}

/**
 * A history of a linearizable store: clients issue one operation at a time with random durations; each
 * operation takes effect at a random instant inside its interval, an unknown append at a random instant
 * up to 40 ms after the client gave up, or never; clients retry unknown appends with the same ids.
 */
function simulate(
  seed: number,
  stats: SimStats,
  size: { clients?: number; opsPerClient?: number } = {},
): History {
  const rand = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const store = new SimStore();
  const streams = ['s0', 's1', 's2'].slice(0, int(1, 3));
  const clients = size.clients ?? int(2, 5);
  const opsPerClient = size.opsPerClient ?? int(8, 20);
  const ops: Op[] = [];
  const sent: string[] = [];
  let idSeq = 0;
  let opSeq = 0;

  type Ev = { t: number; seq: number; run: () => void };
  const queue: Ev[] = [];
  let evSeq = 0;
  const at = (t: number, run: () => void) => queue.push({ t, seq: evSeq++, run });

  const left = new Array<number>(clients).fill(opsPerClient);
  const pendingRetry = new Array<AppendOp | null>(clients).fill(null);

  const startOp = (client: number, now: number) => {
    if (left[client]-- <= 0) return;
    const invokeMs = now + int(0, 4);
    const completeMs = invokeMs + int(1, 20);
    const retryOf = pendingRetry[client];
    pendingRetry[client] = null;
    if (!retryOf && rand() < 0.3) {
      const op: ReadOp = {
        kind: 'read',
        id: opSeq++,
        client,
        node: `n${int(1, 3)}`,
        stream: streams[int(0, streams.length - 1)],
        invokeMs,
        completeMs,
        outcome: rand() < 0.9 ? 'ok' : 'unknown',
      };
      ops.push(op);
      let seen: string[] = [];
      at(invokeMs + rand() * (completeMs - invokeMs), () => (seen = store.read(op.stream)));
      at(completeMs, () => {
        if (op.outcome === 'ok') {
          op.eventIds = seen;
          stats.reads++;
        }
        startOp(client, completeMs);
      });
      return;
    }
    const stream = retryOf?.stream ?? streams[int(0, streams.length - 1)];
    let expected: Expected;
    if (retryOf) expected = retryOf.expected;
    else {
      const x = rand();
      const last = store.lastRevision(stream);
      if (x < 0.25) expected = 'any';
      else if (x < 0.35) expected = 'no_stream';
      else if (x < 0.45) expected = 'stream_exists';
      // Mostly the revision the client would have read just now (often beaten by a concurrent writer).
      else expected = x < 0.85 ? last : int(-1, last + 1);
    }
    const eventIds =
      retryOf?.eventIds ?? Array.from({ length: int(1, 3) }, () => `${seed}-e${idSeq++}`.padStart(6, '0'));
    if (!retryOf) sent.push(...eventIds);
    const op: AppendOp = {
      kind: 'append',
      id: opSeq++,
      client,
      node: `n${int(1, 3)}`,
      stream,
      eventIds,
      expected,
      invokeMs,
      completeMs,
      outcome: 'unknown',
    };
    if (retryOf) op.retryOf = retryOf.id;
    ops.push(op);
    const fate = rand();
    let result: StoreResult | null = null;
    if (fate < 0.1) {
      op.outcome = 'fail';
    } else if (fate < 0.3) {
      // Unknown: the client gives up at completeMs; the request lands later, earlier, or never.
      if (rand() < 0.5) {
        at(invokeMs + rand() * (completeMs + 40 - invokeMs), () => {
          const r = store.append(stream, eventIds, expected);
          if (r.kind === 'ok' && !r.duplicate) stats.unknownLanded++;
        });
      } else stats.unknownLost++;
      pendingRetry[client] = op;
    } else {
      at(
        invokeMs + rand() * (completeMs - invokeMs),
        () => (result = store.append(stream, eventIds, expected)),
      );
    }
    at(completeMs, () => {
      const r = result as StoreResult | null;
      if (r?.kind === 'ok') {
        op.outcome = 'ok';
        op.firstRevision = r.firstRevision;
        op.lastRevision = r.firstRevision + eventIds.length - 1;
        op.firstPosition = r.firstPosition;
        op.lastPosition = r.firstPosition + eventIds.length - 1;
        if (retryOf && r.duplicate) stats.retriesAnsweredOriginal++;
      } else if (r?.kind === 'wrong') {
        op.outcome = 'conflict';
        op.actualRevision = r.actual;
        stats.conflicts++;
      } else if (r?.kind === 'idempotency') {
        op.outcome = 'conflict';
        op.note = 'idempotency_conflict';
      }
      startOp(client, completeMs);
    });
  };

  for (let c = 0; c < clients; c++) startOp(c, 0);
  while (queue.length) {
    let k = 0;
    for (let i = 1; i < queue.length; i++)
      if (queue[i].t < queue[k].t || (queue[i].t === queue[k].t && queue[i].seq < queue[k].seq)) k = i;
    queue.splice(k, 1)[0].run();
  }

  // Final reads after healing, as the harness issues them (after every late unknown has landed).
  const end = Math.max(...ops.map((o) => o.completeMs)) + 41;
  for (const stream of streams)
    ops.push({
      kind: 'read',
      id: opSeq++,
      client: -2,
      node: 'n1',
      stream,
      invokeMs: end,
      completeMs: end + 1,
      outcome: 'ok',
      eventIds: store.read(stream),
    });
  ops.sort((a, b) => a.invokeMs - b.invokeMs);

  const from = int(0, store.all.length);
  return {
    ops,
    sentEventIds: sent,
    finalAll: { n1: clone(store.all), n2: clone(store.all), n3: clone(store.all) },
    subscribers: [
      subscriberOf(store.all, 1),
      // One that subscribed later, from a position, and resumed after reconnecting: still the same sequence.
      {
        subscriber: 2,
        node: 'n2',
        from,
        received: store.all.slice(from).map((e) => ({ position: e.position, id: e.id })),
      },
    ],
  };
}

interface Mutation {
  name: string;
  kind: AnomalyKind;
  /** Changes the history in place; false when the history offers nothing to mutate. */
  apply: (h: History, pick: () => number) => boolean;
}

const oksOf = (h: History) =>
  h.ops.filter(
    (o): o is AppendOp => o.kind === 'append' && o.outcome === 'ok' && o.firstPosition !== undefined,
  );
const choose = <T>(xs: T[], pick: () => number): T => xs[Math.floor(pick() * xs.length)];
const eachNode = (h: History, f: (events: FinalEvent[]) => FinalEvent[]) => {
  for (const n of Object.keys(h.finalAll)) h.finalAll[n] = f(h.finalAll[n]);
};

const mutations: Mutation[] = [
  {
    name: 'drop an acknowledged event from the final state',
    kind: 'lost-acknowledged',
    apply: (h, pick) => {
      const oks = oksOf(h);
      if (!oks.length) return false;
      const victim = choose(oks, pick).eventIds[0];
      eachNode(h, (es) => es.filter((e) => e.id !== victim));
      return true;
    },
  },
  {
    name: "swap a read's result for the state before an append acknowledged before the read began",
    kind: 'not-linearizable',
    apply: (h, pick) => {
      const cands: [ReadOp, number][] = [];
      for (const r of h.ops) {
        if (r.kind !== 'read' || r.outcome !== 'ok' || !r.eventIds) continue;
        for (const a of oksOf(h)) {
          const at = r.eventIds.indexOf(a.eventIds[0]);
          if (a.stream === r.stream && a.completeMs < r.invokeMs && at >= 0) cands.push([r, at]);
        }
      }
      if (!cands.length) return false;
      const [r, at] = choose(cands, pick);
      r.eventIds = (r.eventIds ?? []).slice(0, at);
      return true;
    },
  },
  {
    name: 'let a read see an append invoked after the read completed',
    kind: 'not-linearizable',
    apply: (h, pick) => {
      const cands: [ReadOp, AppendOp][] = [];
      for (const r of h.ops)
        if (r.kind === 'read' && r.outcome === 'ok')
          for (const a of oksOf(h))
            if (a.stream === r.stream && a.invokeMs > r.completeMs && a.retryOf === undefined)
              cands.push([r, a]);
      if (!cands.length) return false;
      const [r, a] = choose(cands, pick);
      r.eventIds = [...(r.eventIds ?? []), ...a.eventIds];
      return true;
    },
  },
  {
    name: "shift an acknowledged append's revisions",
    kind: 'wrong-coordinates',
    apply: (h, pick) => {
      const oks = oksOf(h);
      if (!oks.length) return false;
      const a = choose(oks, pick);
      a.firstRevision = (a.firstRevision ?? 0) + 1;
      a.lastRevision = (a.lastRevision ?? 0) + 1;
      return true;
    },
  },
  {
    name: 'turn a 201 into a 409 with the revision the stream had before it',
    kind: 'not-linearizable',
    apply: (h, pick) => {
      // The events are still committed, so they came from a request that was refused: impossible.
      const oks = oksOf(h).filter((a) => a.retryOf === undefined);
      if (!oks.length) return false;
      const a = choose(oks, pick);
      a.outcome = 'conflict';
      a.actualRevision = (a.firstRevision ?? 0) - 1;
      return true;
    },
  },
  {
    name: 'make a 409 answer an `any` append',
    kind: 'not-linearizable',
    apply: (h, pick) => {
      const cs = h.ops.filter((o): o is AppendOp => o.kind === 'append' && o.actualRevision !== undefined);
      if (!cs.length) return false;
      choose(cs, pick).expected = 'any';
      return true;
    },
  },
  {
    name: 'give a 409 an actualRevision the stream never had',
    kind: 'not-linearizable',
    apply: (h, pick) => {
      const cs = h.ops.filter((o): o is AppendOp => o.kind === 'append' && o.actualRevision !== undefined);
      if (!cs.length) return false;
      const c = choose(cs, pick);
      c.actualRevision = Object.values(h.finalAll)[0].filter((e) => e.stream === c.stream).length;
      return true;
    },
  },
  {
    name: 'commit an acknowledged event a second time',
    kind: 'duplicate',
    apply: (h, pick) => {
      const es = Object.values(h.finalAll)[0];
      if (!es.length) return false;
      const e = choose(es, pick);
      const revision = es.filter((x) => x.stream === e.stream).length;
      eachNode(h, (xs) => [...xs, { id: e.id, stream: e.stream, revision, position: xs.length }]);
      return true;
    },
  },
  {
    name: 'drop a message a subscriber received',
    kind: 'subscriber',
    apply: (h, pick) => {
      const r = h.subscribers[0].received;
      if (r.length < 2) return false;
      r.splice(Math.floor(pick() * r.length), 1);
      return true;
    },
  },
  {
    name: 'swap two messages a subscriber received',
    kind: 'subscriber',
    apply: (h, pick) => {
      const r = h.subscribers[0].received;
      if (r.length < 2) return false;
      const i = Math.floor(pick() * (r.length - 1));
      [r[i], r[i + 1]] = [r[i + 1], r[i]];
      return true;
    },
  },
  {
    name: 'deliver a message to a subscriber twice',
    kind: 'subscriber',
    apply: (h, pick) => {
      const r = h.subscribers[0].received;
      if (!r.length) return false;
      const i = Math.floor(pick() * r.length);
      r.splice(i, 0, { ...r[i] });
      return true;
    },
  },
  {
    name: 'leave one node without its last event',
    kind: 'nodes-differ',
    apply: (h) => {
      if (!h.finalAll.n2.length) return false;
      h.finalAll.n2.pop();
      return true;
    },
  },
  {
    name: 'commit an id nobody sent',
    kind: 'never-sent',
    apply: (h, pick) => {
      const es = h.finalAll.n1;
      if (!es.length) return false;
      const gone = choose(es, pick).id;
      h.sentEventIds = h.sentEventIds.filter((id) => id !== gone);
      return true;
    },
  },
  {
    name: 'open a hole in $all',
    kind: 'gap',
    apply: (h, pick) => {
      const es = h.finalAll.n1;
      if (es.length < 2) return false;
      const from = 1 + Math.floor(pick() * (es.length - 1));
      eachNode(h, (xs) => xs.map((e, i) => (i >= from ? { ...e, position: e.position + 1 } : e)));
      return true;
    },
  },
];

describe('checker: property test on simulated histories', () => {
  const seeds = Array.from({ length: 60 }, (_, i) => 1000 + i);
  const stats: SimStats = {
    unknownLanded: 0,
    unknownLost: 0,
    conflicts: 0,
    retriesAnsweredOriginal: 0,
    reads: 0,
  };
  const histories = seeds.map((seed) => ({ seed, history: simulate(seed, stats) }));

  it('the simulation exercises unknowns that landed and that did not, conflicts, retries and reads', () => {
    expect(stats.unknownLanded).toBeGreaterThan(20);
    expect(stats.unknownLost).toBeGreaterThan(20);
    expect(stats.conflicts).toBeGreaterThan(20);
    expect(stats.retriesAnsweredOriginal).toBeGreaterThan(5);
    expect(stats.reads).toBeGreaterThan(100);
  });

  it('every history of a linearizable store passes', () => {
    for (const { seed, history: h } of histories) {
      const v = check(h);
      if (!v.valid) throw new Error(`seed ${seed}: ${v.anomalies.map((a) => a.message).join('\n')}`);
    }
  });

  it('without any final read (so nothing is pruned) every history still passes and stale reads are caught', () => {
    const stale = mutations[1];
    let caught = 0;
    for (const { seed, history: h } of histories) {
      const bare = { ...h, ops: h.ops.filter((o) => o.client !== -2) };
      const v = check(bare, { finalReads: false });
      if (!v.valid) throw new Error(`seed ${seed}: ${v.anomalies.map((a) => a.message).join('\n')}`);
      const mutated = clone(bare);
      if (!stale.apply(mutated, rng(seed * 7 + 1))) continue;
      expect(kinds(check(mutated, { finalReads: false }))).toContain('not-linearizable');
      caught++;
    }
    expect(caught).toBeGreaterThanOrEqual(20);
  });

  it('a larger history (10 clients, 1,000 operations) is decided within the default budget', () => {
    const h = simulate(7, { ...stats }, { clients: 10, opsPerClient: 100 });
    expect(check(h).valid).toBe(true);
    const bad = clone(h);
    expect(mutations[1].apply(bad, rng(7))).toBe(true);
    const v = check(bad);
    expect(kinds(v)).toEqual(['not-linearizable']);
    expect(v.anomalies[0].message).not.toContain('gave up');
  });

  it.each(mutations.map((m) => [m.name, m] as const))('every mutation is caught: %s', (_name, m) => {
    let applied = 0;
    for (const { seed, history: h } of histories) {
      const mutated = clone(h);
      if (!m.apply(mutated, rng(seed * 7 + 1))) continue;
      applied++;
      const v = check(mutated);
      if (!kinds(v).includes(m.kind))
        throw new Error(
          `seed ${seed}: "${m.name}" not reported as ${m.kind}; got ${JSON.stringify(v.anomalies)}`,
        );
    }
    expect(applied).toBeGreaterThanOrEqual(20);
  });
});
