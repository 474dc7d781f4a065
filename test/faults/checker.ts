/**
 * The fault suite's checker: per-stream linearizability of a recorded history (a Wing–Gong / Lowe search with
 * memoization, in the style of Porcupine) plus the checks that only make sense once the cluster has healed
 * (every node's `$all`, acknowledged coordinates, subscribers). See the `## Checker` section of README.md.
 *
 * The model is the server's apply step (libs/event-store/src/state-machine.ts `applyCommand`): a stream is the
 * list of its event ids; an append whose ids are all already in the stream, consecutively and in order, is an
 * idempotent re-send that returns the original revisions and changes nothing, whatever its expected revision
 * (the idempotency check runs before the expectation check); an append with some but not all ids known is an
 * `idempotency_conflict` (409, nothing written); otherwise the expected revision decides between a write at
 * the end of the list and `wrong_expected_revision` with `actualRevision` = length − 1.
 */
import { readFileSync } from 'node:fs';
import {
  Anomaly,
  AnomalyKind,
  AppendOp,
  Expected,
  FinalEvent,
  History,
  Op,
  ReadOp,
  Verdict,
} from './history';

export const DEFAULT_MAX_STATES_PER_STREAM = 5_000_000;

export interface CheckOptions {
  /** Search budget per stream (distinct (linearized set, stream state) pairs). Exceeding it fails the verdict. */
  maxStatesPerStream?: number;
  /**
   * Add, per stream, a read that starts after every operation completed and returns the stream as the
   * reference node's `$all` holds it after healing, so the final contents must agree with the history.
   * Default true.
   */
  finalReads?: boolean;
}

export interface LinearizabilityResult {
  /** True only when a linearization was found. */
  linearizable: boolean;
  /** The budget ran out before the search decided; `linearizable` is then false. */
  gaveUp: boolean;
  /** Operations the search considered (after dropping failed appends and unfinished reads). */
  ops: number;
  /** Distinct (linearized set, state) configurations visited. */
  states: number;
  /** Why not, when not linearizable (or where the search stood when it gave up). */
  explanation?: string;
  /** The longest linearizable prefix found, as operation ids in linearization order. */
  prefix?: number[];
  /** The operations that could have come next after that prefix, none of which fits. */
  stuck?: number[];
}

// ---------------------------------------------------------------------------------------------------------
// Model: a stream is the list of its event ids.

/**
 * One stream state, hash-consed: the same parent extended by the same operation's ids is the same object,
 * so the memo cache can compare states by identity. Different histories of segments that spell the same
 * ids stay different objects; that only costs memoization, never soundness.
 */
interface State {
  uid: number;
  prev: State | null;
  /** The ids this segment appended (empty for the root). */
  ids: readonly string[];
  len: number;
  /** A rolling hash of all ids, so a read's result is compared in O(1) before the exact walk. */
  hash: number;
}

type ModelResult =
  | { kind: 'ok'; first: number; wrote: boolean }
  | { kind: 'wrong_expected_revision'; actual: number }
  | { kind: 'idempotency_conflict' };

function strHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function extendHash(h: number, id: string): number {
  return (Math.imul(h, 0x9e3779b1) + strHash(id)) >>> 0;
}

function hashIds(ids: readonly string[]): number {
  let h = 0;
  for (const id of ids) h = extendHash(h, id);
  return h;
}

class States {
  readonly root: State = { uid: 0, prev: null, ids: [], len: 0, hash: 0 };
  private readonly interned = new Map<string, State>();
  private next = 1;

  /** `key` names the segment (the ids joined), so equal segments on equal parents intern to one state. */
  push(prev: State, ids: readonly string[], key: string): State {
    const k = `${prev.uid}|${key}`;
    let s = this.interned.get(k);
    if (!s) {
      let hash = prev.hash;
      for (const id of ids) hash = extendHash(hash, id);
      s = { uid: this.next++, prev, ids, len: prev.len + ids.length, hash };
      this.interned.set(k, s);
    }
    return s;
  }
}

function stateIds(s: State): string[] {
  const segs: (readonly string[])[] = [];
  for (let c: State | null = s; c; c = c.prev) segs.push(c.ids);
  const out: string[] = [];
  for (let i = segs.length - 1; i >= 0; i--) out.push(...segs[i]);
  return out;
}

function stateEquals(s: State, ids: readonly string[], hash: number): boolean {
  if (s.len !== ids.length || s.hash !== hash) return false;
  let end = ids.length;
  for (let c: State | null = s; c; c = c.prev) {
    const start = end - c.ids.length;
    for (let i = 0; i < c.ids.length; i++) if (c.ids[i] !== ids[start + i]) return false;
    end = start;
  }
  return true;
}

function expectationHolds(expected: Expected, lastRevision: number): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return lastRevision === -1;
    case 'stream_exists':
      return lastRevision >= 0;
    default:
      return lastRevision === expected;
  }
}

/** `index`: id → revision for the ids of `state` (kept in step with the search's current state). */
function applyAppend(op: AppendOp, state: State, index: ReadonlyMap<string, number>): ModelResult {
  const n = op.eventIds.length;
  let known = 0;
  let consecutive = true;
  const first = index.get(op.eventIds[0]);
  for (let i = 0; i < n; i++) {
    const r = index.get(op.eventIds[i]);
    if (r === undefined) continue;
    known++;
    if (first === undefined || r !== first + i) consecutive = false;
  }
  if (known === n && consecutive && first !== undefined) return { kind: 'ok', first, wrote: false };
  if (known > 0) return { kind: 'idempotency_conflict' };
  if (!expectationHolds(op.expected, state.len - 1))
    return { kind: 'wrong_expected_revision', actual: state.len - 1 };
  return { kind: 'ok', first: state.len, wrote: true };
}

/** Whether the model's result is what the operation observed. */
function appendMatches(op: AppendOp, r: ModelResult): boolean {
  switch (op.outcome) {
    case 'unknown':
      return true;
    case 'ok':
      if (r.kind !== 'ok') return false;
      if (op.firstRevision !== undefined && op.firstRevision !== r.first) return false;
      return op.lastRevision === undefined || op.lastRevision === r.first + op.eventIds.length - 1;
    case 'conflict':
      // Without an actualRevision the 409 may have been either kind; it still must have been a rejection.
      if (op.actualRevision === undefined) return r.kind !== 'ok';
      return r.kind === 'wrong_expected_revision' && r.actual === op.actualRevision;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Search.

interface Entry {
  /** Index into the prepared operations. */
  op: number;
  time: number;
  /** Set on call entries: the matching return entry. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

interface Prepared {
  op: Op;
  ret: number;
  /** Reads: the expected ids and their hash. Appends: the ids joined (segment key). */
  ids: readonly string[];
  hash: number;
  key: string;
}

function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  if (call.next) call.next.prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  if (call.next) call.next.prev = call;
}

/** Drops what cannot constrain the model: failed operations (never took effect) and reads without a result. */
function relevant(op: Op): boolean {
  if (op.kind === 'read') return op.outcome === 'ok';
  return op.outcome !== 'fail';
}

/**
 * Pruning that cannot change the answer. A read invoked after every other operation's (finite) return is
 * the last thing anyone observes: whatever is linearized after it is invisible. An unknown append whose ids
 * it does not all show therefore never wrote before it, so wherever it is placed it is a no-op (a 409, an
 * idempotent re-send) or lands unobserved afterwards: dropping it changes no verdict and saves the search
 * from trying it at every point. With the final reads `check` adds, this removes every unknown append
 * that never took effect.
 */
function pruneUnknowns(ops: Op[]): { ops: Op[]; finalRead?: ReadOp } {
  let finalRead: ReadOp | undefined;
  for (const op of ops) {
    if (op.kind !== 'read' || op.outcome !== 'ok') continue;
    const last = ops.every(
      (o) => o === op || (o.kind === 'append' && o.outcome === 'unknown') || o.completeMs < op.invokeMs,
    );
    if (last) finalRead = op;
  }
  if (!finalRead) return { ops };
  const seen = new Set(finalRead.eventIds ?? []);
  const kept = ops.filter(
    (o) => o.kind !== 'append' || o.outcome !== 'unknown' || o.eventIds.every((id) => seen.has(id)),
  );
  return { ops: kept, finalRead };
}

/** The prepared operations and, if there is one, the index of the read that follows all others. */
function prepare(ops: readonly Op[]): { P: Prepared[]; final: number } {
  const pruned = pruneUnknowns(ops.filter(relevant));
  const P = pruned.ops.map((op) => {
    // An unknown append may land at any time after it was sent, or never: it never has to precede anything.
    const ret =
      op.kind === 'append' && op.outcome === 'unknown' ? Infinity : Math.max(op.invokeMs, op.completeMs);
    const ids = op.kind === 'read' ? (op.eventIds ?? []) : op.eventIds;
    return { op, ret, ids, hash: hashIds(ids), key: ids.join(',') };
  });
  return { P, final: pruned.finalRead ? pruned.ops.indexOf(pruned.finalRead) : -1 };
}

/**
 * Before the final read is linearized every state must be a prefix of what it shows (streams only grow),
 * so a write that leaves that prefix can be refused at once instead of failing at the final read.
 */
function staysPrefix(final: readonly string[] | null, state: State, ids: readonly string[]): boolean {
  if (final === null) return true;
  for (let i = 0; i < ids.length; i++) if (final[state.len + i] !== ids[i]) return false;
  return true;
}

/**
 * Whether the operations of ONE stream are linearizable against the model. `maxStates` bounds the search;
 * running out is reported as `gaveUp` and never as linearizable.
 */
export function checkLinearizable(
  ops: readonly Op[],
  opts: { maxStates?: number } = {},
): LinearizabilityResult {
  const streams = new Set(ops.map((o) => o.stream));
  if (streams.size > 1) throw new Error(`checkLinearizable takes one stream, got ${[...streams].join(', ')}`);
  const maxStates = opts.maxStates ?? DEFAULT_MAX_STATES_PER_STREAM;
  const { P, final } = prepare(ops);
  const n = P.length;
  const finalIds = final >= 0 ? P[final].ids : null;

  // Call and return entries by time; on equal times calls first, so operations that touch at one clock tick
  // count as concurrent (the clock's resolution cannot order them).
  const entries: Entry[] = [];
  const calls: Entry[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const ret: Entry = { op: i, time: P[i].ret, match: null, prev: null, next: null };
    const call: Entry = { op: i, time: P[i].op.invokeMs, match: ret, prev: null, next: null };
    calls[i] = call;
    entries.push(call, ret);
  }
  entries.sort((a, b) => {
    if (a.time !== b.time) return a.time - b.time;
    const ac = a.match !== null ? 0 : 1;
    const bc = b.match !== null ? 0 : 1;
    return ac !== bc ? ac - bc : a.op - b.op;
  });
  const head: Entry = { op: -1, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }

  // Zobrist hashing of the linearized set: XOR of one random word per operation, updated in O(1).
  let seed = 0x2545f491;
  const zobrist = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    zobrist[i] = seed >>> 0;
  }
  const words = Math.max(1, Math.ceil(n / 32));
  const linearized = new Uint32Array(words);
  let linHash = 0;
  const cache = new Map<number, { bits: Uint32Array; state: State }[]>();
  const states = new States();
  const index = new Map<string, number>();
  let state = states.root;
  let visited = 0;

  const stack: { call: Entry; state: State; wrote: boolean }[] = [];
  let best: number[] = [];
  let bestState = state;

  const cacheInsert = (bits: Uint32Array, h: number, s: State): boolean => {
    const key = (h ^ Math.imul(s.uid, 0x85ebca6b)) >>> 0;
    let bucket = cache.get(key);
    if (!bucket) {
      bucket = [];
      cache.set(key, bucket);
    }
    for (const c of bucket) {
      if (c.state !== s) continue;
      let same = true;
      for (let w = 0; w < words && same; w++) same = c.bits[w] === bits[w];
      if (same) return false;
    }
    bucket.push({ bits: bits.slice(), state: s });
    visited++;
    return true;
  };

  let entry = head.next;
  while (head.next !== null) {
    if (visited > maxStates) {
      return {
        linearizable: false,
        gaveUp: true,
        ops: n,
        states: visited,
        prefix: best.map((i) => P[i].op.id),
        explanation:
          `search gave up after ${visited} states (budget ${maxStates}) with ${best.length} of ${n} operations ` +
          `linearized at best: undecided, so not accepted`,
      };
    }
    if (entry === null) throw new Error('linearizability search walked off the entry list');
    if (entry.match !== null) {
      const p = P[entry.op];
      let ok: boolean;
      let next = state;
      let wrote = false;
      if (p.op.kind === 'read') {
        ok = stateEquals(state, p.ids, p.hash);
      } else {
        const r = applyAppend(p.op, state, index);
        ok = appendMatches(p.op, r);
        const finalDone = final >= 0 && (linearized[final >>> 5] & (1 << (final & 31))) !== 0;
        if (ok && r.kind === 'ok' && r.wrote && !finalDone && !staysPrefix(finalIds, state, p.ids))
          ok = false;
        if (ok && r.kind === 'ok' && r.wrote) {
          next = states.push(state, p.ids, p.key);
          wrote = true;
        }
      }
      if (ok) {
        const w = entry.op >>> 5;
        const bit = 1 << (entry.op & 31);
        linearized[w] |= bit;
        const h = linHash ^ zobrist[entry.op];
        if (cacheInsert(linearized, h, next)) {
          linHash = h;
          stack.push({ call: entry, state, wrote });
          if (wrote) p.ids.forEach((id, i) => index.set(id, state.len + i));
          state = next;
          lift(entry);
          if (stack.length > best.length) {
            best = stack.map((s) => s.call.op);
            bestState = state;
          }
          entry = head.next;
          continue;
        }
        linearized[w] &= ~bit;
      }
      entry = entry.next;
    } else {
      // A return entry: the operation it ends had to be linearized by now. Backtrack.
      const top = stack.pop();
      if (!top) {
        const why = explain(P, best, bestState, finalIds);
        return {
          linearizable: false,
          gaveUp: false,
          ops: n,
          states: visited,
          prefix: best.map((i) => P[i].op.id),
          stuck: why.stuck,
          explanation: why.text,
        };
      }
      const i = top.call.op;
      if (top.wrote) for (const id of P[i].ids) index.delete(id);
      state = top.state;
      linearized[i >>> 5] &= ~(1 << (i & 31));
      linHash ^= zobrist[i];
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { linearizable: true, gaveUp: false, ops: n, states: visited };
}

// ---------------------------------------------------------------------------------------------------------
// Explanations.

function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function idList(ids: readonly string[], max = 6): string {
  if (ids.length <= max) return `[${ids.map(shortId).join(', ')}]`;
  const head = ids.slice(0, 2).map(shortId);
  const tail = ids.slice(ids.length - (max - 2)).map(shortId);
  return `[${head.join(', ')}, … ${ids.length - max} more …, ${tail.join(', ')}]`;
}

function expectedText(e: Expected): string {
  return typeof e === 'number' ? `revision ${e}` : e;
}

export function describeOp(op: Op): string {
  const t = `${op.invokeMs}–${op.completeMs} ms`;
  if (op.id < 0 && op.kind === 'read')
    return `the final ${op.stream} on ${op.node} after healing (${(op.eventIds ?? []).length} events)`;
  if (op.kind === 'read') {
    const ids = op.eventIds ?? [];
    return `read #${op.id} (client ${op.client}, ${op.node}, ${t}) → ${op.outcome} ${ids.length} events ${idList(ids)}`;
  }
  let res: string = op.outcome;
  if (op.outcome === 'ok') res = `ok revisions ${op.firstRevision}..${op.lastRevision}`;
  if (op.outcome === 'conflict') res = `409 actualRevision ${op.actualRevision ?? '(none)'}`;
  const retry = op.retryOf !== undefined ? `, retry of #${op.retryOf}` : '';
  return (
    `append #${op.id} (client ${op.client}, ${op.node}, ${t}, ${op.eventIds.length} events ` +
    `${idList(op.eventIds)}, expected ${expectedText(op.expected)}${retry}) → ${res}`
  );
}

function whyNot(
  p: Prepared,
  state: State,
  index: ReadonlyMap<string, number>,
  finalIds: readonly string[] | null,
): string {
  const op = p.op;
  if (op.kind === 'read') {
    const have = stateIds(state);
    const saw = p.ids;
    let common = 0;
    while (common < have.length && common < saw.length && have[common] === saw[common]) common++;
    if (common === saw.length && saw.length < have.length)
      return `it misses ${have.length - saw.length} events already in the stream ${idList(have.slice(common))} (stale)`;
    if (common === have.length && saw.length > have.length)
      return `it shows ${saw.length - have.length} events not yet appended here ${idList(saw.slice(common))}`;
    return `it differs from the stream at revision ${common} (read ${shortId(saw[common] ?? '-')}, stream ${shortId(have[common] ?? '-')})`;
  }
  const r = applyAppend(op, state, index);
  if (appendMatches(op, r)) {
    if (r.kind === 'ok' && r.wrote && !staysPrefix(finalIds, state, p.ids))
      return `it would write revision ${r.first}, where the final stream has ${shortId(finalIds?.[r.first] ?? '(nothing)')}`;
    return 'it fits here, but nothing fits after it';
  }
  switch (r.kind) {
    case 'ok':
      return r.wrote
        ? `here it would be written at revision ${r.first}`
        : `here it is a re-send of events already at revision ${r.first}`;
    case 'wrong_expected_revision':
      return `here expected ${expectedText(op.expected)} does not hold (last revision ${r.actual}): it would get a 409 with actualRevision ${r.actual}`;
    case 'idempotency_conflict':
      return 'here some but not all of its ids are already in the stream (idempotency_conflict)';
  }
}

function explain(
  P: Prepared[],
  best: number[],
  bestState: State,
  finalIds: readonly string[] | null,
): { text: string; stuck: number[] } {
  const done = new Set(best);
  const index = new Map<string, number>();
  stateIds(bestState).forEach((id, r) => index.set(id, r));
  const pending = P.map((_, i) => i).filter((i) => !done.has(i));
  // The pending operation that completed first had to come next at the latest; anything invoked before it
  // completed could have come first.
  let deadline = Infinity;
  for (const i of pending) deadline = Math.min(deadline, P[i].ret);
  const candidates = pending.filter((i) => P[i].op.invokeMs <= deadline);
  const stream = P[0]?.op.stream ?? '?';
  const lastFew = best.slice(-3).map((i) => `#${P[i].op.id}`);
  const lines = [
    `no linearization of the ${P.length} operations on ${stream}: the longest linearizable prefix has ` +
      `${best.length} operations${lastFew.length ? ` (ending ${lastFew.join(', ')})` : ''} and leaves the stream ` +
      `at ${bestState.len} events ${idList(stateIds(bestState))}; ` +
      `none of the ${candidates.length} operations that could come next fits:`,
    ...candidates
      .slice(0, 8)
      .map((i) => `  - ${describeOp(P[i].op)}: ${whyNot(P[i], bestState, index, finalIds)}`),
  ];
  if (candidates.length > 8) lines.push(`  - … and ${candidates.length - 8} more`);
  return { text: lines.join('\n'), stuck: candidates.map((i) => P[i].op.id) };
}

// ---------------------------------------------------------------------------------------------------------
// The whole history.

/** Collects anomalies, keeping at most `cap` per (kind, scope) so one broken node cannot flood the report. */
class Anomalies {
  readonly list: Anomaly[] = [];
  private readonly counts = new Map<string, number>();
  constructor(private readonly cap = 10) {}

  add(scope: string, a: Anomaly): void {
    const k = `${a.kind}|${scope}`;
    const c = (this.counts.get(k) ?? 0) + 1;
    this.counts.set(k, c);
    if (c <= this.cap) this.list.push(a);
  }

  /** Appends one "… and N more" line per scope that went over the cap. */
  finish(): Anomaly[] {
    for (const [k, c] of this.counts) {
      if (c <= this.cap) continue;
      const [kind, scope] = k.split('|');
      this.list.push({
        kind: kind as AnomalyKind,
        message: `${scope}: … and ${c - this.cap} more like these`,
      });
    }
    return this.list;
  }
}

/** The node whose `$all` the after-healing checks read (the first by name); others are compared to it. */
function referenceNode(finalAll: Record<string, FinalEvent[]>): { node: string; all: FinalEvent[] } {
  const nodes = Object.keys(finalAll).sort();
  return nodes.length ? { node: nodes[0], all: finalAll[nodes[0]] } : { node: '(no node)', all: [] };
}

function sameEvent(a: FinalEvent, b: FinalEvent): boolean {
  return a.id === b.id && a.stream === b.stream && a.revision === b.revision && a.position === b.position;
}

function eventText(e: FinalEvent): string {
  return `${shortId(e.id)} (${e.stream}@${e.revision}, position ${e.position})`;
}

function checkNodesAgree(finalAll: Record<string, FinalEvent[]>, ref: string, out: Anomalies): string[] {
  const differing: string[] = [];
  for (const node of Object.keys(finalAll).sort()) {
    if (node === ref) continue;
    const a = finalAll[ref];
    const b = finalAll[node];
    let i = 0;
    while (i < a.length && i < b.length && sameEvent(a[i], b[i])) i++;
    if (i === a.length && i === b.length) continue;
    differing.push(node);
    const at = (xs: FinalEvent[]) => (i < xs.length ? eventText(xs[i]) : 'nothing (it ends there)');
    out.add(node, {
      kind: 'nodes-differ',
      message:
        `$all on ${node} (${b.length} events) differs from ${ref} (${a.length} events) at index ${i}: ` +
        `${ref} has ${at(a)}, ${node} has ${at(b)}`,
    });
  }
  return differing;
}

function checkStructure(node: string, all: FinalEvent[], sent: Set<string>, out: Anomalies): void {
  const nextRevision = new Map<string, number>();
  const seen = new Map<string, FinalEvent>();
  for (let i = 0; i < all.length; i++) {
    const e = all[i];
    // Relative to the previous event, so one hole is one anomaly rather than one per later event.
    const wantPosition = i === 0 ? 0 : all[i - 1].position + 1;
    if (e.position !== wantPosition) {
      const after = i === 0 ? 'at the start' : `after position ${all[i - 1].position}`;
      out.add(node, {
        kind: 'gap',
        stream: e.stream,
        message: `$all on ${node}: position ${e.position} comes ${after}; positions must run 0, 1, 2, … with no gaps`,
      });
    }
    const want = nextRevision.get(e.stream) ?? 0;
    if (e.revision !== want) {
      out.add(node, {
        kind: 'gap',
        stream: e.stream,
        message: `$all on ${node}: ${eventText(e)} has revision ${e.revision} where ${e.stream} continues at ${want}`,
      });
    }
    nextRevision.set(e.stream, e.revision + 1);
    const earlier = seen.get(e.id);
    if (earlier) {
      out.add(node, {
        kind: 'duplicate',
        stream: e.stream,
        message: `$all on ${node}: event id ${e.id} is committed twice: ${eventText(earlier)} and ${eventText(e)}`,
      });
    } else seen.set(e.id, e);
    if (!sent.has(e.id)) {
      out.add(node, {
        kind: 'never-sent',
        stream: e.stream,
        message: `$all on ${node}: ${eventText(e)} has an id the workload never sent`,
      });
    }
  }
}

function checkAcknowledged(
  ops: readonly Op[],
  ref: { node: string; all: FinalEvent[] },
  out: Anomalies,
): void {
  const byId = new Map<string, FinalEvent>();
  for (const e of ref.all) if (!byId.has(e.id)) byId.set(e.id, e);
  for (const op of ops) {
    if (op.kind !== 'append' || op.outcome !== 'ok') continue;
    const missing: string[] = [];
    const misplaced: string[] = [];
    op.eventIds.forEach((id, i) => {
      const e = byId.get(id);
      if (!e) {
        missing.push(id);
        return;
      }
      const rev = op.firstRevision === undefined ? undefined : op.firstRevision + i;
      const pos = op.firstPosition === undefined ? undefined : op.firstPosition + i;
      if (
        e.stream !== op.stream ||
        (rev !== undefined && e.revision !== rev) ||
        (pos !== undefined && e.position !== pos)
      )
        misplaced.push(
          `${shortId(id)} acknowledged at ${op.stream}@${rev}/position ${pos}, found ${e.stream}@${e.revision}/position ${e.position}`,
        );
    });
    if (missing.length)
      out.add('ack', {
        kind: 'lost-acknowledged',
        stream: op.stream,
        ops: [op.id],
        message: `${describeOp(op)}: ${missing.length} acknowledged events are not in $all on ${ref.node}: ${idList(missing)}`,
      });
    if (misplaced.length)
      out.add('ack', {
        kind: 'wrong-coordinates',
        stream: op.stream,
        ops: [op.id],
        message: `${describeOp(op)}: ${misplaced.join('; ')}`,
      });
  }
}

/**
 * Each subscriber against the reference `$all` as a sequence: every message is the event that follows the
 * previous one there (so a hole in `$all` itself is reported once, as a gap, not again per subscriber), the
 * first is at its `from`, the last is the end of `$all`.
 */
function checkSubscribers(history: History, ref: { node: string; all: FinalEvent[] }, out: Anomalies): void {
  const indexOf = new Map<number, number>();
  ref.all.forEach((e, i) => indexOf.set(e.position, i));
  const positions = (from: number, to: number) => {
    const ps = ref.all.slice(from, to).map((e) => e.position);
    return ps.length > 4 ? `${ps.slice(0, 2).join(', ')} … ${ps[ps.length - 1]}` : ps.join(', ');
  };
  for (const sub of history.subscribers) {
    const problems: string[] = [];
    const seen = new Set<number>();
    const from = sub.from === undefined ? 0 : sub.from;
    // The index in $all it should receive next, once known.
    let next: number | undefined = from === null ? undefined : (indexOf.get(from) ?? ref.all.length);
    if (
      from !== null &&
      from > 0 &&
      !indexOf.has(from) &&
      from <= (ref.all[ref.all.length - 1]?.position ?? -1)
    )
      problems.push(`it asked for position ${from}, which ${ref.node}'s $all does not have`);
    for (let k = 0; k < sub.received.length; k++) {
      const { position, id } = sub.received[k];
      if (seen.has(position)) {
        problems.push(`message ${k}: position ${position} again (duplicate)`);
        continue;
      }
      seen.add(position);
      const i = indexOf.get(position);
      if (i === undefined) {
        problems.push(`message ${k}: position ${position}, which ${ref.node}'s $all does not have`);
        continue;
      }
      if (ref.all[i].id !== id)
        problems.push(
          `message ${k}: position ${position} carried ${shortId(id)}, $all has ${shortId(ref.all[i].id)} there`,
        );
      if (next !== undefined && i < next)
        problems.push(
          `message ${k}: position ${position} after ${ref.all[next - 1]?.position} (out of order)`,
        );
      else if (next !== undefined && i > next)
        problems.push(`message ${k}: position ${position}, skipping ${positions(next, i)}`);
      next = next === undefined ? i + 1 : Math.max(next, i + 1);
    }
    if (next !== undefined && next < ref.all.length) {
      const got = sub.received.length
        ? `its last message was position ${sub.received[sub.received.length - 1].position}`
        : 'it received nothing';
      problems.push(`${got}, but $all goes on to ${positions(next, ref.all.length)}`);
    }
    if (problems.length) {
      const shown = problems.slice(0, 5).join('; ');
      const more = problems.length > 5 ? `; … ${problems.length - 5} more` : '';
      out.add(`subscriber ${sub.subscriber}`, {
        kind: 'subscriber',
        message: `subscriber ${sub.subscriber} on ${sub.node} (${sub.received.length} messages): ${shown}${more}`,
      });
    }
  }
}

/** Checks a whole history: per-stream linearizability, then the after-healing checks. */
export function check(history: History, opts: CheckOptions = {}): Verdict {
  const out = new Anomalies();
  const ref = referenceNode(history.finalAll);

  const byStream = new Map<string, Op[]>();
  const streamOf = (s: string): Op[] => {
    let l = byStream.get(s);
    if (!l) {
      l = [];
      byStream.set(s, l);
    }
    return l;
  };
  for (const op of history.ops) streamOf(op.stream).push(op);

  if (opts.finalReads ?? true) {
    // After every operation completed (unknown appends included: whatever did not land by healing never will).
    let end = 0;
    for (const op of history.ops) end = Math.max(end, op.invokeMs, op.completeMs);
    const finalStreams = new Map<string, string[]>();
    for (const e of ref.all) {
      let l = finalStreams.get(e.stream);
      if (!l) {
        l = [];
        finalStreams.set(e.stream, l);
      }
      l.push(e.id);
    }
    for (const s of finalStreams.keys()) streamOf(s);
    let synthetic = -1;
    for (const [stream, ops] of byStream) {
      const read: ReadOp = {
        kind: 'read',
        id: synthetic--,
        client: -1,
        node: ref.node,
        stream,
        invokeMs: end + 1,
        completeMs: end + 2,
        outcome: 'ok',
        eventIds: finalStreams.get(stream) ?? [],
        note: 'final state after healing',
      };
      ops.push(read);
    }
  }

  const streams: Verdict['streams'] = [];
  for (const [stream, ops] of [...byStream].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const t0 = performance.now();
    const r = checkLinearizable(ops, { maxStates: opts.maxStatesPerStream });
    streams.push({ stream, ops: r.ops, states: r.states, ms: Math.round(performance.now() - t0) });
    if (r.linearizable) continue;
    out.add(stream, {
      kind: 'not-linearizable',
      stream,
      ops: r.gaveUp ? r.prefix : r.stuck,
      message: r.gaveUp ? `${stream}: ${r.explanation}` : (r.explanation ?? `${stream}: not linearizable`),
    });
  }

  const sent = new Set(history.sentEventIds);
  checkStructure(ref.node, ref.all, sent, out);
  for (const node of checkNodesAgree(history.finalAll, ref.node, out))
    checkStructure(node, history.finalAll[node], sent, out);
  checkAcknowledged(history.ops, ref, out);
  checkSubscribers(history, ref, out);

  const anomalies = out.finish();
  return { valid: anomalies.length === 0, anomalies, streams };
}

/** Reads a history written as JSON and checks it. */
export function checkFile(path: string, opts: CheckOptions = {}): Verdict {
  return check(JSON.parse(readFileSync(path, 'utf8')) as History, opts);
}

/** One line per anomaly, for logs and the run report. */
export function formatVerdict(v: Verdict): string {
  const head = v.valid ? 'valid' : `INVALID: ${v.anomalies.length} anomalies`;
  return [head, ...v.anomalies.map((a) => `[${a.kind}] ${a.message}`)].join('\n');
}

if (require.main === module) {
  const [path] = process.argv.slice(2);
  if (!path) {
    process.stderr.write('usage: checker.ts <history.json>\n');
    process.exit(2);
  }
  const v = checkFile(path);
  process.stdout.write(`${formatVerdict(v)}\n`);
  process.exit(v.valid ? 0 : 1);
}
