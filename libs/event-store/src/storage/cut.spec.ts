import { crc32c } from '@node-rs/crc32';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SnapshotPart } from '@app/consensus';
import { EventStoreStateMachine } from '../state-machine';
import { appendEntry, ev, removeDir, tempDir } from '../testing/fixtures';
import {
  archiveCut,
  archiveParts,
  cutDirName,
  extractArchive,
  listCuts,
  readManifest,
  streamParts,
} from './cut';

jest.setTimeout(60_000);

/**
 * The archive format written out independently of cut.ts (the algorithm archiveCut had before parts):
 * "ESCUT001", per file u16 nameLen, name, f64 size, bytes, u32 crc32c(bytes), then u16 0; manifest.json,
 * state.bin, then the event files up to their cut lengths, every CRC computed from the bytes read here.
 */
function referenceArchive(cutDir: string): Buffer {
  const manifest = readManifest(cutDir);
  const entries = [
    { name: 'manifest.json', bytes: fs.statSync(path.join(cutDir, 'manifest.json')).size },
    { name: 'state.bin', bytes: manifest.sections.reduce((a, b) => a + b, 0) },
    ...manifest.files.map((f) => ({ name: f.name, bytes: f.bytes })),
  ];
  const out: Buffer[] = [Buffer.from('ESCUT001', 'latin1')];
  for (const e of entries) {
    const name = Buffer.from(e.name, 'latin1');
    const head = Buffer.alloc(2 + name.length + 8);
    head.writeUInt16LE(name.length, 0);
    name.copy(head, 2);
    head.writeDoubleLE(e.bytes, 2 + name.length);
    const body = fs.readFileSync(path.join(cutDir, e.name)).subarray(0, e.bytes);
    const tail = Buffer.alloc(4);
    tail.writeUInt32LE(crc32c(body) >>> 0, 0);
    out.push(head, body, tail);
  }
  out.push(Buffer.alloc(2));
  return Buffer.concat(out);
}

function concatParts(parts: SnapshotPart[]): Buffer {
  return Buffer.concat(
    parts.map((p) => ('bytes' in p ? Buffer.from(p.bytes) : fs.readFileSync(p.file).subarray(0, p.length))),
  );
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}

describe('cut archive as parts', () => {
  const dirs: string[] = [];
  const stores: EventStoreStateMachine[] = [];
  let log: ReturnType<typeof appendEntry>[] = [];

  async function open(dir: string): Promise<EventStoreStateMachine> {
    if (!dirs.includes(dir)) dirs.push(dir);
    const sm = await EventStoreStateMachine.open(dir, { fileBytesMax: 2000, cutsKept: 3 });
    stores.push(sm);
    return sm;
  }

  function appendMany(sm: EventStoreStateMachine, n: number): void {
    for (let i = 0; i < n; i++) {
      const entry = appendEntry(log.length + 1, `s-${i % 3}`, [ev('E', { i, pad: 'x'.repeat(i % 50) })]);
      log.push(entry);
      sm.apply(entry);
    }
  }

  const cutOf = (dir: string, index: number) => path.join(dir, 'cuts', cutDirName(index));

  beforeEach(() => {
    log = [];
  });

  afterEach(async () => {
    for (const sm of stores.splice(0)) await sm.close();
    for (const d of dirs.splice(0)) removeDir(d);
  });

  it("the parts' concatenation is the archive byte for byte, and extracts to the same cut", async () => {
    const dir = tempDir();
    const sm = await open(dir);
    appendMany(sm, 60);
    const snap = await sm.snapshot();
    appendMany(sm, 10); // appends past the cut (the open file grows) are not part of the archive
    const cutDir = cutOf(dir, snap.index);
    const expected = referenceArchive(cutDir);
    expect(readManifest(cutDir).files.length).toBeGreaterThan(2);
    expect(concatParts(snap.parts).equals(expected)).toBe(true);
    expect((await collect(snap.data)).equals(expected)).toBe(true);
    expect((await collect(archiveCut(cutDir))).equals(expected)).toBe(true);
    // File parts point into the cut directory (hard links of the event files), never at the events dir.
    for (const p of snap.parts) if ('file' in p) expect(path.dirname(p.file)).toBe(cutDir);
    const out = tempDir();
    dirs.push(out);
    const manifest = await extractArchive(once(concatParts(snap.parts)), path.join(out, 'x'));
    expect(manifest).toEqual(readManifest(cutDir));
    for (const n of fs.readdirSync(path.join(out, 'x'))) {
      const f = manifest.files.find((x) => x.name === n);
      const original = fs.readFileSync(path.join(cutDir, n));
      expect(fs.readFileSync(path.join(out, 'x', n))).toEqual(f ? original.subarray(0, f.bytes) : original);
    }
  });

  it('the manifest records every file CRC; a later cut extends the open file CRC over the new bytes only', async () => {
    const dir = tempDir();
    const sm = await open(dir);
    appendMany(sm, 25);
    const first = await sm.snapshot();
    appendMany(sm, 7); // the open file grows, maybe rolls
    // Show which bytes the second cut reads: damage a byte inside every file's first-cut prefix (the events
    // directory shares the inodes). A cut that re-read history would record the damaged bytes' CRC; this one
    // extends the first cut's CRC over the appended bytes only.
    const firstFiles = readManifest(cutOf(dir, first.index)).files;
    const eventsDir = path.join(dir, 'events');
    const originals = new Map(firstFiles.map((f) => [f.name, fs.readFileSync(path.join(eventsDir, f.name))]));
    const flip = (name: string) => {
      const fd = fs.openSync(path.join(eventsDir, name), 'r+');
      fs.writeSync(fd, Buffer.from([originals.get(name)![5] ^ 0xff]), 0, 1, 5);
      fs.closeSync(fd);
    };
    const restore = (name: string) => {
      const fd = fs.openSync(path.join(eventsDir, name), 'r+');
      fs.writeSync(fd, originals.get(name)!, 5, 1, 5);
      fs.closeSync(fd);
    };
    for (const f of firstFiles) flip(f.name);
    const second = await sm.snapshot();
    const firstLength = new Map(firstFiles.map((f) => [f.name, f.bytes]));
    const secondFiles = readManifest(cutOf(dir, second.index)).files;
    expect(secondFiles.reduce((a, f) => a + f.bytes, 0)).toBeGreaterThan(
      firstFiles.reduce((a, f) => a + f.bytes, 0),
    );
    for (const f of secondFiles) {
      const now = fs.readFileSync(path.join(eventsDir, f.name));
      const from = firstLength.get(f.name) ?? 0;
      const prefix = from > 0 ? crc32c(originals.get(f.name)!.subarray(0, from)) : 0;
      expect(f.crc32c).toBe(crc32c(now.subarray(from, f.bytes), prefix) >>> 0);
    }
    for (const f of firstFiles) restore(f.name);
    for (const index of [first.index, second.index]) {
      const cutDir = cutOf(dir, index);
      const m = readManifest(cutDir);
      const state = fs.readFileSync(path.join(cutDir, 'state.bin'));
      expect(m.stateCrc32c).toBe(crc32c(state) >>> 0);
      for (const f of m.files) {
        const bytes = fs.readFileSync(path.join(cutDir, f.name)).subarray(0, f.bytes);
        expect(f.crc32c).toBe(crc32c(bytes) >>> 0);
      }
    }
    // A restart loads the CRCs from the cut; the next cut's are still right.
    await sm.close();
    stores.splice(stores.indexOf(sm), 1);
    const again = await open(dir);
    appendMany(again, 9);
    const third = await again.snapshot();
    const cutDir = cutOf(dir, third.index);
    for (const f of readManifest(cutDir).files) {
      const bytes = fs.readFileSync(path.join(cutDir, f.name)).subarray(0, f.bytes);
      expect(f.crc32c).toBe(crc32c(bytes) >>> 0);
    }
    expect(concatParts(third.parts).equals(referenceArchive(cutDir))).toBe(true);
  });

  it('a cut written before manifests held CRCs still gives the same archive (CRCs computed by reading)', async () => {
    const dir = tempDir();
    const sm = await open(dir);
    appendMany(sm, 30);
    const snap = await sm.snapshot();
    const cutDir = cutOf(dir, snap.index);
    const m = readManifest(cutDir);
    const old = { ...m, files: m.files.map(({ crc32c: _crc, ...f }) => f) } as Record<string, unknown>;
    delete old.stateCrc32c;
    const manifestPath = path.join(cutDir, 'manifest.json');
    fs.rmSync(manifestPath);
    fs.writeFileSync(manifestPath, JSON.stringify(old));
    expect(concatParts(await archiveParts(cutDir)).equals(referenceArchive(cutDir))).toBe(true);
    // And such a cut still loads; the next snapshot computes and records the CRCs.
    await sm.close();
    stores.splice(stores.indexOf(sm), 1);
    const again = await open(dir);
    expect(again.appliedIndex()).toBe(snap.index);
    appendMany(again, 3);
    const next = await again.snapshot();
    for (const f of readManifest(cutOf(dir, next.index)).files) expect(f.crc32c).toEqual(expect.any(Number));
    expect(concatParts(next.parts).equals(referenceArchive(cutOf(dir, next.index)))).toBe(true);
  });

  it('streaming parts fails on a file whose bytes no longer match the recorded CRC', async () => {
    const dir = tempDir();
    const sm = await open(dir);
    appendMany(sm, 20);
    const snap = await sm.snapshot();
    const filePart = snap.parts.find(
      (p): p is Extract<SnapshotPart, { file: string }> => 'file' in p && p.file.endsWith('.evt'),
    )!;
    const fd = fs.openSync(filePart.file, 'r+');
    fs.writeSync(fd, Buffer.from([0xee]), 0, 1, 30);
    fs.closeSync(fd);
    await expect(collect(streamParts(snap.parts))).rejects.toThrow(/does not match its recorded CRC-32C/);
  });

  it('pruned cuts go; the newest stays so its parts remain valid', async () => {
    const dir = tempDir();
    const sm = await open(dir);
    let last: Awaited<ReturnType<EventStoreStateMachine['snapshot']>> | null = null;
    for (let k = 0; k < 5; k++) {
      appendMany(sm, 5);
      last = await sm.snapshot();
    }
    expect(listCuts(path.join(dir, 'cuts'))).toHaveLength(3);
    expect(concatParts(last!.parts).equals(referenceArchive(cutOf(dir, last!.index)))).toBe(true);
  });
});
