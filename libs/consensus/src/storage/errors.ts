export const repairHint =
  'to discard the local log and snapshots and rejoin from the leader, restart with --repair=discard-and-rejoin (or REPAIR=discard-and-rejoin)';

/** Damage found on disk that recovery must not paper over (it could hide acknowledged data). */
export class StorageCorruptionError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly detail: string,
  ) {
    super(`storage corruption in ${file} at offset ${offset}: ${detail}; ${repairHint}`);
    this.name = 'StorageCorruptionError';
  }
}

/** The disk refused a write: nothing more is accepted, nothing not durable is acknowledged. */
export class StorageFailedError extends Error {
  constructor(
    override readonly cause: Error,
    readonly where: string,
  ) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(
      `storage failed (${code ?? cause.message}) while ${where}: no more writes are accepted; ` +
        `free space or replace the disk, then restart the node (${cause.message})`,
    );
    this.name = 'StorageFailedError';
  }
}
