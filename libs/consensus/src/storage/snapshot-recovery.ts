/**
 * Opening the snapshot directory at start-up: leftovers of interrupted writes are removed (`tmp-*`), an
 * interrupted incoming transfer is handed back for resuming (`partial/`, see snapshot-transfer.ts), every
 * published snapshot's manifest is read and checked, and the latest snapshot's files are checked against
 * their manifest:
 *   version 1: the whole `data` file, every block against its checksum;
 *   version 2, cheaply: every part's file present and long enough, the small bytes parts' checksums (the
 *   linked parts are checked when streamed, see snapshot-store.ts).
 * Damage is a StorageCorruptionError naming the file.
 */
import { crc32cRange } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, readFully } from './file-ops';
import {
  PartsManifest,
  Published,
  StreamManifest,
  bytesFileName,
  partsManifestVersion,
  toPublished,
  readManifest,
} from './snapshot-manifest';

/**
 * Opens (or creates) `dir` and returns its published snapshots, newest first, the latest checked.
 * `recoverPartial` is called if an incoming transfer was interrupted.
 */
export function openSnapshots(ops: FileOps, dir: string, recoverPartial: () => void): Published[] {
  const found: Published[] = [];
  ops.mkdirSync(dir, { recursive: true });
  for (const name of ops.readdirSync(dir)) {
    const path = `${dir}/${name}`;
    if (name.startsWith('tmp-')) ops.rmSync(path, { recursive: true, force: true });
    else if (name === 'partial') recoverPartial();
    else if (/^\d{20}-\d+$/.test(name)) found.push(toPublished(path, readManifest(ops, path)));
  }
  found.sort((a, b) => b.meta.index - a.meta.index);
  if (found.length > 0) {
    const latest = found[0];
    if (latest.manifest.version === partsManifestVersion) verifyParts(ops, latest, latest.manifest);
    else verifyData(ops, latest, latest.manifest);
  }
  return found;
}

/** Version 1: reads the whole data file and compares it with the manifest's checksums. */
function verifyData(ops: FileOps, s: Published, m: StreamManifest): void {
  const path = `${s.dir}/data`;
  if (!ops.existsSync(path)) throw new StorageCorruptionError(path, 0, 'snapshot data file is missing');
  const size = ops.statSync(path).size;
  if (size !== m.size)
    throw new StorageCorruptionError(
      path,
      Math.min(size, m.size),
      `snapshot is ${size} bytes, its manifest says ${m.size}`,
    );
  const fd = ops.openSync(path, 'r');
  try {
    // One pass: every block against its checksum in the (checksummed) manifest. The whole-file checksum
    // would add a second pass over the data and could only disagree if the writer had built a wrong
    // manifest, so it is not recomputed here (a start-up reads the latest snapshot once).
    const buf = Buffer.allocUnsafe(m.blockBytes);
    const blocks = Math.ceil(m.size / m.blockBytes);
    if (m.blockCrc32c.length !== blocks)
      throw new StorageCorruptionError(
        path,
        0,
        `snapshot manifest lists ${m.blockCrc32c.length} block checksums for ${blocks} blocks`,
      );
    for (let pos = 0, block = 0; pos < m.size; pos += m.blockBytes, block++) {
      const n = readFully(ops, fd, buf, 0, Math.min(m.blockBytes, m.size - pos), pos);
      if (crc32cRange(buf, 0, n) !== m.blockCrc32c[block]) {
        throw new StorageCorruptionError(
          path,
          pos,
          `snapshot block ${block} does not match its manifest checksum`,
        );
      }
    }
  } finally {
    ops.closeSync(fd);
  }
}

/**
 * Version 2, cheaply: every part's file exists and holds its range; the bytes parts (small: headers) match
 * their checksums. Linked parts are not read here.
 */
function verifyParts(ops: FileOps, s: Published, m: PartsManifest): void {
  const manifestPath = `${s.dir}/manifest.json`;
  const total = m.parts.reduce((a, p) => a + p.length, 0);
  if (total !== m.size || m.parts.some((p) => !(p.length > 0) || !(p.offset >= 0)))
    throw new StorageCorruptionError(
      manifestPath,
      0,
      `snapshot manifest parts add up to ${total} bytes, its size is ${m.size}`,
    );
  const sizes = new Map<string, number>();
  for (const p of m.parts) {
    const path = `${s.dir}/${p.name}`;
    let size = sizes.get(p.name);
    if (size === undefined) {
      if (!ops.existsSync(path)) throw new StorageCorruptionError(path, 0, 'snapshot part is missing');
      size = ops.statSync(path).size;
      sizes.set(p.name, size);
    }
    if (size < p.offset + p.length)
      throw new StorageCorruptionError(
        path,
        size,
        `snapshot part is ${size} bytes, its manifest needs ${p.offset + p.length}`,
      );
  }
  const bytesParts = m.parts.filter((p) => p.kind === 'bytes');
  if (bytesParts.length === 0) return;
  const path = `${s.dir}/${bytesFileName}`;
  const bytes = ops.readFileSync(path);
  for (const p of bytesParts) {
    if (p.name !== bytesFileName || crc32cRange(bytes, p.offset, p.offset + p.length) !== p.crc32c)
      throw new StorageCorruptionError(
        path,
        p.offset,
        `snapshot bytes part at offset ${p.offset} does not match its manifest checksum`,
      );
  }
}
