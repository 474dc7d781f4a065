/**
 * The snapshot manifest format: what `<snapshot dir>/manifest.json` says, how it is built, written, read back
 * and checked (its own CRC-32C), and how its parts map onto files.
 *
 * Version 1 (a streamed or received snapshot): `data` holds the bytes; the manifest holds index, term,
 * config, size and CRC-32C checksums (whole file and per 1 MiB block).
 *
 * Version 2 (a snapshot the state machine handed over in parts, see SnapshotPart): the snapshot's bytes are
 * the concatenation of the manifest's `parts`, each `length` bytes at `offset` of file `name`, with their
 * CRC-32C. Bytes parts live in the one file `bytes`; file parts are hard links (`part-N`) to the state
 * machine's files (see snapshot-store.ts).
 *
 * Checking the snapshot's files against a manifest at start-up is in snapshot-recovery.ts.
 */
import { ConfigState, SnapshotMeta } from '../core/types';
import { crc32cRange, crc32cUpdate } from './crc';
import { StorageCorruptionError } from './errors';
import { FileOps, writeFileAtomicSync } from './file-ops';

export const snapshotBlockBytes = 1024 * 1024;
export const streamManifestVersion = 1;
export const partsManifestVersion = 2;
/** The file of a version-2 snapshot that holds its bytes parts. */
export const bytesFileName = 'bytes';

/** Version 1: the snapshot is the file `data`. */
export interface StreamManifest {
  version: 1;
  index: number;
  term: number;
  config: ConfigState;
  size: number;
  crc32c: number;
  blockBytes: number;
  blockCrc32c: number[];
  manifestCrc32c: number;
}

/** One piece of a version-2 snapshot: `length` bytes at `offset` of `name`. */
export interface PartEntry {
  name: string;
  offset: number;
  length: number;
  crc32c: number;
  /** 'bytes': written by the store (checked at open); 'file': a state machine's file, linked or copied. */
  kind: 'bytes' | 'file';
}

/** Version 2: the snapshot is the concatenation of `parts`; `size` is their total length. */
export interface PartsManifest {
  version: 2;
  index: number;
  term: number;
  config: ConfigState;
  size: number;
  parts: PartEntry[];
  manifestCrc32c: number;
}

export type Manifest = StreamManifest | PartsManifest;

type ManifestBody = Omit<StreamManifest, 'manifestCrc32c'> | Omit<PartsManifest, 'manifestCrc32c'>;

/** Where the bytes of one part are: `length` bytes at `offset` of `path`, from `start` in the snapshot. */
export interface Located {
  path: string;
  offset: number;
  length: number;
  start: number;
  crc32c: number;
}

/** A published snapshot as the store keeps it in memory. */
export interface Published {
  meta: SnapshotMeta;
  manifest: Manifest;
  dir: string;
  parts: Located[];
}

function manifestChecksum(m: ManifestBody): number {
  const fields =
    m.version === partsManifestVersion
      ? [
          m.version,
          m.index,
          m.term,
          m.config,
          m.size,
          m.parts.map((p) => [p.name, p.offset, p.length, p.crc32c, p.kind]),
        ]
      : [m.version, m.index, m.term, m.config, m.size, m.crc32c, m.blockBytes, m.blockCrc32c];
  const body = Buffer.from(JSON.stringify(fields));
  return crc32cRange(body, 0, body.length);
}

/** The files holding the snapshot's bytes, in order. */
export function locate(dir: string, m: Manifest): Located[] {
  if (m.version !== partsManifestVersion)
    return m.size === 0
      ? []
      : [{ path: `${dir}/data`, offset: 0, length: m.size, start: 0, crc32c: m.crc32c }];
  const out: Located[] = [];
  let start = 0;
  for (const p of m.parts) {
    out.push({ path: `${dir}/${p.name}`, offset: p.offset, length: p.length, start, crc32c: p.crc32c });
    start += p.length;
  }
  return out;
}

/** The in-memory record of the snapshot in `dir` described by `m`. */
export function toPublished(dir: string, m: Manifest): Published {
  return {
    meta: { index: m.index, term: m.term, config: m.config },
    manifest: m,
    dir,
    parts: locate(dir, m),
  };
}

/** Running checksums of a byte stream: whole-file CRC and one CRC per block. */
export class Checksummer {
  crc = 0;
  size = 0;
  readonly blocks: number[] = [];
  private block = 0;
  private inBlock = 0;

  update(b: Uint8Array): void {
    this.crc = crc32cUpdate(this.crc, b);
    this.size += b.length;
    let o = 0;
    while (o < b.length) {
      const n = Math.min(b.length - o, snapshotBlockBytes - this.inBlock);
      this.block = crc32cUpdate(this.block, b.subarray(o, o + n));
      this.inBlock += n;
      o += n;
      if (this.inBlock === snapshotBlockBytes) this.endBlock();
    }
  }

  finish(): void {
    if (this.inBlock > 0) this.endBlock();
  }

  private endBlock(): void {
    this.blocks.push(this.block);
    this.block = 0;
    this.inBlock = 0;
  }
}

/** The version-1 manifest of a snapshot whose bytes `sums` went over. */
export function streamManifest(meta: SnapshotMeta, sums: Checksummer): StreamManifest {
  const body: Omit<StreamManifest, 'manifestCrc32c'> = {
    version: streamManifestVersion,
    index: meta.index,
    term: meta.term,
    config: meta.config,
    size: sums.size,
    crc32c: sums.crc,
    blockBytes: snapshotBlockBytes,
    blockCrc32c: sums.blocks,
  };
  return { ...body, manifestCrc32c: manifestChecksum(body) };
}

/** The version-2 manifest of a snapshot made of `parts` (`size` bytes in all). */
export function partsManifest(meta: SnapshotMeta, size: number, parts: PartEntry[]): PartsManifest {
  const body: Omit<PartsManifest, 'manifestCrc32c'> = {
    version: partsManifestVersion,
    index: meta.index,
    term: meta.term,
    config: meta.config,
    size,
    parts,
  };
  return { ...body, manifestCrc32c: manifestChecksum(body) };
}

/** Writes `manifest.json` into `dir` (atomically). */
export function writeManifest(ops: FileOps, dir: string, manifest: Manifest): void {
  writeFileAtomicSync(ops, dir, 'manifest.json', Buffer.from(JSON.stringify(manifest, null, 1)));
}

/** Reads `dir/manifest.json` and checks its version and checksum (StorageCorruptionError if it fails). */
export function readManifest(ops: FileOps, dir: string): Manifest {
  const path = `${dir}/manifest.json`;
  if (!ops.existsSync(path)) throw new StorageCorruptionError(path, 0, 'published snapshot has no manifest');
  let m: Manifest;
  try {
    m = JSON.parse(ops.readFileSync(path, 'utf8')) as Manifest;
  } catch {
    throw new StorageCorruptionError(path, 0, 'snapshot manifest is not valid JSON');
  }
  const version: unknown = m.version;
  if (version !== streamManifestVersion && version !== partsManifestVersion)
    throw new StorageCorruptionError(path, 0, `unknown snapshot manifest version ${String(version)}`);
  const { manifestCrc32c, ...body } = m;
  if (manifestChecksum(body) !== manifestCrc32c)
    throw new StorageCorruptionError(path, 0, 'snapshot manifest checksum mismatch');
  return m;
}
