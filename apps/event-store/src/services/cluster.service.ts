import { Inject, Injectable, Logger } from '@nestjs/common';
import { NodeError, NodeStatus } from '@app/consensus';
import { ApiError } from '../http/api-error';
import { AddMemberDto } from '../http/dto';
import { NodeRuntime } from '../runtime/node-runtime';
import { NODE_RUNTIME } from './tokens';

/** A learner is promoted once its match index reaches the commit index seen when catch-up began. */
const catchUpMsMax = 300_000;
const catchUpPollMs = 100;

export interface MemberView {
  id: string;
  httpUrl: string;
  raftAddress: string;
  voter: boolean;
  matchIndex?: number;
}

export interface ClusterView {
  nodeId: string;
  role: 'leader' | 'follower' | 'candidate' | 'learner';
  term: number;
  leaderId: string | null;
  leaderUrl: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  snapshot: { index: number; term: number };
  members: MemberView[];
}

@Injectable()
export class ClusterService {
  private readonly logger = new Logger('cluster');

  constructor(@Inject(NODE_RUNTIME) private readonly rt: NodeRuntime) {}

  view(): ClusterView {
    return clusterView(this.rt.node.status(), this.rt.config.nodeId);
  }

  /** Adds a learner, waits for it to catch up, then promotes it by joint consensus (leader only). */
  async addMember(dto: AddMemberDto): Promise<ClusterView> {
    this.rt.requireLeader();
    const config = this.rt.node.status().config;
    const isVoter = config.voters.includes(dto.id) || config.outgoing.includes(dto.id);
    if (isVoter) return this.view();
    if (!config.learners.includes(dto.id)) {
      this.logger.log(`adding ${dto.id} (${dto.raftAddress}, ${dto.httpUrl}) as a learner`);
      await this.rt.node.changeMembership({
        type: 'addLearner',
        id: dto.id,
        address: { raftAddress: dto.raftAddress, httpUrl: dto.httpUrl.replace(/\/+$/, '') },
      });
    }
    if (!dto.promote) return this.view();
    await this.waitCaughtUp(dto.id);
    this.logger.log(`promoting ${dto.id} to voter`);
    await this.rt.node.changeMembership({ type: 'promote', id: dto.id });
    return this.view();
  }

  async removeMember(id: string): Promise<ClusterView> {
    this.rt.requireLeader();
    const c = this.rt.node.status().config;
    if (![...c.voters, ...c.outgoing, ...c.learners].includes(id)) {
      throw ApiError.withBody(404, {
        error: 'member_not_found',
        message: `${id} is not a member of the cluster`,
      });
    }
    this.logger.log(`removing ${id}`);
    await this.rt.node.changeMembership({ type: 'remove', id });
    return this.view();
  }

  async transferLeadership(to: string | undefined): Promise<{ leaderId: string }> {
    this.rt.requireLeader();
    if (to !== undefined && !this.rt.node.status().config.voters.includes(to)) {
      throw ApiError.invalid(`to: ${to} is not a voter of the cluster`, [
        { field: 'to', problem: 'not a voter' },
      ]);
    }
    const leaderId = await this.rt.node.transferLeadership(to);
    return { leaderId };
  }

  async snapshot(): Promise<{ index: number; term: number }> {
    const meta = await this.rt.node.snapshotNow();
    return { index: meta.index, term: meta.term };
  }

  private async waitCaughtUp(id: string): Promise<void> {
    const target = this.rt.node.status().commit;
    const deadline = Date.now() + catchUpMsMax;
    while (Date.now() < deadline) {
      const s = this.rt.node.status();
      if (s.role !== 'leader')
        throw new NodeError('not_leader', `leadership lost while ${id} was catching up`, s.leaderId);
      if ((s.progress[id]?.match ?? 0) >= target) return;
      await new Promise((r) => setTimeout(r, catchUpPollMs));
    }
    throw new NodeError(
      'timeout',
      `learner ${id} did not catch up to index ${target} within ${catchUpMsMax} ms; it stays a learner`,
    );
  }
}

export function clusterView(s: NodeStatus, selfId: string): ClusterView {
  const c = s.config;
  const ids = [...new Set([...c.voters, ...c.outgoing, ...c.learners])];
  const role = s.role === 'pre-candidate' ? 'candidate' : s.role;
  return {
    nodeId: selfId,
    role: c.learners.includes(selfId) && role === 'follower' ? 'learner' : role,
    term: s.term,
    leaderId: s.leaderId,
    leaderUrl: s.leaderId ? (c.addresses[s.leaderId]?.httpUrl ?? null) : null,
    commitIndex: s.commit,
    appliedIndex: s.applied,
    lastLogIndex: s.lastIndex,
    snapshot: { index: s.snapshot.index, term: s.snapshot.term },
    members: ids.map((id) => {
      const m: MemberView = {
        id,
        httpUrl: c.addresses[id]?.httpUrl ?? '',
        raftAddress: c.addresses[id]?.raftAddress ?? '',
        voter: c.voters.includes(id) || c.outgoing.includes(id),
      };
      if (s.role === 'leader') m.matchIndex = id === selfId ? s.lastIndex : (s.progress[id]?.match ?? 0);
      return m;
    }),
  };
}
