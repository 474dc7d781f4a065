import { RaftCore } from '../core/raft';
import { MemoryStorage } from './memory-storage';
import { CoreFactory, SimStorage } from './sim-node';

/** The real core and the in-memory durable storage: what the CLI and the specs simulate. */
export const defaultCoreFactory: CoreFactory = (options, log, initial) => new RaftCore(options, log, initial);
export const defaultStorageFactory = (): SimStorage => new MemoryStorage();
