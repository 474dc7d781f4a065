// Jest globalTeardown: drop this run's lease; stop the broker only if a jest run started it (see
// kafka-global-setup.js) and no other live jest run holds a lease on it.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { kafkaDataDir, kafkaPort, repoRoot } = require('./kafka-global-setup');

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

module.exports = async function kafkaGlobalTeardown() {
  if (process.env.KAFKA_SKIP_START === '1') return;
  const port = kafkaPort();
  const dataDir = kafkaDataDir(port);
  const leases = path.join(dataDir, 'jest-leases');
  fs.rmSync(path.join(leases, String(process.pid)), { force: true });
  let others = 0;
  for (const name of fs.existsSync(leases) ? fs.readdirSync(leases) : []) {
    if (/^\d+$/.test(name) && alive(Number(name))) others++;
    else fs.rmSync(path.join(leases, name), { force: true });
  }
  const marker = path.join(dataDir, 'started-by-jest');
  if (others > 0 || !fs.existsSync(marker)) return;
  fs.rmSync(marker, { force: true });
  const res = spawnSync(path.join(repoRoot, 'scripts', 'kafka.sh'), ['stop'], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, KAFKA_PORT: String(port) },
  });
  process.stderr.write(res.stdout + res.stderr);
};
