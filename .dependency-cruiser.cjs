// The import graph's rules, checked by `npm run lint` (dependency-cruiser; CONTRIBUTING.md, "Development").
// Type-only imports count: a circle of types is still a circle to read.

/** The config and what it is built from: none of them imports a chart, so the config is checked before any is loaded. */
const CONFIG_LAYER = '^charts/(config/[a-z0-9/-]+|ports|pods|ingress-controllers|database|synapse-homeserver|synapse-retention|synapse-workers)\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: each file of it needs the others to be read or loaded.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'config-imports-no-chart',
      severity: 'error',
      comment: 'The config layer must not import the charts it configures (issue 27).',
      from: { path: CONFIG_LAYER },
      to: { path: '^charts/', pathNot: CONFIG_LAYER },
    },
    {
      name: 'schema-below-config',
      severity: 'error',
      comment: "The schema's fragments (charts/config/schema/) are what config.ts assembles and resolves: they never import it.",
      from: { path: '^charts/config/schema/' },
      to: { path: '^charts/config/index\\.ts$' },
    },
    {
      name: 'charts-import-no-tools',
      severity: 'error',
      comment: 'The charts are the library: main.ts, scripts/ and test/ use them, never the other way round.',
      from: { path: '^charts/' },
      to: { path: '^(main\\.ts|scripts/|test/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
