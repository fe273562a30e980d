// The layer order of docs/architecture.md, checked by npm test
// (test/architecture.test.ts) and so by CI:
//   bin -> server -> (commands, cluster, persistence, http) -> (core, protocol, config)
//   bin -> migrate -> client
// Type-only imports count: a layer learns about what is above it through
// interfaces it declares itself (commands/context.ts, cluster/host.ts,
// persistence/host.ts, http/host.ts), never by importing from above.
const layer = (name, mayImport) => ({
  name: `layer-${name}`,
  comment: `src/${name} may import only from ${mayImport.map((l) => `src/${l}`).join(', ')} (docs/architecture.md)`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: '^src/', pathNot: `^src/(${[name, ...mayImport].join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle ties every file in it together: no file of the cycle can be read or tested alone.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    layer('core', []),
    layer('protocol', []),
    layer('config', ['protocol']),
    layer('commands', ['core', 'protocol', 'config']),
    layer('cluster', ['core', 'protocol', 'config']),
    layer('persistence', ['core', 'protocol', 'config']),
    layer('http', ['core', 'protocol', 'config']),
    layer('server', ['commands', 'cluster', 'persistence', 'http', 'core', 'protocol', 'config']),
    layer('bin', ['server', 'config', 'migrate']),
    layer('client', []),
    // disque-migrate talks to both clusters as a client does.
    layer('migrate', ['client']),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
