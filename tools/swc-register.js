// A require hook that compiles TypeScript with @swc/core (no type check), for what is not part of the
// product's build: child processes spawned by tests, the simulator, the benchmarks.
// `node --require ./tools/swc-register.js some-script.ts`. Same options as the jest transform.
//
// The libraries' front doors (`@app/consensus`, `@app/consensus/testing`, …) resolve as tsconfig.json's
// `paths` say (jest: moduleNameMapper; dist: tsc-alias). Only exact aliases: no deep imports.
const fs = require('fs');
const Module = require('module');
const path = require('path');
const { transformSync } = require('@swc/core');

const repoRoot = path.resolve(__dirname, '..');

function readAliases() {
  const text = fs.readFileSync(path.join(repoRoot, 'tsconfig.json'), 'utf8');
  let config;
  try {
    config = JSON.parse(text);
  } catch {
    // tsconfig.json with comments or trailing commas: TypeScript's own reader.
    config = require('typescript').parseConfigFileTextToJson('tsconfig.json', text).config;
  }
  const { baseUrl = '.', paths = {} } = config.compilerOptions ?? {};
  const aliases = new Map();
  for (const [alias, targets] of Object.entries(paths)) {
    if (alias.includes('*')) throw new Error(`swc-register: wildcard alias ${alias} is not supported`);
    aliases.set(alias, path.resolve(repoRoot, baseUrl, targets[0]));
  }
  return aliases;
}

const aliases = readAliases();
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function resolveAlias(request, ...rest) {
  const target = aliases.get(request);
  return resolveFilename.call(this, target ?? request, ...rest);
};

require.extensions['.ts'] = function compileTs(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    filename,
    sourceMaps: 'inline',
    module: { type: 'commonjs' },
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
  });
  module._compile(code, filename);
};
