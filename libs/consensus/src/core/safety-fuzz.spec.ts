import { Message } from './messages';
import { Ready } from './ready';
import { Entry } from './types';
import { InteractionCluster } from '../testing/interaction';
import { Prng } from '../testing/prng';

/**
 * A small seeded fuzz of the core alone (the simulator in testing/ is the thorough one): lost, duplicated and
 * reordered messages, crashes, partitions, pipelined readies and compaction. Checks State Machine Safety
 * (no two nodes apply different entries at one index) and Election Safety (one leader per term).
 */
function runSeed(seed: number, steps: number): { committed: number } {
  const prng = new Prng(seed);
  const rnd = () => prng.next();
  const ids = seed % 2 === 0 ? ['n1', 'n2', 'n3'] : ['n1', 'n2', 'n3', 'n4', 'n5'];
  const c = new InteractionCluster(
    ids.slice(0, -1),
    { electionTicks: 8, heartbeatTicks: 2, inflightMsgsMax: 4, msgBytesMax: 64, snapshotChunkBytes: 16 },
    { seed },
  );
  // The last node starts outside the cluster and may be added, promoted and removed.
  c.addNode(ids[ids.length - 1]);
  const appliedAt = new Map<number, Entry>();
  const leaderOfTerm = new Map<number, string>();
  const pending = new Map<string, Ready[]>();
  let proposals = 0;
  const check = (id: string, entries: Entry[]) => {
    for (const e of entries) {
      const seen = appliedAt.get(e.index);
      if (
        seen &&
        (seen.term !== e.term || Buffer.compare(Buffer.from(seen.data), Buffer.from(e.data)) !== 0)
      ) {
        throw new Error(
          `seed ${seed}: ${id} applied ${e.index}@${e.term}, another node applied ${seen.index}@${seen.term}\n${c.logLines.slice(-40).join('\n')}`,
        );
      }
      appliedAt.set(e.index, e);
    }
  };
  const take = (id: string) => {
    const n = c.node(id);
    if (!n.core.hasReady()) return;
    const rd = n.core.ready();
    c.network.push(...rd.messages);
    const q = pending.get(id) ?? [];
    q.push(rd);
    pending.set(id, q);
  };
  const persist = (id: string) => {
    const q = pending.get(id) ?? [];
    const rd = q.shift();
    if (!rd) return;
    const n = c.node(id);
    n.storage.applyReady(rd);
    c.network.push(...rd.persistedMessages);
    check(id, rd.committedEntries);
    n.applied.push(...rd.committedEntries);
    n.core.advance(rd);
  };
  for (let step = 0; step < steps; step++) {
    const id = ids[Math.floor(rnd() * ids.length)];
    const r = rnd();
    if (r < 0.2) c.core(id).tick();
    else if (r < 0.35) take(id);
    else if (r < 0.5) persist(id);
    else if (r < 0.8) {
      // deliver a random message (maybe dropped, maybe duplicated)
      for (let k = 0; k < 4 && c.network.length > 0; k++) {
        const i = Math.floor(rnd() * c.network.length);
        const m = c.network[i] as Message;
        const fate = rnd();
        if (fate < 0.05)
          c.network.splice(i, 1); // lost
        else c.deliver((x) => x === m);
        if (fate > 0.95) c.network.push(m); // duplicated
      }
    } else if (r < 0.88) {
      const core = c.core(id);
      if (core.state === 'leader') {
        try {
          core.propose(new TextEncoder().encode(`p${proposals++}`));
        } catch {
          // overloaded / transfer in progress
        }
      }
    } else if (r < 0.883) {
      pending.delete(id);
      c.restart(id);
    } else if (r < 0.9) {
      // the rest of (0.883, 0.9): nothing
    } else if (r < 0.92) {
      const n = c.node(id);
      const applied = n.applied.length > 0 ? n.applied[n.applied.length - 1].index : 0;
      if (
        applied > n.storage.snapshotMeta().index &&
        applied <= n.storage.lastIndex() &&
        (pending.get(id) ?? []).length === 0
      ) {
        const meta = n.storage.compact(
          applied,
          new TextEncoder().encode(`snapshot-${applied}`.repeat(3)),
          n.core.configs.at(applied),
        );
        n.core.snapshotTaken(meta);
      }
    } else if (r < 0.925) {
      if (rnd() < 0.7) c.heal();
      else c.isolate(id);
    } else if (r < 0.935) {
      const core = c.core(id);
      if (core.state === 'leader') {
        const config = core.config();
        const target = ids[Math.floor(rnd() * ids.length)];
        const change = config.learners.includes(target)
          ? rnd() < 0.7
            ? ({ type: 'promote', id: target } as const)
            : ({ type: 'remove', id: target } as const)
          : config.voters.includes(target)
            ? ({ type: 'remove', id: target } as const)
            : ({
                type: 'addLearner',
                id: target,
                address: { raftAddress: target, httpUrl: target },
              } as const);
        try {
          core.changeMembership(change);
        } catch {
          // a change in progress, or the last voter
        }
      }
    } else if (r < 0.938) {
      const core = c.core(id);
      if (core.state === 'leader') {
        try {
          core.transferLeadership(null);
        } catch {
          // no voter to transfer to
        }
      }
    }
    for (const n of c.nodes.values()) {
      if (n.core.state !== 'leader') continue;
      const other = leaderOfTerm.get(n.core.term);
      if (other !== undefined && other !== n.id)
        throw new Error(
          `seed ${seed}: two leaders at term ${n.core.term}: ${other} and ${n.id}\n${c.logLines.slice(-80).join('\n')}`,
        );
      leaderOfTerm.set(n.core.term, n.id);
    }
  }
  // Liveness phase: heal, deliver everything, tick until a leader commits a final entry everywhere.
  c.heal();
  for (const id of ids) {
    while ((pending.get(id) ?? []).length > 0) persist(id);
  }
  let final: { index: number; term: number } | null = null;
  for (let round = 0; round < 400; round++) {
    for (const id of ids) {
      c.core(id).tick();
      while (c.core(id).hasReady()) {
        take(id);
        persist(id);
      }
    }
    c.deliver();
    for (const id of ids) {
      while (c.core(id).hasReady()) {
        take(id);
        persist(id);
      }
    }
    const leader = ids.find((id) => c.core(id).state === 'leader');
    if (
      leader &&
      (final === null || final.term !== c.core(leader).term) &&
      c.core(leader).status().commit >= c.core(leader).termStartIndex
    ) {
      try {
        final = c.core(leader).propose(new TextEncoder().encode('final'));
      } catch {
        // a transfer in progress: retry next round
      }
    }
    const inCluster = leader
      ? ids.filter((id) =>
          [...c.core(leader).config().voters, ...c.core(leader).config().learners].includes(id),
        )
      : [];
    if (
      final &&
      leader &&
      inCluster.every((id) => c.core(id).status().commit >= (final as { index: number }).index)
    ) {
      if (process.env.FUZZ_STATS) {
        const count = (re: RegExp) => c.logLines.filter((l) => re.test(l)).length;
        console.log(
          `seed ${seed}: final ${final.index}, leaders ${count(/became leader/)}, snapshots sent ${count(/sending snapshot/)}, installs ${count(/installing snapshot/)}, transfers ${count(/TimeoutNow to/)}, config ${count(/proposed (promote|remove|addLearner)/)}, removed ${count(/removed from the configuration/)}, lost ${count(/were not received/)}, stepdowns ${count(/stepped down/)}`,
        );
      }
      return { committed: final.index };
    }
  }
  const statuses = ids.map((id) => JSON.stringify({ ...c.core(id).status(), config: undefined }));
  throw new Error(
    `seed ${seed}: no progress after healing (final ${final?.index})\n${c.logLines
      .filter((l) => !/pre-vote|pre-candidate/.test(l))
      .slice(-70)
      .join('\n')}\n${statuses.join('\n')}`,
  );
}

describe('safety under faults (core-level fuzz)', () => {
  it('no two nodes apply different entries at an index, one leader per term, and a healed cluster commits again', () => {
    let total = 0;
    const seeds = Number(process.env.FUZZ_SEEDS ?? 40);
    const first = Number(process.env.FUZZ_FIRST_SEED ?? 1);
    for (let seed = first; seed < first + seeds; seed++) total += runSeed(seed, 3000).committed;
    expect(total).toBeGreaterThan(0);
  }, 120_000);
});
