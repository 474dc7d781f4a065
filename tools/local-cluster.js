#!/usr/bin/env node
/**
 * `npm start`: a local cluster of event-store nodes on 127.0.0.1 (default 3 nodes: HTTP 2113/2123/2133,
 * Raft 2114/2124/2134, data under ./data/<id>) and the projector (HTTP 2150, read models in embedded Postgres
 * under ./data/projector unless DATABASE_URL is set; Kafka only when KAFKA_BROKERS is set). Each process's log
 * lines are prefixed with its name; on a terminal they are pretty (LOG_FORMAT=pretty is passed on unless
 * LOG_FORMAT is set), else JSON lines. Once every process answers /health, a banner lists the URLs: each node's
 * API, docs and metrics, and the projector's.
 * SIGINT/SIGTERM stops every node gracefully (SIGTERM, the leader hands over first), then SIGKILL after a bound.
 *
 * Environment: NODES (default 3), BASE_PORT (default 2113; node i uses BASE_PORT + 10i for HTTP and +1 for
 * Raft), DATA_ROOT (default ./data), PROJECTOR (1 by default; 0 runs the nodes only). Any other variable
 * (TICK_MS, LOG_LEVEL, DATABASE_URL, KAFKA_BROKERS, …) is passed to every process.
 */
'use strict';
const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const fs = require('node:fs');

const nodesMax = 9;
const stopGraceMs = 25_000;
/** How long the banner waits for every process to answer /health before it is printed anyway. */
const bannerWaitMs = 120_000;

function intFromEnv(name, dflt, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    process.stderr.write(
      `local-cluster: ${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}\n`,
    );
    process.exit(2);
  }
  return v;
}

const repoRoot = path.resolve(__dirname, '..');
const main = path.join(repoRoot, 'dist', 'apps', 'event-store', 'src', 'main.js');
/** Node flags and environment every node starts with (see tools/node-runtime.json). */
const runtime = JSON.parse(fs.readFileSync(path.join(__dirname, 'node-runtime.json'), 'utf8'));
const projectorMain = path.join(repoRoot, 'dist', 'apps', 'projector', 'src', 'main.js');
const count = intFromEnv('NODES', 3, 1, nodesMax);
const basePort = intFromEnv('BASE_PORT', 2113, 1024, 65535 - 10 * nodesMax);
const dataRoot = path.resolve(process.env.DATA_ROOT || path.join(repoRoot, 'data'));
const withProjector = intFromEnv('PROJECTOR', 1, 0, 1) === 1;
/** The children's stdout is a pipe: they would write JSON lines; a person at a terminal gets pretty ones. */
const logEnv = !process.env.LOG_FORMAT && process.stdout.isTTY ? { LOG_FORMAT: 'pretty' } : {};

if (!fs.existsSync(main) || (withProjector && !fs.existsSync(projectorMain))) {
  process.stderr.write(
    `local-cluster: ${main} or ${projectorMain} is missing; run \`npm run build\` first\n`,
  );
  process.exit(2);
}

const nodes = Array.from({ length: count }, (_, i) => {
  const id = `n${i + 1}`;
  const httpPort = basePort + 10 * i;
  return {
    id,
    httpPort,
    raftPort: httpPort + 1,
    dataDir: path.join(dataRoot, id),
    child: null,
    exited: false,
  };
});
const initialCluster = nodes
  .map((n) => `${n.id}=127.0.0.1:${n.raftPort}/http://127.0.0.1:${n.httpPort}`)
  .join(',');

function prefixLines(id, stream, out) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) out.write(`[${id}] ${line}\n`);
  });
  stream.on('end', () => partial && out.write(`[${id}] ${partial}\n`));
}

let stopping = false;

for (const n of nodes) {
  fs.mkdirSync(n.dataDir, { recursive: true });
  const env = {
    ...process.env,
    NODE_ID: n.id,
    DATA_DIR: n.dataDir,
    HTTP_ADDR: `127.0.0.1:${n.httpPort}`,
    RAFT_ADDR: `127.0.0.1:${n.raftPort}`,
    INITIAL_CLUSTER: initialCluster,
    ...logEnv,
  };
  delete env.NODES;
  delete env.BASE_PORT;
  delete env.DATA_ROOT;
  const child = spawn(process.execPath, [...runtime.execArgv, main], {
    cwd: repoRoot,
    env: { ...runtime.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  n.child = child;
  prefixLines(n.id, child.stdout, process.stdout);
  prefixLines(n.id, child.stderr, process.stderr);
  child.on('exit', (code, signal) => {
    n.exited = true;
    process.stdout.write(`[local-cluster] ${n.id} (pid ${child.pid}) exited with ${code ?? signal}\n`);
    if (procs().every((m) => m.exited)) process.exit(stopping ? 0 : 1);
  });
}

/** The projector follows the nodes' $all; its defaults are the embedded ones (PGlite, Kafka off). */
const projector = { id: 'projector', child: null, exited: !withProjector };
const projectorUrl = `http://127.0.0.1:${basePort + 37}`;
if (withProjector) {
  const env = {
    EVENT_STORE_URLS: nodes.map((n) => `http://127.0.0.1:${n.httpPort}`).join(','),
    PROJECTOR_HTTP_ADDR: `127.0.0.1:${basePort + 37}`,
    PROJECTOR_DATA_DIR: path.join(dataRoot, 'projector'),
    ...process.env,
    ...logEnv,
  };
  for (const k of ['NODES', 'BASE_PORT', 'DATA_ROOT', 'PROJECTOR']) delete env[k];
  const child = spawn(process.execPath, [projectorMain], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  projector.child = child;
  prefixLines('projector', child.stdout, process.stdout);
  prefixLines('projector', child.stderr, process.stderr);
  child.on('exit', (code, signal) => {
    projector.exited = true;
    process.stdout.write(`[local-cluster] projector (pid ${child.pid}) exited with ${code ?? signal}\n`);
    if (procs().every((m) => m.exited)) process.exit(stopping ? 0 : 1);
  });
  process.stdout.write(
    `[local-cluster] projector: read models at ${projectorUrl}/read-models ` +
      `(status /status); ${process.env.DATABASE_URL ? 'Postgres at DATABASE_URL' : `embedded Postgres under ${env.PROJECTOR_DATA_DIR}`}` +
      `; Kafka ${process.env.KAFKA_BROKERS ? `at ${process.env.KAFKA_BROKERS}` : 'off (set KAFKA_BROKERS)'}\n`,
  );
}

function procs() {
  return withProjector ? [...nodes, projector] : nodes;
}

process.stdout.write(
  `[local-cluster] ${count} nodes: ${nodes.map((n) => `${n.id} http://127.0.0.1:${n.httpPort} (raft ${n.raftPort})`).join(', ')}; data in ${dataRoot}\n`,
);

function answersHealth(base) {
  return new Promise((resolve) => {
    const req = http.get(`${base}/health`, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Once every process answers /health (or after bannerWaitMs), where to find what. Not if one exited. */
async function printBanner() {
  const bases = nodes.map((n) => `http://127.0.0.1:${n.httpPort}`);
  const all = withProjector ? [...bases, projectorUrl] : bases;
  const deadline = Date.now() + bannerWaitMs;
  let up = false;
  while (!up && Date.now() < deadline) {
    if (stopping || procs().some((p) => p.exited)) return;
    up = (await Promise.all(all.map(answersHealth))).every(Boolean);
    if (!up) await new Promise((r) => setTimeout(r, 250).unref());
  }
  if (stopping || procs().some((p) => p.exited)) return;
  const width = withProjector ? 'projector'.length : Math.max(...nodes.map((n) => n.id.length));
  const lines = nodes.map(
    (n, i) => `  ${n.id.padEnd(width)}  API ${bases[i]}  docs ${bases[i]}/docs  metrics ${bases[i]}/metrics`,
  );
  if (withProjector)
    lines.push(
      `  ${'projector'.padEnd(width)}  read models ${projectorUrl}/read-models  status ${projectorUrl}/status  metrics ${projectorUrl}/metrics`,
    );
  const level = process.env.LOG_LEVEL || 'info';
  process.stdout.write(
    `[local-cluster] ${up ? 'up' : `not every process answers /health after ${bannerWaitMs / 1000} s`}:\n` +
      `${lines.join('\n')}\n` +
      `  logs: LOG_LEVEL=${level}${level === 'debug' ? '' : ' (debug: every request)'}; Ctrl-C stops everything\n`,
  );
}
void printBanner();

function stopAll(signal) {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`[local-cluster] ${signal}: stopping ${count} nodes\n`);
  for (const n of procs()) if (!n.exited && n.child.pid) n.child.kill('SIGTERM');
  setTimeout(() => {
    for (const n of procs()) {
      if (!n.exited && n.child.pid) {
        process.stdout.write(
          `[local-cluster] ${n.id} did not stop within ${stopGraceMs} ms; killing pid ${n.child.pid}\n`,
        );
        n.child.kill('SIGKILL');
      }
    }
  }, stopGraceMs).unref();
}

process.on('SIGINT', () => stopAll('SIGINT'));
process.on('SIGTERM', () => stopAll('SIGTERM'));
