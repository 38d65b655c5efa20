// Builds dist/spoor.js (minified, one IIFE) and checks the size budget.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 6 * 1024; // bytes gzipped

await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/spoor.js',
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2019',
  legalComments: 'none',
  logLevel: 'warning',
});
const js = readFileSync('dist/spoor.js');
const gz = gzipSync(js, { level: 9 }).length;
console.log(`dist/spoor.js: ${js.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error('spoor.js is over its size budget');
  process.exit(1);
}
