// Test tooling of the consensus library (`@app/consensus/testing`) for tests, benchmarks and other libraries'
// specs. Never imported by production code (lint: dependency-cruiser), never built into dist/.
export { Prng } from './prng';
export { CapturingLogger, appendRequest, startNode } from './transport-helpers';
export { waitFor } from './wait-for';
export { makeTestCertificates } from './tls-certs';
export type { TestCertificates } from './tls-certs';
export type { WaitOptions } from './wait-for';
export type { TestNode } from './transport-helpers';
// What the storage benchmark needs to know of the log's internals.
export { recordHeaderBytes } from '../storage/record';
export { syncsInFlightMaxDefault } from '../storage/limits';
