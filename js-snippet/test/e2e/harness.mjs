// End-to-end harness: the real spoor binary on port 0, a page server on another origin, and
// headless Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const KEY = 'wk_e2e_key_0001';
export const DEMO_KEY = 'wk_demo_key_0001';
/** The site with full-page replay on (`dom = true`). */
export const DOM_KEY = 'wk_dom_key_0001';
export const TOKEN = 'rt_e2e_token';
/** A read token for the demo site alone. */
export const DEMO_TOKEN = 'rt_demo_site_only_0001';
const BIN = process.env.SPOOR_BIN || new URL('../../../target/debug/spoor', import.meta.url).pathname;

/** The store: embedded in `dir`, or, with SPOOR_E2E_MONGODB_URI set, a database of that
 * MongoDB server named after `dir` (so a restart on the same `dir` finds its data). */
function storeFor(dir) {
  const uri = process.env.SPOOR_E2E_MONGODB_URI;
  if (!uri) return `embedded:${join(dir, 'data')}`;
  const db = 'spoor_e2e_' + dir.split('-').pop().replace(/[^A-Za-z0-9]/g, '');
  const [base, query] = uri.split('?');
  return `${base.replace(/\/+$/, '')}/${db}${query ? '?' + query : ''}`;
}

/** Starts spoor; `port` 0 picks one (read back from its banner). */
export async function startSpoor({ dir, port = 0, pageOrigin }) {
  const cfg = join(dir, 'spoor.toml');
  writeFileSync(
    cfg,
    `listen = "127.0.0.1:${port}"
store = "${storeFor(dir)}"
read_token = "${TOKEN}"
[[site]]
id = "e2e"
write_key = "${KEY}"
origins = ["${pageOrigin}"]
[[site]]
id = "dom"
write_key = "${DOM_KEY}"
origins = ["${pageOrigin}"]
dom = true
[[site]]
id = "demo"
write_key = "${DEMO_KEY}"
origins = ["*"]
read_token = "${DEMO_TOKEN}"
`,
  );
  const proc = spawn(BIN, ['serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const actual = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`spoor exited ${code}: ${err}`)));
  });
  return { proc, port: actual, base: `http://127.0.0.1:${actual}` };
}

export function stop(s, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve();
    s.proc.once('exit', resolve);
    s.proc.kill(signal);
  });
}

/** Serves fixture pages that embed the snippet from `spoorBase` (another origin). */
export async function startPages(pages) {
  const server = createServer((req, res) => {
    const body = pages[req.url.split('?')[0]];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body());
  });
  await new Promise((r) => server.listen(0, 'localhost', r));
  return { server, origin: `http://localhost:${server.address().port}` };
}

export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

export async function api(base, path) {
  const r = await fetch(base + path, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return path.includes('/events') ? r.text() : r.json();
}

/** Every event row of a session, with its chunk's seq and absolute time. */
export async function rows(base, site, sid) {
  const text = await api(base, `/api/sessions/${sid}/events?site=${site}`);
  const chunks = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { text, chunks, rows: chunks.flatMap((c) => c.ev.map((r) => ({ seq: c.seq, t: c.t0 + r[1], kind: r[0], f: r.slice(2) }))) };
}

export async function waitFor(what, fn, ms = 20_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** A data directory for one test file's servers, removed when the test process exits. */
export function tempDir() {
  const d = mkdtempSync(join(tmpdir(), 'spoor-e2e-'));
  process.once('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

export function shotsDir() {
  const d = new URL('./shots/', import.meta.url).pathname;
  mkdirSync(d, { recursive: true });
  return d;
}

export const page = (title, spoorBase, body, attrs = '', head = '') => () => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>${head}</head>
<body style="margin:0;font:16px sans-serif">
${body}
<script async src="${spoorBase}/spoor.js" data-key="${KEY}" data-flush-ms="200" ${attrs}></script>
</body></html>`;
