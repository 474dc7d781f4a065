export { DurableStorage, parseRepairOption } from './durable-storage';
export type { DurableStorageOptions, RepairOption, StorageLogger, StorageStats } from './durable-storage';
export { StorageCorruptionError, StorageFailedError } from './errors';
export { nodeFileOps } from './file-ops';
export type { FileOps } from './file-ops';
