/**
 * The import structure `npm run lint` enforces (`depcruise apps libs test bench --config .dependency-cruiser.cjs`):
 * a library is reached through its front door (`@app/<lib>` = libs/<lib>/src/index.ts) or, from tests,
 * benchmarks and specs, through its testing door (`@app/<lib>/testing` = libs/<lib>/src/testing/index.ts);
 * imports inside one library stay relative; the Raft core imports nothing outside itself; production code
 * never reaches test tooling. The folder-level picture: docs/dependency-graph.md (`npm run docs:graph`).
 */

/** A library's front doors: what other code may import of it. */
const frontDoors = '^libs/[^/]+/src/(index|testing/index)\\.ts$';
/** Test tooling: testing folders and `*.testing.ts` files. */
const testTooling = ['(^|/)testing/', '\\.testing\\.ts$'];
const specs = '\\.spec\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'lib-relative-into-other-lib',
      comment:
        'A library imports another library through its alias (@app/<lib> or @app/<lib>/testing), never by a relative path.',
      severity: 'error',
      from: { path: '^libs/([^/]+)/' },
      to: {
        path: '^libs/',
        pathNot: '^libs/$1/',
        dependencyTypes: ['local'],
        dependencyTypesNot: ['aliased'],
      },
    },
    {
      name: 'lib-into-apps-or-tooling',
      comment: 'Libraries know nothing of the apps, the tests, the benchmarks or tools/.',
      severity: 'error',
      from: { path: '^libs/' },
      to: { path: '^(apps|test|bench|tools)/' },
    },
    {
      name: 'relative-into-libs',
      comment:
        'apps/, test/ and bench/ import a library through its alias (@app/<lib> or @app/<lib>/testing), not a relative path.',
      severity: 'error',
      from: { path: '^(apps|test|bench|tools)/' },
      to: { path: '^libs/', dependencyTypes: ['local'], dependencyTypesNot: ['aliased'] },
    },
    {
      name: 'no-base-url-imports',
      comment: "tsconfig's baseUrl exists for the @app/* paths only: no bare 'libs/…' or 'apps/…' imports.",
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['aliased-tsconfig-base-url'] },
    },
    {
      name: 'libs-only-through-front-doors',
      comment:
        'Outside a library, only its libs/<lib>/src/index.ts (@app/<lib>) or libs/<lib>/src/testing/index.ts (@app/<lib>/testing) may be imported: no deep imports.',
      severity: 'error',
      from: { path: '^(apps|test|bench|tools)/' },
      to: { path: '^libs/', pathNot: frontDoors },
    },
    {
      name: 'other-lib-only-through-front-doors',
      comment:
        "A library reaches another library only through that library's index.ts or testing/index.ts: no deep imports.",
      severity: 'error',
      from: { path: '^libs/([^/]+)/' },
      to: { path: '^libs/', pathNot: ['^libs/$1/', frontDoors] },
    },
    {
      name: 'consensus-core-is-self-contained',
      comment:
        'libs/consensus/src/core (the pure Raft state machine) imports nothing outside core: no other folder, no package, no Node module.',
      severity: 'error',
      from: { path: '^libs/consensus/src/core/', pathNot: specs },
      to: { pathNot: '^libs/consensus/src/core/' },
    },
    {
      name: 'production-without-test-tooling',
      comment:
        'Production code (apps/, libs/ without specs and testing folders) never imports test tooling (a testing/ folder, *.testing.ts, test/, bench/).',
      severity: 'error',
      from: { path: '^(apps|libs)/', pathNot: [specs, ...testTooling] },
      to: { path: [...testTooling, '^(test|bench|tools)/'] },
    },
    {
      name: 'no-circular',
      comment: 'No import cycles at run time (a cycle whose every import loads code).',
      severity: 'error',
      from: {},
      to: {
        circular: true,
        dependencyTypesNot: ['type-only'],
        viaOnly: { dependencyTypesNot: ['type-only'] },
      },
    },
    {
      name: 'no-circular-through-types',
      comment:
        'Cycles closed by an `import type` (e.g. core/roles/* → core/raft.ts): harmless at run time, reported until they are gone.',
      severity: 'warn',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves (an alias is only @app/<lib> or @app/<lib>/testing: no deep alias).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules|coverage|\\.bench-tmp)/' },
    // Type-only imports count too: a deep `import type` is a deep import.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json', '.d.ts'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
