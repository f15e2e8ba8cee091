// Who may import whom (docs/architecture.md draws it). Checked in CI by `npm run lint`:
//   api/ (schemas, types)  <-  lib/ (shared runtime)  <-  agent/, controller/, cli/, cluster/
// The agent and the controller never import each other: they meet in api/ and on the work bus.
// The CLI may start a local cluster (cluster/), but reaches agents and the controller only through
// lib/ (the store and the bus). Tests in test/ drive every part and may import any of them.
// Unit tests beside the code obey their folder's rule, and may also use the shared fixtures in test/.
const FERRY = '^(api|lib|agent|controller|cli|cluster|bench|scripts|test|workload)/';
const TEST = '\\.test\\.ts$';
const layer = (name, allowed) => [
  {
    name: `${name}-imports-only-${['itself', ...allowed].join('-')}`,
    severity: 'error',
    comment: `${name}/ may import ${allowed.map((a) => `${a}/`).join(', ') || 'nothing of ferry'} and packages`,
    from: { path: `^${name}/`, pathNot: TEST },
    to: { path: FERRY, pathNot: `^(${[name, ...allowed].join('|')})/` },
  },
  {
    name: `${name}-tests-import-only-${['itself', ...allowed, 'test'].join('-')}`,
    severity: 'error',
    comment: `tests in ${name}/ follow its rule, and may use test/ fixtures`,
    from: { path: `^${name}/.*${TEST}` },
    to: { path: FERRY, pathNot: `^(${[name, ...allowed, 'test', 'scripts'].join('|')})/` },
  },
];

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'a cycle, type-only ones included, means two modules are one concept or a seam is missing',
      from: {},
      to: { circular: true },
    },
    ...layer('api', []),
    ...layer('lib', ['api']),
    ...layer('agent', ['api', 'lib']),
    ...layer('controller', ['api', 'lib']),
    ...layer('cluster', ['api', 'lib']),
    ...layer('cli', ['api', 'lib', 'cluster']),
  ],
  options: {
    // Type-only imports count: a type cycle is still a cycle, and a type is still a dependency.
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules/' },
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
