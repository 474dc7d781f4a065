import { Command } from 'commander';
import type { ClusterMember, ClusterView } from '@app/client';
import { Context } from '../context';
import { table } from '../output';
import type { Runner } from '../context';

/** Bound of asking each member for its own view in `cluster status`. */
const memberViewTimeoutMs = 3_000;
/** `cluster add` waits for the new node to catch up before promoting it (the node allows 300 s). */
const addTimeoutMs = 330_000;

export function registerClusterCommands(program: Command, run: Runner): void {
  const cluster = program
    .command('cluster')
    .summary('cluster membership and state (status, add, remove, transfer, snapshot)')
    .description('The admin routes of the nodes. Changes go to the leader (a follower redirects).');

  cluster
    .command('status')
    .summary('leader, term and every member with its role and indexes')
    .description(
      'The cluster as the first answering node of --url sees it, with each member asked for its own view ' +
        '(role, term, commit and applied index); a member that does not answer is shown as unreachable.',
    )
    .action((_opts, cmd: Command) => run(cmd, (ctx) => status(ctx)));

  cluster
    .command('add')
    .summary('add a node (learner, then voter once caught up)')
    .description(
      'Adds a node (started with INITIAL_CLUSTER="" so that it waits to be added): it joins as a learner, ' +
        'catches up, then is promoted to voter by joint consensus. Waits for all of it (--timeout, default 330 s).',
    )
    .argument('<id>', 'the new node id (its NODE_ID)')
    .argument('<http-url>', 'its HTTP URL, e.g. http://127.0.0.1:2143')
    .argument('<raft-address>', 'its Raft address host:port, e.g. 127.0.0.1:2144')
    .option('--learner', 'keep it a learner (not promoted to voter)')
    .action((id: string, httpUrl: string, raftAddress: string, opts: { learner?: boolean }, cmd: Command) =>
      run(cmd, async (ctx) => {
        const view = await ctx
          .cluster({ timeoutMs: ctx.timeoutMs(addTimeoutMs), attemptMs: ctx.timeoutMs(addTimeoutMs) })
          .request<ClusterView>('POST', '/cluster/members', {
            body: { id, httpUrl, raftAddress, promote: !opts.learner },
            leader: true,
            write: true,
          });
        if (ctx.json) return ctx.out.document(view);
        const m = view.members.find((x) => x.id === id);
        await ctx.out.line(
          `added ${id} as ${m?.voter ? 'a voter' : 'a learner'}; members: ${memberList(view)}`,
        );
      }),
    );

  cluster
    .command('remove')
    .summary('remove a member')
    .description('Removes a member (voter or learner) from the cluster.')
    .argument('<id>', 'node id')
    .action((id: string, _opts, cmd: Command) =>
      run(cmd, async (ctx) => {
        const view = await ctx
          .cluster()
          .request<ClusterView>('DELETE', `/cluster/members/${encodeURIComponent(id)}`, {
            leader: true,
            write: true,
          });
        if (ctx.json) return ctx.out.document(view);
        await ctx.out.line(`removed ${id}; members: ${memberList(view)}`);
      }),
    );

  cluster
    .command('transfer')
    .summary('hand leadership over')
    .description('Hands leadership to <to>, or to the most caught-up voter.')
    .argument('[to]', 'node id of the new leader')
    .action((to: string | undefined, _opts, cmd: Command) =>
      run(cmd, async (ctx) => {
        const r = await ctx.cluster().request<{ leaderId: string }>('POST', '/cluster/leadership-transfer', {
          body: to === undefined ? {} : { to },
          leader: true,
          write: true,
        });
        if (ctx.json) return ctx.out.document(r);
        await ctx.out.line(`leader is now ${r.leaderId}`);
      }),
    );

  cluster
    .command('snapshot')
    .summary('make a node take a snapshot now')
    .description(
      'Makes the first answering node of --url take a snapshot of its state now (pass one --url to choose).',
    )
    .action((_opts, cmd: Command) =>
      run(cmd, async (ctx) => {
        const r = await ctx
          .cluster()
          .request<{ index: number; term: number }>('POST', '/cluster/snapshot', { write: true });
        if (ctx.json) return ctx.out.document(r);
        await ctx.out.line(`snapshot taken at index ${r.index} (term ${r.term})`);
      }),
    );
}

function memberList(view: ClusterView): string {
  return view.members.map((m) => `${m.id}${m.voter ? '' : ' (learner)'}`).join(', ');
}

interface MemberStatus extends ClusterMember {
  reachable: boolean;
  role?: ClusterView['role'];
  term?: number;
  leaderId?: string | null;
  commitIndex?: number;
  appliedIndex?: number;
  lastLogIndex?: number;
  snapshotIndex?: number;
  error?: string;
}

async function status(ctx: Context): Promise<void> {
  const view = await ctx.cluster().cluster();
  const members: MemberStatus[] = await Promise.all(
    view.members.map(async (m): Promise<MemberStatus> => {
      try {
        const v = m.id === view.nodeId ? view : await ctx.node(m.httpUrl, memberViewTimeoutMs).cluster();
        return {
          ...m,
          reachable: true,
          role: v.role,
          term: v.term,
          leaderId: v.leaderId,
          commitIndex: v.commitIndex,
          appliedIndex: v.appliedIndex,
          lastLogIndex: v.lastLogIndex,
          snapshotIndex: v.snapshot.index,
        };
      } catch (err) {
        return { ...m, reachable: false, error: (err as Error).message };
      }
    }),
  );
  if (ctx.json)
    return ctx.out.document({
      seenFrom: view.nodeId,
      leaderId: view.leaderId,
      leaderUrl: view.leaderUrl,
      term: view.term,
      commitIndex: view.commitIndex,
      members,
    });
  await ctx.out.line(
    view.leaderId
      ? `leader ${view.leaderId} (${view.leaderUrl ?? '?'}), term ${view.term}, commit index ${view.commitIndex}; seen from ${view.nodeId}`
      : `no leader known (term ${view.term}); seen from ${view.nodeId}`,
  );
  await ctx.out.line(
    table(
      ['ID', 'ROLE', 'VOTER', 'HTTP', 'RAFT', 'TERM', 'COMMIT', 'APPLIED', 'LAST LOG', 'SNAPSHOT'],
      members.map((m) => [
        m.id,
        m.reachable ? m.role : 'unreachable',
        m.voter ? 'yes' : 'learner',
        m.httpUrl,
        m.raftAddress,
        m.term,
        m.commitIndex,
        m.appliedIndex,
        m.lastLogIndex,
        m.snapshotIndex,
      ]),
    ),
  );
}
