import { HardState } from '../core/types';
import { crc32cRange } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, promisify, writeFully } from './file-ops';

const fileName = 'hardstate.json';

interface Stored extends HardState {
  crc32c: number;
}

function checksum(hs: HardState): number {
  const body = Buffer.from(JSON.stringify([hs.term, hs.vote, hs.commit]));
  return crc32cRange(body, 0, body.length);
}

/**
 * Term, vote and commit in one small JSON file, replaced atomically: temp file, fsync, rename, fsync of
 * the directory. Writes are serialized (one temp file); a crash leaves the old or the new state.
 */
export class HardStateFile {
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly ops: FileOps,
    private durable: HardState,
  ) {}

  static open(dir: string, ops: FileOps): HardStateFile {
    const path = `${dir}/${fileName}`;
    if (ops.existsSync(`${path}.tmp`)) ops.unlinkSync(`${path}.tmp`);
    if (!ops.existsSync(path)) return new HardStateFile(dir, ops, { term: 0, vote: null, commit: 0 });
    const text = ops.readFileSync(path, 'utf8');
    let stored: Stored;
    try {
      stored = JSON.parse(text) as Stored;
    } catch {
      throw new StorageCorruptionError(path, 0, 'hard state is not valid JSON');
    }
    const hs: HardState = { term: stored.term, vote: stored.vote ?? null, commit: stored.commit };
    if (
      !Number.isSafeInteger(hs.term) ||
      !Number.isSafeInteger(hs.commit) ||
      checksum(hs) !== stored.crc32c
    ) {
      throw new StorageCorruptionError(path, 0, 'hard state checksum mismatch');
    }
    return new HardStateFile(dir, ops, hs);
  }

  /** What the file holds (or is being replaced with by the last completed write). */
  current(): HardState {
    return this.durable;
  }

  /** Replaces the file atomically; resolves once durable. Calls complete in order. */
  write(hs: HardState): Promise<void> {
    const copy = { term: hs.term, vote: hs.vote, commit: hs.commit };
    const run = this.chain.then(() => this.writeNow(copy));
    this.chain = run.catch(() => {});
    return run;
  }

  private async writeNow(hs: HardState): Promise<void> {
    const { ops, dir } = this;
    const path = `${dir}/${fileName}`;
    const body = Buffer.from(JSON.stringify({ ...hs, crc32c: checksum(hs) }));
    const fd = ops.openSync(`${path}.tmp`, 'w');
    try {
      writeFully(ops, fd, body, 0, body.length, 0);
      await promisify<void>((cb) => ops.fsync(fd, cb));
    } finally {
      ops.closeSync(fd);
    }
    ops.renameSync(`${path}.tmp`, path);
    const dfd = ops.openSync(dir, 'r');
    try {
      await promisify<void>((cb) => ops.fsync(dfd, cb));
    } finally {
      ops.closeSync(dfd);
    }
    this.durable = hs;
  }
}
