// Jest globalTeardown: stop the broker only if kafka-global-setup.js started it.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..');

module.exports = async function kafkaGlobalTeardown() {
  const port = globalThis.__kafkaStartedByJest;
  if (!port) return;
  delete globalThis.__kafkaStartedByJest;
  execFileSync(path.join(repoRoot, 'scripts', 'kafka.sh'), ['stop'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, KAFKA_PORT: String(port) },
  });
};
