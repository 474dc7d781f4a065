import { crc32c } from '@node-rs/crc32';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { SnapshotPart } from '@app/consensus';
import { EventFileInfo, isEventFileName, OFFSETS_EVERY } from './event-files';
import { RunInfo } from './stream-runs/run-file';

/**
 * A cut: the state machine's durable state at one applied index, in its own directory
 * `cuts/<index, 20 digits>/`: manifest.json, state.bin (indexes, idempotency window, projection
 * checkpoints) and hard links to the event files (closed files are immutable; the open one is linked and
 * its length at the cut recorded, so later appends past that length are ignored and truncated on restart).
 * Taking a cut copies no event history.
 *
 * The manifest records the CRC-32C of every file's bytes up to its cut length (`crc32c`, and `stateCrc32c`
 * for state.bin), so the snapshot archive of a cut (archiveParts) can be described without reading the
 * history. Manifests written before these fields existed still load; their CRCs are computed when needed.
 */
export interface CutManifest {
  format: typeof CUT_FORMAT;
  index: number;
  lastPosition: number;
  files: CutFileInfo[];
  /** Byte lengths of the sections of state.bin, in order. */
  sections: number[];
  /** CRC-32C of state.bin (absent in older cuts). */
  stateCrc32c?: number;
  /**
   * The stream index as run files (hard links, immutable), when the node keeps its index on disk; state.bin's
   * stream-index section is then empty. Absent: the index is in state.bin.
   */
  streamIndex?: CutStreamIndex;
  /** state.bin's offsets section holds one offset per this many positions (absent: one per position). */
  offsetsEvery?: number;
  /**
   * Partition states of projections kept on disk, as key → value run files (hard links, immutable); the
   * projection checkpoints in state.bin say which runs are whose.
   */
  projectionRuns?: RunInfo[];
}

export interface CutStreamIndex {
  runs: RunInfo[];
  streams: number;
}

/** An event file in a cut: `bytes` is its length at the cut, `crc32c` the CRC-32C of those bytes (absent in older cuts). */
export interface CutFileInfo extends EventFileInfo {
  crc32c?: number;
}

export const CUT_FORMAT = 'event-store-cut/1';
const MANIFEST = 'manifest.json';
const STATE = 'state.bin';
const CUT_NAME_RE = /^\d{20}$/;

export function cutDirName(index: number): string {
  return String(index).padStart(20, '0');
}

/** Indexes of the complete cuts in `cutsDir`, ascending. */
export function listCuts(cutsDir: string): number[] {
  return fs
    .readdirSync(cutsDir)
    .filter((n) => CUT_NAME_RE.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Removes leftovers of interrupted cut writes or restores. */
export function removeTemporaryCuts(cutsDir: string): void {
  for (const n of fs.readdirSync(cutsDir)) {
    if (n.startsWith('tmp-')) fs.rmSync(path.join(cutsDir, n), { recursive: true, force: true });
  }
}

async function fsyncPath(p: string): Promise<void> {
  const h = await fsp.open(p, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes a cut durably: links the event files (`files` must be flushed to the OS), writes state.bin and
 * the manifest, fsyncs everything, then renames the directory into place. Returns its path.
 */
export async function writeCut(
  cutsDir: string,
  eventsDir: string,
  index: number,
  lastPosition: number,
  files: CutFileInfo[],
  sections: (Buffer | Buffer[])[],
  streamIndex?: { index: CutStreamIndex; dir: string },
  projectionRuns?: { runs: RunInfo[]; dir: string },
): Promise<string> {
  const final = path.join(cutsDir, cutDirName(index));
  if (fs.existsSync(final)) return final;
  const tmp = path.join(cutsDir, `tmp-${cutDirName(index)}-${process.pid}-${Date.now()}`);
  await fsp.mkdir(tmp);
  for (const f of files) {
    await fsp.link(path.join(eventsDir, f.name), path.join(tmp, f.name));
    await fsyncPath(path.join(tmp, f.name));
  }
  const linked = [
    ...(streamIndex?.index.runs ?? []).map((r) => ({ r, dir: streamIndex!.dir })),
    ...(projectionRuns?.runs ?? []).map((r) => ({ r, dir: projectionRuns!.dir })),
  ];
  for (const { r, dir } of linked) {
    await fsp.link(path.join(dir, r.name), path.join(tmp, r.name));
    await fsyncPath(path.join(tmp, r.name));
  }
  const parts = sections.flatMap((s) => (Array.isArray(s) ? s : [s]));
  const stateCrc = await crc32cYielding(parts);
  const manifest: CutManifest = {
    format: CUT_FORMAT,
    index,
    lastPosition,
    files,
    sections: sections.map(sectionBytes),
    stateCrc32c: stateCrc >>> 0,
    offsetsEvery: OFFSETS_EVERY,
    ...(streamIndex ? { streamIndex: streamIndex.index } : {}),
    ...(projectionRuns ? { projectionRuns: projectionRuns.runs } : {}),
  };
  await writeFileSynced(path.join(tmp, STATE), parts);
  await writeFileSynced(path.join(tmp, MANIFEST), [Buffer.from(JSON.stringify(manifest))]);
  await fsyncPath(tmp);
  await fsp.rename(tmp, final);
  await fsyncPath(cutsDir);
  return final;
}

/** Length of a state.bin section given as one buffer or as its chunks. */
export function sectionBytes(s: Buffer | Buffer[]): number {
  return Array.isArray(s) ? s.reduce((a, b) => a + b.length, 0) : s.length;
}

/** CRC-32C over the parts in slices of a few MiB, yielding to the event loop between slices. */
async function crc32cYielding(parts: Buffer[]): Promise<number> {
  const slice = 4 * 1024 * 1024;
  let crc = 0;
  for (const p of parts) {
    for (let o = 0; o < p.length; o += slice) {
      crc = crc32c(p.subarray(o, Math.min(p.length, o + slice)), crc);
      if (p.length > slice) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return crc;
}

async function writeFileSynced(file: string, parts: Buffer[]): Promise<void> {
  const h = await fsp.open(file, 'w');
  try {
    await h.writev(parts);
    await h.sync();
  } finally {
    await h.close();
  }
}

export function readManifest(cutDir: string): CutManifest {
  return parseManifest(cutDir, fs.readFileSync(path.join(cutDir, MANIFEST)));
}

function parseManifest(cutDir: string, bytes: Buffer): CutManifest {
  const m = JSON.parse(bytes.toString('utf8')) as CutManifest;
  if (m.format !== CUT_FORMAT)
    throw new Error(`cut ${cutDir}: format '${m.format}', expected '${CUT_FORMAT}'`);
  return m;
}

export function readSections(cutDir: string, manifest: CutManifest): Buffer[] {
  const buf = fs.readFileSync(path.join(cutDir, STATE));
  const total = manifest.sections.reduce((a, b) => a + b, 0);
  if (buf.length !== total)
    throw new Error(`cut ${cutDir}: state.bin has ${buf.length} bytes, manifest says ${total}`);
  const out: Buffer[] = [];
  let o = 0;
  for (const len of manifest.sections) {
    out.push(buf.subarray(o, o + len));
    o += len;
  }
  return out;
}

/**
 * Makes `eventsDir` hold exactly the cut's event files at the cut's lengths: same-inode files are truncated
 * (dropping data past the cut), missing or foreign ones are replaced by links to the cut's, others removed.
 *
 * Invariant that makes the in-place truncation safe: an event file's inode is shared by the events
 * directory, the cuts, and the node's Raft snapshots (which hard-link the cut's files, each referencing only
 * the first `bytes` of them). Files only grow, and every cut and snapshot was taken from a cut no newer than
 * the latest one, so the latest cut's length of a file is ≥ every length any cut or snapshot references in
 * it: truncating to the latest cut's length never cuts into a byte another reference needs. Loading an
 * OLDER cut (the latest is unusable) would break that, so then `copyToShorten` gives the events directory a
 * shortened copy instead and leaves the shared inode alone.
 */
export function installCutFiles(
  cutDir: string,
  eventsDir: string,
  manifest: CutManifest,
  opts: { copyToShorten?: boolean } = {},
): void {
  const wanted = new Map(manifest.files.map((f) => [f.name, f]));
  for (const n of fs.readdirSync(eventsDir)) {
    if (!wanted.has(n)) fs.rmSync(path.join(eventsDir, n), { force: true });
  }
  for (const f of manifest.files) {
    const src = path.join(cutDir, f.name);
    const dst = path.join(eventsDir, f.name);
    const srcStat = fs.statSync(src);
    if (srcStat.size < f.bytes)
      throw new Error(`cut ${cutDir}: ${f.name} has ${srcStat.size} bytes, manifest says ${f.bytes}`);
    const dstStat = fs.statSync(dst, { throwIfNoEntry: false });
    if (srcStat.size > f.bytes && opts.copyToShorten) {
      const tmp = `${dst}.shortened`;
      fs.rmSync(tmp, { force: true });
      copyPrefixSync(src, tmp, f.bytes);
      fs.renameSync(tmp, dst);
      continue;
    }
    if (!dstStat || dstStat.ino !== srcStat.ino || dstStat.dev !== srcStat.dev) {
      fs.rmSync(dst, { force: true });
      fs.linkSync(src, dst);
    }
    if (srcStat.size > f.bytes) fs.truncateSync(dst, f.bytes);
  }
}

function copyPrefixSync(src: string, dst: string, bytes: number): void {
  const inFd = fs.openSync(src, 'r');
  try {
    const outFd = fs.openSync(dst, 'w');
    try {
      const buf = Buffer.allocUnsafe(ARCHIVE_CHUNK_BYTES);
      for (let off = 0; off < bytes;) {
        const n = fs.readSync(inFd, buf, 0, Math.min(buf.length, bytes - off), off);
        if (n === 0) throw new Error(`cut: ${src} ended at ${off} of ${bytes} bytes`);
        for (let w = 0; w < n;) w += fs.writeSync(outFd, buf, w, n - w, off + w);
        off += n;
      }
      fs.fsyncSync(outFd);
    } finally {
      fs.closeSync(outFd);
    }
  } finally {
    fs.closeSync(inFd);
  }
}

/**
 * CRC-32C of `file`'s bytes [from, to), continuing `initial` (the CRC of the bytes before `from`). Reads
 * asynchronously in 1 MiB chunks, so the event loop is never blocked for long.
 */
export async function crc32cOfFile(file: string, from: number, to: number, initial = 0): Promise<number> {
  let crc = initial;
  if (to <= from) return crc >>> 0;
  const h = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(ARCHIVE_CHUNK_BYTES, to - from));
    for (let off = from; off < to;) {
      const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, to - off), off);
      if (bytesRead === 0) throw new Error(`cut: ${file} ended at ${off} of ${to} bytes`);
      crc = crc32c(buf.subarray(0, bytesRead), crc);
      off += bytesRead;
    }
  } finally {
    await h.close();
  }
  return crc >>> 0;
}

// ---- archive: the cut as one byte stream (snapshot transfer) ----
// "ESCUT001" then per file: u16 nameLen, name, f64 size, bytes, u32 crc32c(bytes); end: u16 0.

const ARCHIVE_MAGIC = Buffer.from('ESCUT001', 'latin1');
const ARCHIVE_CHUNK_BYTES = 1024 * 1024;

/**
 * The cut's archive as parts (their concatenation is the archive): the magic, then per entry the header as
 * bytes, the file's first `size` bytes as a file part in the cut directory (with its CRC-32C), and the CRC
 * tail as bytes; then the end marker. Entries: manifest.json, state.bin, the event files up to their cut
 * lengths. The CRCs come from the manifest; those missing there (older cuts) are computed by reading.
 */
export async function archiveParts(cutDir: string): Promise<SnapshotPart[]> {
  const manifestBytes = fs.readFileSync(path.join(cutDir, MANIFEST));
  const manifest = parseManifest(cutDir, manifestBytes);
  const statePath = path.join(cutDir, STATE);
  const stateBytes = manifest.sections.reduce((a, b) => a + b, 0);
  const entries: { name: string; bytes: number; crc: number }[] = [
    { name: MANIFEST, bytes: manifestBytes.length, crc: crc32c(manifestBytes) >>> 0 },
    {
      name: STATE,
      bytes: stateBytes,
      crc: manifest.stateCrc32c ?? (await crc32cOfFile(statePath, 0, stateBytes)),
    },
  ];
  for (const f of manifest.files) {
    const crc = f.crc32c ?? (await crc32cOfFile(path.join(cutDir, f.name), 0, f.bytes));
    entries.push({ name: f.name, bytes: f.bytes, crc });
  }
  for (const r of [...(manifest.streamIndex?.runs ?? []), ...(manifest.projectionRuns ?? [])])
    entries.push({ name: r.name, bytes: r.bytes, crc: r.crc32c });
  const parts: SnapshotPart[] = [{ bytes: ARCHIVE_MAGIC }];
  for (const e of entries) {
    const name = Buffer.from(e.name, 'latin1');
    const head = Buffer.allocUnsafe(2 + name.length + 8);
    head.writeUInt16LE(name.length, 0);
    name.copy(head, 2);
    head.writeDoubleLE(e.bytes, 2 + name.length);
    parts.push({ bytes: head });
    parts.push({ file: path.join(cutDir, e.name), length: e.bytes, crc32c: e.crc >>> 0 });
    const tail = Buffer.allocUnsafe(4);
    tail.writeUInt32LE(e.crc >>> 0, 0);
    parts.push({ bytes: tail });
  }
  parts.push({ bytes: Buffer.alloc(2) });
  return parts;
}

/**
 * Streams parts: bytes as they are, file parts read in 1 MiB chunks and checked against their CRC (a file
 * that changed since its CRC was recorded fails the stream at its end instead of sending a bad archive).
 */
export async function* streamParts(parts: SnapshotPart[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) {
    if ('bytes' in p) {
      if (p.bytes.length > 0) yield p.bytes;
      continue;
    }
    if (p.length === 0) continue;
    const h = await fsp.open(p.file, 'r');
    let crc = 0;
    try {
      for (let off = 0; off < p.length;) {
        const buf = Buffer.allocUnsafe(Math.min(ARCHIVE_CHUNK_BYTES, p.length - off));
        const { bytesRead } = await h.read(buf, 0, buf.length, off);
        if (bytesRead === 0)
          throw new Error(`snapshot archive: ${p.file} ended at ${off} of ${p.length} bytes`);
        const chunk = buf.subarray(0, bytesRead);
        crc = crc32c(chunk, crc);
        off += bytesRead;
        yield chunk;
      }
    } finally {
      await h.close();
    }
    if (crc >>> 0 !== p.crc32c >>> 0)
      throw new Error(`snapshot archive: ${p.file} does not match its recorded CRC-32C (changed or damaged)`);
  }
}

/** Streams a cut as one archive: the concatenation of archiveParts (same bytes, same format). */
export async function* archiveCut(cutDir: string): AsyncGenerator<Uint8Array> {
  yield* streamParts(await archiveParts(cutDir));
}

/** Pulls exact byte counts out of an async chunk stream. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(data: AsyncIterable<Uint8Array>) {
    this.it = data[Symbol.asyncIterator]();
  }

  /** Up to n bytes (fewer only at the end of the stream); at most n buffered. */
  async take(n: number): Promise<Buffer> {
    while (this.buffered < n) {
      const r = await this.it.next();
      if (r.done) break;
      const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.chunks.push(b);
      this.buffered += b.length;
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  async exact(n: number, what: string): Promise<Buffer> {
    const b = await this.take(n);
    if (b.length !== n) throw new Error(`snapshot archive: truncated in ${what} (${b.length} of ${n} bytes)`);
    return b;
  }

  async drainCheck(): Promise<void> {
    const extra = await this.take(1);
    if (extra.length > 0) throw new Error('snapshot archive: bytes after the end marker');
  }
}

function isArchiveEntryName(n: string): boolean {
  // Stream index runs, then projection runs: proj-<projection name>-<number>.run (names cannot hold '/').
  return (
    n === MANIFEST ||
    n === STATE ||
    isEventFileName(n) ||
    /^\d{10}\.run$/.test(n) ||
    /^proj-[A-Za-z0-9._-]{1,128}-\d{10}\.run$/.test(n)
  );
}

/** Writes an archive's files into `dir` (created), verifying each file's CRC, fsyncing them. Returns the manifest. */
export async function extractArchive(data: AsyncIterable<Uint8Array>, dir: string): Promise<CutManifest> {
  await fsp.mkdir(dir, { recursive: true });
  const r = new ByteReader(data);
  const magic = await r.exact(ARCHIVE_MAGIC.length, 'magic');
  if (!magic.equals(ARCHIVE_MAGIC))
    throw new Error(`snapshot archive: bad magic '${magic.toString('latin1')}'`);
  while (true) {
    const nameLen = (await r.exact(2, 'entry header')).readUInt16LE(0);
    if (nameLen === 0) break;
    const name = (await r.exact(nameLen, 'entry name')).toString('latin1');
    if (!isArchiveEntryName(name)) throw new Error(`snapshot archive: unexpected entry '${name}'`);
    const size = (await r.exact(8, `${name} size`)).readDoubleLE(0);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new Error(`snapshot archive: ${name} has invalid size ${size}`);
    const h = await fsp.open(path.join(dir, name), 'w');
    let crc = 0;
    try {
      for (let off = 0; off < size;) {
        const chunk = await r.exact(Math.min(ARCHIVE_CHUNK_BYTES, size - off), name);
        crc = crc32c(chunk, crc);
        await h.write(chunk, 0, chunk.length, off);
        off += chunk.length;
      }
      await h.sync();
    } finally {
      await h.close();
    }
    const expected = (await r.exact(4, `${name} crc`)).readUInt32LE(0);
    if (expected !== crc >>> 0) throw new Error(`snapshot archive: ${name} CRC mismatch (corrupt transfer)`);
  }
  await r.drainCheck();
  await fsyncPath(dir);
  const manifest = readManifest(dir);
  for (const f of [
    ...manifest.files,
    ...(manifest.streamIndex?.runs ?? []),
    ...(manifest.projectionRuns ?? []),
  ]) {
    const st = fs.statSync(path.join(dir, f.name), { throwIfNoEntry: false });
    if (!st || st.size !== f.bytes)
      throw new Error(`snapshot archive: ${f.name} missing or of the wrong size`);
  }
  return manifest;
}
