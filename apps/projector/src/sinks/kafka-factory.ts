import type { ProjectorConfig } from '../config';
import type { Logger } from '../runtime';
import type { Sink } from './sink';

/** Builds the Kafka sink from the configuration; kafkajs is loaded only when the sink is on. */
export async function createKafkaSink(config: ProjectorConfig, logger: Logger): Promise<Sink> {
  void config;
  void logger;
  throw new Error('kafka sink: not wired yet');
}
