// Bundles the TypeScript unit tests for Node (esbuild) and runs them with node's test runner.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const files = readdirSync('test/unit').filter((f) => f.endsWith('.test.ts'));
await build({
  entryPoints: files.map((f) => 'test/unit/' + f),
  outdir: 'test/.build',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  logLevel: 'warning',
});
const r = spawnSync(process.execPath, ['--test', ...files.map((f) => 'test/.build/' + f.replace(/\.ts$/, '.mjs'))], { stdio: 'inherit' });
process.exit(r.status ?? 1);
