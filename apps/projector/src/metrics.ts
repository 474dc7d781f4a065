import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The projector's Prometheus metrics (PROJECTOR.md "HTTP"). */
export class ProjectorMetrics {
  readonly registry = new Registry();
  readonly position = new Gauge({
    name: 'projector_position',
    help: 'Last position durably written by the sink (-1 before any)',
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly lag = new Gauge({
    name: 'projector_lag_events',
    help: "Events between the cluster's head and the sink's position",
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'projector_events_total',
    help: 'Events written by the sink',
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly up = new Gauge({
    name: 'projector_sink_up',
    help: '1 when the sink is connected and writing, 0 when paused or stopped',
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'projector_batch_duration_seconds',
    help: 'Time to write one batch (events and checkpoint in one transaction)',
    labelNames: ['sink'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly batchEvents = new Histogram({
    name: 'projector_batch_events',
    help: 'Events per written batch',
    labelNames: ['sink'],
    buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000],
    registers: [this.registry],
  });
  readonly head = new Gauge({
    name: 'projector_head_position',
    help: "The cluster's last position as last seen (-1 if empty or unknown)",
    registers: [this.registry],
  });
  readonly modelPosition = new Gauge({
    name: 'projector_read_model_position',
    help: 'Checkpoint of each Postgres read model',
    labelNames: ['model'],
    registers: [this.registry],
  });
}
