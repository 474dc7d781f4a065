import { Presets, SingleBar } from 'cli-progress';
import type { Io } from './output';

/** A progress bar on stderr, or nothing (not a terminal, `--json`, `--no-progress`). */
export interface Progress {
  start(total: number, value?: number): void;
  update(value: number, total?: number): void;
  stop(): void;
}

const none: Progress = { start: () => undefined, update: () => undefined, stop: () => undefined };

export function progressBar(io: Io, enabled: boolean, label: string, unit: string): Progress {
  if (!enabled || !io.stderrIsTTY) return none;
  const bar = new SingleBar(
    {
      stream: io.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    start(total, value = 0) {
      bar.start(Math.max(total, 1), value);
      started = true;
    },
    update(value, total) {
      if (!started) return;
      if (total !== undefined) bar.setTotal(Math.max(total, 1));
      bar.update(value);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
