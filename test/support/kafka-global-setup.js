// Jest globalSetup: make sure a Kafka broker answers on 127.0.0.1:${KAFKA_PORT:-9092} for the suites that
// need one. If nothing answers, start one with scripts/kafka.sh (jars cached under ~/.cache after the first
// run) and remember that we did, so that kafka-global-teardown.js stops it — and only then.
const { execFileSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..');

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

module.exports = async function kafkaGlobalSetup() {
  const port = Number(process.env.KAFKA_PORT || 9092);
  if (!process.env.KAFKA_BROKERS) process.env.KAFKA_BROKERS = `127.0.0.1:${port}`;
  if (process.env.KAFKA_SKIP_START === '1') return;
  if (await portOpen(port)) return;
  process.stderr.write(`\nkafka-global-setup: nothing on 127.0.0.1:${port}; starting scripts/kafka.sh\n`);
  execFileSync(path.join(repoRoot, 'scripts', 'kafka.sh'), ['start'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, KAFKA_PORT: String(port) },
  });
  globalThis.__kafkaStartedByJest = port;
};

module.exports.portOpen = portOpen;
