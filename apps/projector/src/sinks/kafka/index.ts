export { KafkaSink, eventRecord } from './kafka-sink';
export type { KafkaSinkOptions } from './kafka-sink';
export type { KafkaLogger, ProducerRecord, TransactionalProducer } from './producer';
export { ProducerError } from './producer';
export { categoryOf, checkpointTopicFor, defaultTransactionalId, legalTopicName, topicFor } from './topics';
export type { TopicMode } from './topics';
