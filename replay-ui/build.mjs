// Builds dist/ (app.js, app.css, index.html) for the binary to embed.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/app.js',
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync('static/index.html', 'dist/index.html');
copyFileSync('static/app.css', 'dist/app.css');
console.log('replay-ui/dist built');
