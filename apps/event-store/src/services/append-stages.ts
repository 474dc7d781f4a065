import { StageHistogram, stageBuckets } from '@app/consensus';

export type AppendStage = 'http' | 'batch' | 'commit' | 'answer' | 'total';

/**
 * Where an append's time goes on the node that serves it, as the histogram
 * `eventstore_append_stage_seconds{stage}`: `http` (request head read until the command is handed to the
 * batcher: body, JSON parse, validation, encoding), `batch` (waiting for the batch to be proposed; once per
 * batch, its oldest command), `commit` (proposed until the batch's result is back: Raft's own stages are in
 * `raft_proposal_stage_seconds`), `answer` (result back until the response is written) and `total`.
 * `http`, `answer` and `total` are measured on the append fast path (nearly every append takes it).
 * The histogram is registered by MetricsService; until then observations are kept but not served.
 */
export class AppendStages {
  readonly histogram = new StageHistogram(
    'eventstore_append_stage_seconds',
    'Append latency by stage on the serving node: http (head until handed to the batcher), batch (waiting to be proposed), commit (proposed until applied), answer (applied until the response is written), total',
    'stage',
    stageBuckets,
  );
  private readonly byStage: Record<AppendStage, (seconds: number) => void>;

  constructor() {
    const h = this.histogram;
    this.byStage = {
      http: h.child('http'),
      batch: h.child('batch'),
      commit: h.child('commit'),
      answer: h.child('answer'),
      total: h.child('total'),
    };
  }

  observe(stage: AppendStage, ms: number): void {
    this.byStage[stage](ms > 0 ? ms / 1000 : 0);
  }
}
