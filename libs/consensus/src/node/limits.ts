/** Limits of the node shell, with their units. */

/** Readies taken from the core but not yet advanced (their persists queue up behind the fsync in flight). */
export const readiesInflightMax = 16;

/** Applying committed entries yields to the event loop after this long, so timers and IO keep going. */
export const applySliceMsMax = 10;

/** stop({ transferLeadership }) waits at most this long for another voter to take over. */
export const stopTransferTimeoutMs = 2_000;

/** A leadership transfer that has not produced a new leader by then fails with 'timeout' (the floor). */
export const transferTimeoutMsMin = 2_000;
/** ...or this many election timeouts, whichever is longer. */
export const transferTimeoutElections = 3;

/** addMember: a learner counts as caught up when its match index is within this many entries of the leader's last. */
export const catchUpSlackEntries = 64;
/** addMember: how long a learner may take to catch up before promotion is abandoned. */
export const catchUpTimeoutMsDefault = 60_000;

/** Start-up scans the applied part of the log for configuration entries, this many bytes per read. */
export const configScanBytesMax = 4 * 1024 * 1024;

/**
 * When the leader's process is gone (its Raft port refuses connections), the remaining voters campaign in the
 * order of their ids: the first after leaderGoneFirstMs (+ jitter), each next one leaderGoneStepMs later, so
 * that followers which all saw the leader die do not split the vote. The first wait lets the others notice
 * too (a voter that still counts on its leader ignores vote requests). Each later one campaigns only if no
 * leader appeared meanwhile.
 */
export const leaderGoneFirstMs = 5;
export const leaderGoneStepMs = 40;
export const leaderGoneJitterMs = 10;
/** A voter whose first round failed (the others had not noticed yet) tries once more this much later. */
export const leaderGoneRetryMs = 150;
