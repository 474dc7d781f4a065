import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { derivedEventId, eventBatches, parseEventLine, scanEventFile } from './event-file';
import { UsageError } from './exit-codes';

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'esctl-file-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, lines: string[]): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

async function collect(p: string, streamId: string, batchEvents: number, batchBytes?: number) {
  const sha = (await scanEventFile(p)).sha256;
  const out = [];
  for await (const b of eventBatches(p, { streamId, seed: `sha256:${sha}`, batchEvents, batchBytes }))
    out.push(b);
  return out;
}

describe('events files', () => {
  it('derives the same UUID for the same seed, stream and line, another for any other', () => {
    const id = derivedEventId('s', 'order-1', 3);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(derivedEventId('s', 'order-1', 3)).toBe(id);
    expect(
      new Set([
        id,
        derivedEventId('s', 'order-1', 4),
        derivedEventId('t', 'order-1', 3),
        derivedEventId('s', 'order-2', 3),
      ]).size,
    ).toBe(4);
  });

  it('cuts the same batches with the same ids on every run; keeps the ids given; skips blank lines', async () => {
    const given = '0b7e1a6c-1111-4222-8333-444455556666';
    const lines = [
      '{"type":"A","data":{"i":0}}',
      '',
      `{"type":"B","id":"${given}","metadata":{"m":1}}`,
      ...Array.from({ length: 5 }, (_, i) => JSON.stringify({ type: 'C', data: { i } })),
    ];
    const p = file('a.jsonl', lines);
    const first = await collect(p, 'order-1', 3);
    expect(first.map((b) => b.map((e) => e.line))).toEqual([[1, 3, 4], [5, 6, 7], [8]]);
    expect(first[0][1].event).toEqual({ type: 'B', id: given, metadata: { m: 1 } });
    expect(await collect(p, 'order-1', 3)).toEqual(first);
    // another stream: other derived ids, the given one kept
    const other = await collect(p, 'order-2', 3);
    expect(other[0][0].event.id).not.toBe(first[0][0].event.id);
    expect(other[0][1].event.id).toBe(given);
    // a changed file: other derived ids
    const changed = await collect(file('b.jsonl', [...lines, '{"type":"D"}']), 'order-1', 3);
    expect(changed[0][0].event.id).not.toBe(first[0][0].event.id);
  });

  it('starts a new batch before one would pass the byte bound', async () => {
    const big = 'x'.repeat(400);
    const p = file(
      'big.jsonl',
      Array.from({ length: 5 }, () => JSON.stringify({ type: 'T', data: big })),
    );
    const batches = await collect(p, 's', 100, 1000);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 1]);
  });

  it('rejects malformed lines with the file and line, before anything is sent', async () => {
    expect(() => parseEventLine('{"type":""}', 'f:1')).toThrow(/f:1: "type" must be a non-empty string/);
    expect(() => parseEventLine('[1]', 'f:2')).toThrow(UsageError);
    expect(() => parseEventLine('{"type":"T","id":"nope"}', 'f:3')).toThrow(/"id" must be a UUID/);
    expect(() => parseEventLine('{"type":"T","payload":{}}', 'f:4')).toThrow(/unknown field "payload"/);
    const p = file('bad.jsonl', ['{"type":"A"}', '{"type":"B"', '{"type":"C"}']);
    await expect(scanEventFile(p)).rejects.toThrow(/bad\.jsonl:2: not JSON/);
    await expect(scanEventFile(path.join(dir, 'missing.jsonl'))).rejects.toBeInstanceOf(UsageError);
  });
});
