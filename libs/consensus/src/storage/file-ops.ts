import * as fs from 'fs';

/**
 * The file-system calls the storage makes, injectable so tests can make the disk fail (ENOSPC, EIO) at a
 * chosen call. The default is Node's `fs` itself.
 */
export type FileOps = Pick<
  typeof fs,
  | 'openSync'
  | 'closeSync'
  | 'readSync'
  | 'writeSync'
  | 'fsyncSync'
  | 'fdatasyncSync'
  | 'ftruncateSync'
  | 'fstatSync'
  | 'statSync'
  | 'renameSync'
  | 'unlinkSync'
  | 'linkSync'
  | 'mkdirSync'
  | 'readdirSync'
  | 'rmSync'
  | 'existsSync'
  | 'readFileSync'
  | 'read'
  | 'write'
  | 'fdatasync'
  | 'fsync'
>;

export const nodeFileOps: FileOps = fs;

/** Writes all of `buf[off, off+len)` at `pos` (writeSync may write less than asked). */
export function writeFully(
  ops: FileOps,
  fd: number,
  buf: Uint8Array,
  off: number,
  len: number,
  pos: number,
): void {
  let done = 0;
  while (done < len) {
    const n = ops.writeSync(fd, buf, off + done, len - done, pos + done);
    if (n <= 0) throw new Error(`short write: wrote ${done} of ${len} bytes at ${pos}`);
    done += n;
  }
}

/** Reads up to `len` bytes at `pos`; returns how many (less only at end of file). */
export function readFully(
  ops: FileOps,
  fd: number,
  buf: Uint8Array,
  off: number,
  len: number,
  pos: number,
): number {
  let done = 0;
  while (done < len) {
    const n = ops.readSync(fd, buf, off + done, len - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function fsyncDir(ops: FileOps, dir: string): void {
  const fd = ops.openSync(dir, 'r');
  try {
    ops.fsyncSync(fd);
  } finally {
    ops.closeSync(fd);
  }
}

/** Write a small file atomically: temp file, fsync, rename over the target, fsync the directory. */
export function writeFileAtomicSync(ops: FileOps, dir: string, name: string, data: Uint8Array): void {
  const tmp = `${dir}/${name}.tmp`;
  const fd = ops.openSync(tmp, 'w');
  try {
    writeFully(ops, fd, data, 0, data.length, 0);
    ops.fsyncSync(fd);
  } finally {
    ops.closeSync(fd);
  }
  ops.renameSync(tmp, `${dir}/${name}`);
  fsyncDir(ops, dir);
}

export function promisify<T>(
  start: (cb: (err: NodeJS.ErrnoException | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));
}
