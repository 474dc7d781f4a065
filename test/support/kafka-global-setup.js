// Jest globalSetup: make sure a Kafka broker answers on 127.0.0.1:${KAFKA_PORT:-9092} for the suites that
// need one, and export KAFKA_BROKERS to the tests if unset. If nothing answers, start one with
// scripts/kafka.sh (jars cached under ~/.cache after the first run).
//
// Several jest runs may share the broker (engineers in one checkout): each run holds a lease file
// (<data dir>/jest-leases/<pid>) while it runs, and a broker started by a jest run is marked
// (<data dir>/started-by-jest). kafka-global-teardown.js stops the broker only if a jest run started it and no
// other live run still holds a lease. A broker started by hand or by CI (.ci/run) is never stopped by jest.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..');

function kafkaPort() {
  return Number(process.env.KAFKA_PORT || 9092);
}

// the same default as scripts/kafka.sh
function kafkaDataDir(port = kafkaPort()) {
  if (process.env.KAFKA_DATA_DIR) return process.env.KAFKA_DATA_DIR;
  return path.join(repoRoot, '.kafka', port === 9092 ? 'data' : `data-${port}`);
}

function portOpen(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function kafkaGlobalSetup() {
  const port = kafkaPort();
  if (!process.env.KAFKA_BROKERS) process.env.KAFKA_BROKERS = `127.0.0.1:${port}`;
  if (process.env.KAFKA_SKIP_START === '1') return;
  const dataDir = kafkaDataDir(port);
  const leases = path.join(dataDir, 'jest-leases');
  fs.mkdirSync(leases, { recursive: true });
  fs.writeFileSync(path.join(leases, String(process.pid)), '');
  if (await portOpen(port)) return;
  process.stderr.write(`\nkafka-global-setup: nothing on 127.0.0.1:${port}; starting scripts/kafka.sh\n`);
  const res = spawnSync(path.join(repoRoot, 'scripts', 'kafka.sh'), ['start'], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, KAFKA_PORT: String(port) },
  });
  process.stderr.write(res.stdout + res.stderr);
  if (res.status !== 0) throw new Error(`scripts/kafka.sh start failed (status ${res.status})`);
  // kafka.sh logs "started (pid N" only if this call started it (else "already running": a concurrent run won)
  if (/started \(pid \d+/.test(res.stderr)) fs.writeFileSync(path.join(dataDir, 'started-by-jest'), '');
}

module.exports = kafkaGlobalSetup;
module.exports.portOpen = portOpen;
module.exports.kafkaPort = kafkaPort;
module.exports.kafkaDataDir = kafkaDataDir;
module.exports.repoRoot = repoRoot;
