// Builds dist/ for the binary to embed: the viewer (app.js, app.css, index.html) and the
// location dashboard (map.js, map.css with Leaflet's styles, map.html).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
const common = {
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/main.ts'], outfile: 'dist/app.js', format: 'iife' });
await build({ ...common, entryPoints: ['src/map/main.ts'], outfile: 'dist/map.js', format: 'iife' });
// Leaflet's stylesheet names a few images; they are inlined so the page needs no other file.
await build({ ...common, entryPoints: ['src/map/map.css'], outfile: 'dist/map.css', loader: { '.png': 'dataurl', '.svg': 'dataurl' } });
copyFileSync('static/index.html', 'dist/index.html');
copyFileSync('static/map.html', 'dist/map.html');
// The offline basemap: Natural Earth 1:50m countries (world-atlas), served as /ui/world.json.
copyFileSync('node_modules/world-atlas/countries-50m.json', 'dist/world.json');
// The viewer's styles, then rrweb's replayer styles (its wrapper and cursor).
writeFileSync('dist/app.css', readFileSync('static/app.css', 'utf8') + '\n' + readFileSync('node_modules/@rrweb/replay/dist/style.min.css', 'utf8') + '\n');
console.log('replay-ui/dist built');
