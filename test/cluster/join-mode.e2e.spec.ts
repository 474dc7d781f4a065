import { waitFor } from '@app/consensus/testing';
import { ClusterHarness } from '../support/cluster-harness';
import { E2EClient, Envelope, request } from '../support/e2e-client';
import { appendMany, convergedAll, stableEnv } from '../support/workload';

/**
 * Join mode with no peers listed (INITIAL_CLUSTER=""), on real processes: the new node knows no address
 * of any member. The leader dials it once it is added; the transport's handshake carries the leader's
 * advertised Raft address, so the new node can dial back, answer, catch up and be promoted.
 * Every bound is generous (a loaded 2-core box); 307/503/504 from elections are retried by E2EClient.
 */

jest.setTimeout(420_000);

/** $all as one node applied it (consistency=local), asked of that node only: no retry elsewhere. */
async function localAll(nodeUrl: string): Promise<Envelope[]> {
  const out: Envelope[] = [];
  let from = 0;
  for (let page = 0; page < 10_000; page++) {
    const r = await request('GET', `${nodeUrl}/streams/$all?from=${from}&limit=1000&consistency=local`);
    if (r.status !== 200) throw new Error(`GET $all from ${nodeUrl} answered ${r.status}: ${r.text}`);
    out.push(...(r.body.events as Envelope[]));
    if (r.body.next === null || r.body.next === undefined) return out;
    if (r.body.next <= from) throw new Error(`$all paging did not advance: from ${from} next ${r.body.next}`);
    from = r.body.next;
  }
  throw new Error('$all paging did not end');
}

describe('a node started with INITIAL_CLUSTER="" (join mode, no peers listed)', () => {
  let h: ClusterHarness;
  let client: E2EClient;

  beforeAll(async () => {
    h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
    client = new E2EClient(() => h.urls());
  }, 180_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it('is added with POST /cluster/members, catches up and becomes a voter', async () => {
    await appendMany(client, 'before-join', 50);
    const before = await convergedAll(h, client);
    expect(before.filter((e) => e.streamId === 'before-join')).toHaveLength(50);

    const n4 = await h.addJoiningNode('n4', { INITIAL_CLUSTER: '' });
    expect(n4.env.INITIAL_CLUSTER).toBe('');
    // Nothing in n4's environment names another node.
    for (const other of ['n1', 'n2', 'n3'].map((id) => h.node(id)))
      for (const value of Object.values(n4.env)) {
        expect(value).not.toContain(other.raftAddress);
        expect(value).not.toContain(other.url.slice('http://'.length));
      }

    // Sent to the old members only (n4 knows no leader to redirect to); 307/503/504 are retried.
    const oldMembers = new E2EClient(() => h.urls().filter((u) => u !== n4.url));
    const added = await oldMembers.send('POST', '/cluster/members', {
      body: { id: 'n4', httpUrl: n4.url, raftAddress: n4.raftAddress },
      timeoutMs: 240_000,
      attemptTimeoutMs: 60_000,
    });
    expect(added.status).toBe(200);

    // n4 holds every event written before it joined (a local read: what n4 itself applied).
    const local = await waitFor(
      "n4's local $all to hold the events written before it joined",
      async () => {
        const events = await localAll(n4.url);
        return events.length >= before.length ? events : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 250 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${h.tail(20)}`);
    });
    expect(local.slice(0, before.length)).toEqual(before);

    // n4 is a voter on every node, itself included.
    await waitFor(
      'n4 to be a voter in GET /cluster of every node',
      async () => {
        const views = await Promise.all(h.running().map((n) => h.clusterView(n.id)));
        return views.every((v) => v?.members.some((m) => m.id === 'n4' && m.voter));
      },
      { timeoutMs: 180_000 },
    );
    const n4View = (await h.clusterView('n4'))!;
    expect(n4View.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(n4View.role === 'follower' || n4View.role === 'leader').toBe(true);

    // It goes on replicating: events written after the join reach all four nodes.
    await appendMany(client, 'after-join', 20);
    const all = await convergedAll(h, client, 180_000);
    expect(h.running().map((n) => n.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(all.slice(0, before.length)).toEqual(before);
    expect(all.filter((e) => e.streamId === 'after-join')).toHaveLength(20);
  });
});
