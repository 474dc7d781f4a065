import type { ProjectorConfig } from '../config';
import type { Logger } from '../runtime';
import type { Sink } from './sink';

/** The Kafka transactional id of a projector: stable across its restarts, distinct per topic layout. */
export function transactionalIdOf(config: ProjectorConfig): string {
  const mode = config.kafkaTopicMode === 'category' ? '-category' : '';
  return `${config.projectorId}-${config.kafkaTopic}${mode}`;
}

/** Builds the Kafka sink from the configuration; kafkajs is loaded only when the sink is on. */
export async function createKafkaSink(config: ProjectorConfig, logger: Logger): Promise<Sink> {
  const { KafkaSink } = await import('./kafka');
  const extra = (x?: Record<string, unknown>) =>
    x && Object.keys(x).length > 0 ? ` ${JSON.stringify(x)}` : '';
  return new KafkaSink({
    brokers: config.kafkaBrokers ?? [],
    topic: config.kafkaTopic,
    topicMode: config.kafkaTopicMode,
    partitions: config.kafkaPartitions,
    transactionalId: transactionalIdOf(config),
    clientId: config.projectorId,
    logger: {
      warn: (m, x) => logger.warn(`kafka: ${m}${extra(x)}`),
      error: (m, x) => logger.warn(`kafka: ${m}${extra(x)}`),
    },
  });
}
