// Main-thread cost of the snippet per mouse move, in Chromium: dispatches 20,000 mousemove
// events to a page with the snippet and to one without, and reports the difference per event.
// Two settings: the default sampling (50 ms / 4 px: most moves stop at the sampling check)
// and no sampling (every move recorded: the full path into the outbox).
//
//   (cd js-snippet && node bench/move-cost.mjs)   # needs target/debug/spoor or SPOOR_BIN
import { browser, page, startPages, startSpoor, stop, tempDir } from '../test/e2e/harness.mjs';

const N = 20_000;
const ref = {};
const body = '<div style="height:2000px"></div>';
const pages = await startPages({
  '/none.html': () => `<!doctype html><body>${body}</body>`,
  '/sampled.html': () => page('sampled', ref.base, body)(),
  '/all.html': () => page('all', ref.base, body, 'data-move-ms="0" data-move-px="0" data-batch-events="1000000"')(),
});
const spoor = await startSpoor({ dir: tempDir(), pageOrigin: pages.origin });
ref.base = spoor.base;
const chrome = await browser();
const p = await chrome.newPage();
const results = {};
for (const name of ['none', 'sampled', 'all']) {
  await p.goto(`${pages.origin}/${name}.html`);
  await p.waitForTimeout(500);
  const times = [];
  for (let r = 0; r < 5; r++) {
    times.push(
      await p.evaluate((n) => {
        const t = performance.now();
        for (let i = 0; i < n; i++) {
          document.dispatchEvent(new MouseEvent('mousemove', { clientX: (i * 7) % 1000, clientY: (i * 13) % 700, bubbles: true }));
        }
        return performance.now() - t;
      }, N),
    );
  }
  times.sort((a, b) => a - b);
  results[name] = times[2];
}
const per = (ms) => ((ms - results.none) / N) * 1000;
console.log(JSON.stringify({
  events: N,
  baseline_us_per_event: (results.none / N) * 1000,
  sampled_us_per_move: per(results.sampled),
  unsampled_us_per_move: per(results.all),
}));
await chrome.close();
await stop(spoor);
pages.server.close();
