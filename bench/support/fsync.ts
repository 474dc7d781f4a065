/**
 * The disk's physical limit for a replicated commit: serial `write` + `fdatasync` of 200 B in the same
 * directory as the nodes' data, in the same run. Two cases: appending to a growing file, and overwriting
 * inside a preallocated, already synced file (the best case, what preallocated segments aim at).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { percentile } from './report';

export interface FsyncCeiling {
  appendOpsPerS: number;
  appendP50Ms: number;
  preallocOpsPerS: number;
  preallocP50Ms: number;
}

const preallocBytes = 16 * 1024 * 1024;

function measure(fd: number, bytes: number, runMs: number, wrap: number): { opsPerS: number; p50Ms: number } {
  const buf = Buffer.alloc(bytes, 0x61);
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(runMs) * 1_000_000n;
  let offset = 0;
  for (;;) {
    const a = process.hrtime.bigint();
    if (a >= end) break;
    fs.writeSync(fd, buf, 0, bytes, offset);
    fs.fdatasyncSync(fd);
    lat.push(Number(process.hrtime.bigint() - a) / 1e6);
    offset += bytes;
    if (wrap > 0 && offset + bytes > wrap) offset = 0;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { opsPerS: lat.length / seconds, p50Ms: percentile(lat, 50) };
}

export function fsyncCeiling(dir: string, bytes = 200, runMs = 2000): FsyncCeiling {
  const appendFile = path.join(dir, 'fsync-append.bin');
  const preFile = path.join(dir, 'fsync-prealloc.bin');
  const fdA = fs.openSync(appendFile, 'w');
  const fdP = fs.openSync(preFile, 'w');
  try {
    const append = measure(fdA, bytes, runMs, 0);
    fs.writeSync(fdP, Buffer.alloc(preallocBytes), 0, preallocBytes, 0);
    fs.fsyncSync(fdP);
    const pre = measure(fdP, bytes, runMs, preallocBytes);
    return {
      appendOpsPerS: append.opsPerS,
      appendP50Ms: append.p50Ms,
      preallocOpsPerS: pre.opsPerS,
      preallocP50Ms: pre.p50Ms,
    };
  } finally {
    fs.closeSync(fdA);
    fs.closeSync(fdP);
    fs.rmSync(appendFile, { force: true });
    fs.rmSync(preFile, { force: true });
  }
}
