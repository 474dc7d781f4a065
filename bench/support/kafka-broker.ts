/**
 * A Kafka broker of the benchmark's own (scripts/kafka.sh on free ports, data under the benchmark's
 * `.bench-tmp/` directory), so that no other run (e.g. a jest globalTeardown stopping the shared broker on
 * 9092) stops it halfway through. Killed by PID when the benchmark exits.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePorts, repoRoot } from './bench-run';

const script = path.join(repoRoot, 'scripts', 'kafka.sh');

export class BenchBroker {
  private constructor(
    readonly brokers: string[],
    readonly pid: number,
    private readonly env: Record<string, string>,
  ) {}

  static async start(dir: string): Promise<BenchBroker> {
    const [port, controllerPort] = await freePorts(2);
    const env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(controllerPort),
      KAFKA_DATA_DIR: path.join(dir, 'kafka'),
    };
    const r = spawnSync(script, ['start'], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 180_000,
    });
    if (r.status !== 0)
      throw new Error(`bench: scripts/kafka.sh start failed (${r.status}):\n${r.stdout}${r.stderr}`);
    const pid = Number(fs.readFileSync(path.join(env.KAFKA_DATA_DIR, 'kafka.pid'), 'utf8').trim());
    process.on('exit', () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    return new BenchBroker([`127.0.0.1:${port}`], pid, env);
  }

  stop(): void {
    spawnSync(script, ['stop'], {
      cwd: repoRoot,
      env: { ...process.env, ...this.env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  }
}
