// Builds dist/spoor.js (minified, one IIFE) and checks its size budget, and dist/spoor-dom.js
// (the full-page recorder).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 6 * 1024; // bytes gzipped

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/spoor.js' });
// The full-page recorder (rrweb), loaded only by pages that ask for it.
await build({ ...common, entryPoints: ['src/dom/record.ts'], outfile: 'dist/spoor-dom.js' });
const dom = readFileSync('dist/spoor-dom.js');
console.log(`dist/spoor-dom.js: ${dom.length} bytes, ${gzipSync(dom, { level: 9 }).length} bytes gzipped`);
const js = readFileSync('dist/spoor.js');
const gz = gzipSync(js, { level: 9 }).length;
console.log(`dist/spoor.js: ${js.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error('spoor.js is over its size budget');
  process.exit(1);
}
