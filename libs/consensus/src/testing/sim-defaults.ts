import { RaftCore } from '../core/raft';
import { CoreFactory } from './sim-node';

/** The real core: what the CLI and the specs simulate (the specs also plant mistakes in it). */
export const defaultCoreFactory: CoreFactory = (options, log, initial) => new RaftCore(options, log, initial);
