import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeCommandRaw, encodeCommand, prepareAppend } from '../command';
import { DEFAULT_LIMITS, STORAGE_DEFAULTS } from '../limits';
import { newEventId, readUuid } from '../uuid';
import { EventFiles } from './event-files';
import { StoredEvent } from './record';

/** apply copies records out of the command entry (appendParts): they must equal records encoded field by field. */
describe('EventFiles.appendParts', () => {
  const dirs: string[] = [];
  const open = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-parts-'));
    dirs.push(dir);
    return new EventFiles(dir, { ...STORAGE_DEFAULTS, writeBufferBytesMax: 4096 });
  };
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('writes byte-identical records to append(), readable with and without known fields', () => {
    const cmd = prepareAppend(
      {
        streamId: 'order-7:a@b',
        events: [
          { type: 'OrderPlaced', data: { total: 12.5, note: 'ünïcödé 🙂' } },
          { type: 'Ïtem', data: ['x'.repeat(3000)], metadata: { by: 'me' } },
          { type: 'Empty' },
        ],
      },
      DEFAULT_LIMITS,
      new Date('2026-11-23T10:15:30.123Z'),
      newEventId,
    );
    const raw = decodeCommandRaw(encodeCommand(cmd));
    const byParts = open();
    const byFields = open();
    raw.events.forEach((e, i) => {
      const at = byParts.appendParts(
        i,
        10 + i,
        raw.bytes,
        e.idAt,
        raw.headAt,
        raw.headLen,
        e.tailAt,
        e.tailEnd,
      );
      byFields.append({
        position: i,
        revision: 10 + i,
        id: raw.bytes.subarray(e.idAt, e.idAt + 16),
        timestamp: cmd.timestamp,
        streamId: cmd.streamId,
        type: e.type,
        data: cmd.events[i].data,
        metadata: cmd.events[i].metadata,
      });
      const rec = byParts.lastRecordBuffer.subarray(at, at + byParts.recordBytes(i));
      const known = new StoredEvent(rec, 0, {
        position: i,
        revision: 10 + i,
        timestamp: raw.timestamp,
        streamId: raw.streamId,
        type: e.type,
      });
      expect(known.toEnvelope()).toEqual(new StoredEvent(rec, 0).toEnvelope());
      expect(readUuid(raw.bytes, e.idAt)).toBe(cmd.events[i].id);
    });
    byParts.flush();
    byFields.flush();
    for (let p = 0; p < 3; p++) {
      expect(byParts.read(p).toJSONText()).toBe(byFields.read(p).toJSONText());
      expect(byParts.recordBytes(p)).toBe(byFields.recordBytes(p));
    }
    expect(byParts.describe().map((f) => f.bytes)).toEqual(byFields.describe().map((f) => f.bytes));
    const [a, b] = [dirs[0], dirs[1]].map((d) => fs.readFileSync(path.join(d, fs.readdirSync(d)[0])));
    expect(a.equals(b)).toBe(true);
    byParts.close();
    byFields.close();
  });
});
