import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A node's process settings (node flags, glibc allocator variables) live in tools/node-runtime.json and are
 * written out again in `npm run node` and the Dockerfile: each must say the same, or a node started one way
 * would use more memory than the documented figures (measured with the harness, which reads the JSON).
 */
const root = path.resolve(__dirname, '..', '..', '..');
const runtime = JSON.parse(fs.readFileSync(path.join(root, 'tools', 'node-runtime.json'), 'utf8')) as {
  execArgv: string[];
  env: Record<string, string>;
};

describe('how a node process starts', () => {
  it('has settings to agree on', () => {
    expect(runtime.execArgv.length + Object.keys(runtime.env).length).toBeGreaterThan(0);
  });

  it('npm run node passes the same flags and environment', () => {
    const script = (
      JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts.node;
    const beforeMain = script.slice(0, script.indexOf('dist/apps/event-store/src/main.js'));
    const words = beforeMain.split(/\s+/).filter(Boolean);
    const nodeAt = words.indexOf('node');
    expect(words.slice(nodeAt + 1)).toEqual(runtime.execArgv);
    for (const [k, v] of Object.entries(runtime.env))
      expect(words.slice(0, nodeAt)).toContain(`${k}=\${${k}:-${v}}`);
    expect(nodeAt).toBe(Object.keys(runtime.env).length);
  });

  it('the Dockerfile passes the same flags and environment', () => {
    const docker = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const cmd = /^CMD (\[.*\])$/m.exec(docker);
    expect(cmd).not.toBeNull();
    expect(JSON.parse(cmd![1])).toEqual(['node', ...runtime.execArgv, 'dist/apps/event-store/src/main.js']);
    const envLine = /^ENV (MALLOC_.*)$/m.exec(docker);
    expect(envLine).not.toBeNull();
    const env = Object.fromEntries(envLine![1].split(/\s+/).map((kv) => kv.split('=') as [string, string]));
    expect(env).toEqual(runtime.env);
  });
});
