import { parentPort } from 'node:worker_threads';
import { MergeJob, runMergeJob } from './merge-job';

/**
 * The merge thread's entry (merge-thread.ts starts it): runs each job it is sent and answers with the output
 * run's description or the error's message. Jobs sent while one runs interleave at its file writes.
 */
if (parentPort === null) throw new Error('merge-worker: not started as a worker thread');
const port = parentPort;
port.on('message', (m: { id: number; job: MergeJob }) => {
  runMergeJob(m.job).then(
    (info) => port.postMessage({ id: m.id, info }),
    (e: Error) => port.postMessage({ id: m.id, error: e.message }),
  );
});
