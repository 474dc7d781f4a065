import { randomUUID } from 'node:crypto';
import { waitFor } from '@app/consensus/testing';
import { ClusterHarness, ClusterNode } from '../support/cluster-harness';
import { E2EClient, event, HttpResult, request, SseReader } from '../support/e2e-client';
import { rawRequest, stableEnv } from '../support/workload';

/**
 * Every route and status code of API.md against a real 3-process cluster. Where a test is not about
 * leadership, 307/503/504 are retried (E2EClient); where it is, the premise (this node is a follower)
 * is re-established and the request repeated a bounded number of times.
 */

jest.setTimeout(180_000);

const MiB = 1024 * 1024;
let h: ClusterHarness;
let client: E2EClient;

beforeAll(async () => {
  h = await ClusterHarness.start({ nodes: 3, env: stableEnv });
  client = new E2EClient(() => h.urls());
  await h.waitForLeader();
}, 180_000);

afterAll(async () => {
  await h?.cleanup();
});

/**
 * Runs `attempt` against a current follower (with the leader it names) until `done` accepts the answer;
 * answers produced by a leadership change in between (503, or the follower having become leader) retry.
 */
async function onFollower(
  attempt: (follower: ClusterNode, leader: ClusterNode) => Promise<HttpResult>,
  done: (r: HttpResult, leader: ClusterNode) => boolean,
): Promise<{ r: HttpResult; leader: ClusterNode; follower: ClusterNode }> {
  let last: HttpResult | null = null;
  for (let i = 0; i < 30; i++) {
    const leader = await h.waitForLeader();
    const follower = h.running().find((n) => n.id !== leader.id)!;
    last = await attempt(follower, leader);
    if (done(last, leader)) return { r: last, leader, follower };
  }
  throw new Error(
    `no definitive answer from a follower after 30 attempts; last ${last?.status} ${last?.text}`,
  );
}

async function leaderUrl(): Promise<string> {
  return (await h.waitForLeader()).url;
}

/** A request to the current leader that must not be about leadership: retried on 307/503/504. */
function post(path: string, body: unknown) {
  return client.send('POST', path, { body });
}

describe('append — POST /streams/{streamId}/events', () => {
  it('201 with revisions and positions after commit; events read back in order', async () => {
    const s = `order-${randomUUID()}`;
    const r = await post(`/streams/${s}/events`, {
      expectedRevision: 'no_stream',
      events: [event('OrderPlaced', { total: 5 }), event('OrderPaid', {})],
    });
    expect(r.status).toBe(201);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.body).toMatchObject({ streamId: s, firstRevision: 0, lastRevision: 1 });
    expect(r.body.lastPosition).toBe(r.body.firstPosition + 1);
    const read = await client.get(`/streams/${s}`);
    expect(read.status).toBe(200);
    expect(read.body.events.map((e: { type: string }) => e.type)).toEqual(['OrderPlaced', 'OrderPaid']);
    const e0 = read.body.events[0];
    expect(Object.keys(e0).sort()).toEqual([
      'data',
      'id',
      'metadata',
      'position',
      'revision',
      'streamId',
      'timestamp',
      'type',
    ]);
    expect(e0.data).toEqual({ total: 5 });
    expect(new Date(e0.timestamp).toISOString()).toBe(e0.timestamp);
  });

  it('assigns an id when the client sends none', async () => {
    const s = `noid-${randomUUID()}`;
    expect((await post(`/streams/${s}/events`, { events: [{ type: 'X' }] })).status).toBe(201);
    const read = await client.get(`/streams/${s}`);
    expect(read.body.events[0].id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  });

  it('307 from a follower to the same path on the leader, with Raft-Leader', async () => {
    const s = `redirect-${randomUUID()}`;
    const { r, leader } = await onFollower(
      (f) => request('POST', `${f.url}/streams/${s}/events?x=1`, { body: { events: [event('A')] } }),
      (r, l) => r.status === 307 && r.headers['raft-leader'] === l.id,
    );
    expect(r.headers['raft-leader']).toBe(leader.id);
    expect(r.headers.location).toBe(`${leader.url}/streams/${s}/events?x=1`);
  });

  it('idempotent retry: the same request again returns the original revisions and writes nothing', async () => {
    const s = `idem-${randomUUID()}`;
    const body = { events: [event('A', { n: 1 }), event('B', { n: 2 })] };
    const first = await post(`/streams/${s}/events`, body);
    const again = await post(`/streams/${s}/events`, body);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    const read = await client.get(`/streams/${s}`);
    expect(read.body.events).toHaveLength(2);
  });

  it('409 wrong_expected_revision with exactly the API.md body', async () => {
    const s = `wer-${randomUUID()}`;
    const missing = await post(`/streams/${s}/events`, {
      expectedRevision: 'stream_exists',
      events: [event('A')],
    });
    expect(missing.status).toBe(409);
    expect(missing.body).toEqual({
      error: 'wrong_expected_revision',
      streamId: s,
      expectedRevision: 'stream_exists',
      actualRevision: -1,
    });
    expect(
      (await post(`/streams/${s}/events`, { expectedRevision: 'no_stream', events: [event('A')] })).status,
    ).toBe(201);
    const exists = await post(`/streams/${s}/events`, {
      expectedRevision: 'no_stream',
      events: [event('B')],
    });
    expect(exists.body).toEqual({
      error: 'wrong_expected_revision',
      streamId: s,
      expectedRevision: 'no_stream',
      actualRevision: 0,
    });
    const exact = await post(`/streams/${s}/events`, { expectedRevision: 5, events: [event('B')] });
    expect(exact.status).toBe(409);
    expect(exact.body).toEqual({
      error: 'wrong_expected_revision',
      streamId: s,
      expectedRevision: 5,
      actualRevision: 0,
    });
    expect((await post(`/streams/${s}/events`, { expectedRevision: 0, events: [event('B')] })).status).toBe(
      201,
    );
    expect(
      (await post(`/streams/${s}/events`, { expectedRevision: 'stream_exists', events: [event('C')] }))
        .status,
    ).toBe(201);
  });

  it('concurrent writers with exact expected revisions: exactly one wins per revision', async () => {
    const s = `race-${randomUUID()}`;
    const writers = 5;
    const revisions = 8;
    for (let rev = -1; rev < revisions - 1; rev++) {
      const expected = rev < 0 ? 'no_stream' : rev;
      const answers = await Promise.all(
        Array.from({ length: writers }, (_, w) =>
          post(`/streams/${s}/events`, { expectedRevision: expected, events: [event('Raced', { w, rev })] }),
        ),
      );
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).toEqual([201, ...Array(writers - 1).fill(409)]);
      for (const a of answers.filter((x) => x.status === 409)) expect(a.body.actualRevision).toBe(rev + 1);
    }
    const read = await client.get(`/streams/${s}?limit=4096`);
    expect(read.body.events.map((e: { revision: number }) => e.revision)).toEqual(
      Array.from({ length: revisions }, (_, i) => i),
    );
  });

  it.each([
    ['missing type', { events: [{ data: {} }] }],
    ['empty events', { events: [] }],
    ['events not an array', { events: {} }],
    ['bad event id', { events: [{ id: 'not-a-uuid', type: 'A' }] }],
    ['bad expectedRevision', { expectedRevision: 'sometimes', events: [{ type: 'A' }] }],
    ['negative expectedRevision', { expectedRevision: -2, events: [{ type: 'A' }] }],
    ['type not a string', { events: [{ type: 42 }] }],
    [
      'duplicate ids in one request',
      {
        events: [
          { id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', type: 'A' },
          { id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', type: 'B' },
        ],
      },
    ],
  ])('400 invalid_request for %s', async (_name, body) => {
    const r = await post(`/streams/bad-${randomUUID()}/events`, body);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_request');
    expect(typeof r.body.message).toBe('string');
  });

  it('400 for malformed JSON and for a bad stream id', async () => {
    const bad = await client.send('POST', `/streams/json-${randomUUID()}/events`, {
      rawBody: '{"events": [',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    for (const id of ['has space', 'a/b', '$reserved', 'x'.repeat(257), 'ünïcode']) {
      const r = await post(`/streams/${encodeURIComponent(id)}/events`, { events: [event('A')] });
      expect([r.status, r.body?.error]).toEqual([400, 'invalid_request']);
    }
  });

  it('413 payload_too_large: declared body over 4 MiB, more than 1,000 events, one event over 1 MiB', async () => {
    const leader = await h.waitForLeader();
    const raw = await rawRequest(
      leader.httpPort,
      `POST /streams/big/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${5 * MiB}\r\n\r\n{"events":[`,
    );
    expect(raw.status).toBe(413);
    expect(JSON.parse(raw.body)).toMatchObject({ error: 'payload_too_large' });
    const many = await post(`/streams/many-${randomUUID()}/events`, {
      events: Array.from({ length: 1001 }, () => ({ type: 'A' })),
    });
    expect([many.status, many.body.error]).toEqual([413, 'payload_too_large']);
    const huge = await post(`/streams/huge-${randomUUID()}/events`, {
      events: [{ type: 'A', data: { s: 'x'.repeat(MiB + 10) } }],
    });
    expect([huge.status, huge.body.error]).toEqual([413, 'payload_too_large']);
  });

  it('415 for a body that is not JSON', async () => {
    const r = await client.send('POST', `/streams/ct-${randomUUID()}/events`, {
      rawBody: 'events=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(r.status).toBe(415);
  });
});

describe('reads — GET /streams/{streamId} and /streams/$all', () => {
  const s = `read-${randomUUID()}`;
  beforeAll(async () => {
    expect(
      (
        await post(`/streams/${s}/events`, {
          events: Array.from({ length: 10 }, (_, i) => event(i % 2 ? 'Odd' : 'Even', { i })),
        })
      ).status,
    ).toBe(201);
  });

  it('pages forward and backward with next', async () => {
    const p1 = await client.get(`/streams/${s}?limit=4`);
    expect(p1.body).toMatchObject({ streamId: s, lastRevision: 9, next: 4 });
    expect(p1.body.events.map((e: { revision: number }) => e.revision)).toEqual([0, 1, 2, 3]);
    const back = await client.get(`/streams/${s}?direction=backward&limit=3`);
    expect(back.body.events.map((e: { revision: number }) => e.revision)).toEqual([9, 8, 7]);
    expect(back.body.next).toBe(6);
    const end = await client.get(`/streams/${s}?from=8`);
    expect(end.body.next).toBeNull();
  });

  it('404 stream_not_found', async () => {
    const r = await client.get(`/streams/missing-${randomUUID()}`);
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('stream_not_found');
  });

  it.each(['limit=0', 'limit=4097', 'limit=abc', 'from=-1', 'direction=sideways', 'consistency=eventual'])(
    '400 for bad query %s',
    async (q) => {
      const r = await client.get(`/streams/${s}?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_request');
    },
  );

  it('$all with type and stream-prefix filters', async () => {
    const all = await client.get(`/streams/$all?streamPrefix=${s}&types=Odd&limit=4096`);
    expect(all.status).toBe(200);
    expect(typeof all.body.lastPosition).toBe('number');
    // A filtered page may end early with next set: follow it (bounded).
    const events = [...all.body.events];
    let next = all.body.next;
    for (let i = 0; next !== null && i < 1000; i++) {
      const p = await client.get(`/streams/$all?streamPrefix=${s}&types=Odd&limit=4096&from=${next}`);
      events.push(...p.body.events);
      next = p.body.next;
    }
    expect(events.map((e: { data: { i: number } }) => e.data.i)).toEqual([1, 3, 5, 7, 9]);
    const encoded = await client.get(`/streams/%24all?limit=1`);
    expect(encoded.status).toBe(200);
    expect(Array.isArray(encoded.body.events)).toBe(true);
  });

  it('linearizable read on a follower answers 307 to the leader; local reads are served there', async () => {
    const { r, leader } = await onFollower(
      (f) => request('GET', `${f.url}/streams/${s}?limit=2`),
      (r, l) => r.status === 307 && r.headers['raft-leader'] === l.id,
    );
    expect(r.headers.location).toBe(`${leader.url}/streams/${s}?limit=2`);
    expect(r.headers['raft-leader']).toBe(leader.id);
    const local = await onFollower(
      (f) => request('GET', `${f.url}/streams/${s}?consistency=local`),
      (r) => r.status === 200 && r.body.events.length === 10,
    );
    expect(local.r.body.lastRevision).toBe(9);
  });
});

describe('subscriptions — Server-Sent Events', () => {
  it('a stream subscription delivers history then live events, id = revision; Last-Event-ID resumes', async () => {
    const s = `sub-${randomUUID()}`;
    await post(`/streams/${s}/events`, { events: [event('A'), event('B')] });
    const node = h.running()[0];
    const sub = new SseReader(`${node.url}/streams/${s}/subscribe?from=0`);
    try {
      await sub.opened;
      expect(sub.status).toBe(200);
      expect(sub.headers['content-type']).toMatch(/^text\/event-stream/);
      await post(`/streams/${s}/events`, { events: [event('C')] });
      await waitFor('3 events on the subscription', () => sub.envelopes().length >= 3);
      expect(sub.messages.map((m) => m.id)).toEqual(['0', '1', '2']);
      expect(sub.envelopes().map((e) => e.type)).toEqual(['A', 'B', 'C']);
    } finally {
      sub.close();
    }
    const resumed = new SseReader(`${node.url}/streams/${s}/subscribe?from=0`, { 'Last-Event-ID': '1' });
    try {
      await waitFor('the resumed subscription to deliver revision 2', () => resumed.envelopes().length >= 1);
      expect(resumed.envelopes()[0].revision).toBe(2);
    } finally {
      resumed.close();
    }
  });

  it('$all subscription with filters, id = position, and a heartbeat comment', async () => {
    const prefix = `suball-${randomUUID().slice(0, 8)}`;
    const node = h.running()[1];
    const sub = new SseReader(`${node.url}/streams/$all/subscribe?streamPrefix=${prefix}&types=Keep`);
    try {
      await sub.opened;
      expect(sub.status).toBe(200);
      await post(`/streams/${prefix}-1/events`, {
        events: [event('Keep', { n: 1 }), event('Drop'), event('Keep', { n: 2 })],
      });
      await waitFor('2 filtered events', () => sub.envelopes().length >= 2);
      const got = sub.envelopes();
      expect(got.map((e) => e.data)).toEqual([{ n: 1 }, { n: 2 }]);
      expect(sub.messages.map((m) => Number(m.id))).toEqual(got.map((e) => e.position));
      await waitFor('a heartbeat comment', () => sub.comments >= 2, { timeoutMs: 40_000 });
    } finally {
      sub.close();
    }
  });

  it('400 for a bad Last-Event-ID or from', async () => {
    const node = h.running()[0];
    expect((await request('GET', `${node.url}/streams/x/subscribe?from=abc`)).status).toBe(400);
    expect(
      (await request('GET', `${node.url}/streams/$all/subscribe`, { headers: { 'Last-Event-ID': 'nope' } }))
        .status,
    ).toBe(400);
  });
});

describe('projections', () => {
  const s = `proj-${randomUUID()}`;
  beforeAll(async () => {
    expect(
      (await post(`/streams/${s}/events`, { events: [event('Made'), event('Made'), event('Changed')] }))
        .status,
    ).toBe(201);
  });

  it('lists the built-ins with status, position and lag', async () => {
    const r = await client.get('/projections');
    expect(r.status).toBe(200);
    const names = r.body.map((p: { name: string }) => p.name);
    expect(names).toEqual(expect.arrayContaining(['streams', 'event-types', 'categories']));
    for (const p of r.body) {
      expect(['running', 'rebuilding', 'faulted']).toContain(p.status);
      expect(typeof p.position).toBe('number');
      expect(typeof p.lag).toBe('number');
    }
  });

  it('reads a projection, a partition, and 404s', async () => {
    const all = await client.get('/projections/streams');
    expect(all.status).toBe(200);
    expect(all.body.name).toBe('streams');
    const one = await client.get(`/projections/streams/${s}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ lastRevision: 2, eventCount: 3, lastEventType: 'Changed' });
    expect((await client.get('/projections/no-such-projection')).status).toBe(404);
    expect((await client.get(`/projections/streams/never-${randomUUID()}`)).status).toBe(404);
  });

  it('POST reset answers 202 and the projection is rebuilt to the same state', async () => {
    const leader = await leaderUrl();
    const before = await request('GET', `${leader}/projections/event-types?consistency=local`);
    const r = await request('POST', `${leader}/projections/event-types/reset`);
    expect(r.status).toBe(202);
    await waitFor('event-types to finish rebuilding', async () => {
      const list = await request('GET', `${leader}/projections`);
      return list.body.find((p: { name: string }) => p.name === 'event-types')?.status === 'running';
    });
    const after = await request('GET', `${leader}/projections/event-types?consistency=local`);
    expect(after.body.state).toEqual(before.body.state);
    expect((await request('POST', `${leader}/projections/nope/reset`)).status).toBe(404);
  });
});

describe('cluster administration', () => {
  it('GET /cluster has the API.md shape', async () => {
    // Re-read until the view is taken while the node still leads (an election may intervene under load).
    const { r, leader } = await waitFor('a view of the cluster from its leader', async () => {
      const l = await h.waitForLeader();
      const view = await request('GET', `${l.url}/cluster`);
      return view.status === 200 && view.body.role === 'leader' ? { r: view, leader: l } : undefined;
    });
    expect(r.body).toMatchObject({
      nodeId: leader.id,
      role: 'leader',
      leaderId: leader.id,
      leaderUrl: leader.url,
    });
    for (const k of ['term', 'commitIndex', 'appliedIndex', 'lastLogIndex'])
      expect(typeof r.body[k]).toBe('number');
    expect(r.body.snapshot).toEqual({ index: expect.any(Number), term: expect.any(Number) });
    expect(r.body.members).toHaveLength(3);
    for (const m of r.body.members)
      expect(m).toMatchObject({
        id: expect.any(String),
        httpUrl: expect.any(String),
        raftAddress: expect.any(String),
        voter: true,
      });
  });

  it('POST /cluster/snapshot takes a snapshot', async () => {
    const node = h.running()[0];
    const r = await client.send('POST', '/cluster/snapshot', { startAt: node.url });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ index: expect.any(Number), term: expect.any(Number) });
  });

  it('POST /cluster/leadership-transfer moves leadership; 400 for a non-voter', async () => {
    const old = await h.waitForLeader();
    const to = h.running().find((n) => n.id !== old.id)!.id;
    const r = await client.send('POST', '/cluster/leadership-transfer', { body: { to } });
    expect(r.status).toBe(200);
    expect(r.body.leaderId).toBe(to);
    await h.waitForLeader();
    expect(
      (await client.send('POST', '/cluster/leadership-transfer', { body: { to: 'nobody' } })).status,
    ).toBe(400);
  });

  it('400 for a bad member body; 404 for removing a stranger; 307 from a follower', async () => {
    const bad = await client.send('POST', '/cluster/members', { body: { id: 'n9' } });
    expect([bad.status, bad.body.error]).toEqual([400, 'invalid_request']);
    expect((await client.send('DELETE', '/cluster/members/stranger')).status).toBe(404);
    const { r } = await onFollower(
      (f) => request('DELETE', `${f.url}/cluster/members/stranger`),
      (r) => r.status === 307,
    );
    expect(r.headers['raft-leader']).toBeDefined();
  });
});

describe('operations', () => {
  it('GET /health, /ready, /metrics, /docs', async () => {
    for (const n of h.running()) {
      const health = await request('GET', `${n.url}/health`);
      expect(health.status).toBe(200);
      await waitFor(`${n.id} ready`, async () => (await request('GET', `${n.url}/ready`)).status === 200);
    }
    const n = h.running()[0];
    const metrics = await request('GET', `${n.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    for (const name of [
      'raft_term',
      'raft_commit_index',
      'raft_applied_index',
      'raft_persist_seconds',
      'http_requests_total',
      'eventstore_append_entries_total',
      'eventstore_append_commands_total',
      'raft_proposal_stage_seconds',
      'eventstore_append_stage_seconds',
    ])
      expect(metrics.text).toContain(name);
    // The leader measures the stages of the appends it serves.
    const leader = await h.waitForLeader();
    const appended = await request('POST', `${leader.url}/streams/stage-metrics/events`, {
      body: { events: [event('Measured')] },
    });
    expect(appended.status).toBe(201);
    const leaderMetrics = (await request('GET', `${leader.url}/metrics`)).text;
    for (const stage of ['http', 'batch', 'commit', 'answer', 'total'])
      expect(leaderMetrics).toMatch(
        new RegExp(`eventstore_append_stage_seconds_count\\{stage="${stage}"\\} [1-9]`),
      );
    for (const stage of ['persist', 'quorum', 'apply'])
      expect(leaderMetrics).toMatch(
        new RegExp(`raft_proposal_stage_seconds_count\\{stage="${stage}"\\} [1-9]`),
      );
    expect((await request('GET', `${n.url}/docs`)).status).toBe(200);
    const doc = await request('GET', `${n.url}/docs-json`);
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(['/streams/{streamId}/events', '/streams/$all', '/cluster', '/projections']),
    );
  });

  it('404 in API shape for an unknown route', async () => {
    const r = await request('GET', `${h.running()[0].url}/no/such/route`);
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('not_found');
  });
});
