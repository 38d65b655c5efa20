// What full-page replay costs the page, in Chromium: the main thread's busy time (CDP
// Performance.TaskDuration) over 10 s of page time with spoor.js alone and with spoor.js plus
// the rrweb recorder (data-replay="dom"), on
// - a page of 5,000 elements (the recorder's first snapshot dominates), and
// - a page that changes 1,000 text nodes a second (mutations dominate);
// and the compressed DOM bytes per minute of a typical session (an article page of 500
// elements, read with mouse moves, scrolls and a few clicks for 30 s).
//
//   (cd js-snippet && node bench/dom-cost.mjs)   # needs target/debug/spoor or SPOOR_BIN
import { DOM_KEY, KEY, TOKEN, browser, startPages, startSpoor, stop, tempDir } from '../test/e2e/harness.mjs';

const SECONDS = 10;
const ref = {};
const tag = (key, dom) => `<script async src="${ref.base}/spoor.js" data-key="${key}" ${dom ? 'data-replay="dom"' : ''}></script>`;
const heavy = Array.from({ length: 1000 }, (_, i) => `<div class="row"><span>Item ${i}</span><a href="#${i}">link ${i}</a><em>note</em><b>${i}</b></div>`).join('');
const churn = `<div id="c">${Array.from({ length: 100 }, (_, i) => `<p id="p${i}">0</p>`).join('')}</div>
<script>let n = 0; setInterval(() => { n++; for (let i = 0; i < 100; i++) document.getElementById('p' + i).textContent = String(n * 100 + i); }, 100);</script>`;
const article = Array.from({ length: 100 }, (_, i) => `<section><h2>Section ${i}</h2><p>Paragraph ${i} of the article, with a <a href="#">link</a> and <strong>emphasis</strong>.</p><ul><li>one</li><li>two</li></ul></section>`).join('');
const doc = (body, key, dom) => () => `<!doctype html><html><head><meta charset="utf-8"><title>bench</title></head><body>${body}${tag(key, dom)}</body></html>`;

const pages = await startPages({
  '/heavy-off.html': doc(heavy, KEY, false),
  '/heavy-dom.html': doc(heavy, DOM_KEY, true),
  '/churn-off.html': doc(churn, KEY, false),
  '/churn-dom.html': doc(churn, DOM_KEY, true),
  '/article.html': doc(article, DOM_KEY, true),
});
const spoor = await startSpoor({ dir: tempDir(), pageOrigin: pages.origin });
ref.base = spoor.base;
const chrome = await browser();

/** Main-thread busy milliseconds during the first SECONDS of a page. */
async function busy(path) {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  const cdp = await ctx.newCDPSession(p);
  await cdp.send('Performance.enable');
  const task = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration').value;
  // From before the navigation: the recorder's first snapshot runs while the page loads.
  const start = await task();
  await p.goto(pages.origin + path);
  await p.waitForTimeout(SECONDS * 1000);
  const ms = ((await task()) - start) * 1000;
  await ctx.close();
  return ms;
}

const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
for (const name of ['heavy', 'churn']) {
  const off = [];
  const on = [];
  for (let r = 0; r < 3; r++) {
    off.push(await busy(`/${name}-off.html`));
    on.push(await busy(`/${name}-dom.html`));
  }
  [off[0], on[0]] = [median(off), median(on)];
  out[name] = { off_ms: Math.round(off[0]), dom_ms: Math.round(on[0]), extra_share_of_main_thread: `${(((on[0] - off[0]) / (SECONDS * 1000)) * 100).toFixed(2)} %` };
}

// A typical session: 30 s on the article, reading.
{
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/article.html');
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < 30_000; i++) {
    await p.mouse.move(200 + ((i * 37) % 800), 100 + ((i * 53) % 600), { steps: 5 });
    if (i % 10 === 0) await p.mouse.wheel(0, 400);
    if (i % 25 === 0) await p.mouse.click(300, 300);
    await p.waitForTimeout(250);
  }
  await p.waitForTimeout(1500);
  const list = await (await fetch(`${spoor.base}/api/sessions?site=dom&url=article`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  const s = list.sessions[0];
  out.typical_session = { seconds: 30, dom_bytes: s.dom_bytes, dom_bytes_per_minute: Math.round((s.dom_bytes / 30) * 60), events: s.events };
  await ctx.close();
}
console.log(JSON.stringify(out, null, 2));
await chrome.close();
await stop(spoor);
pages.server.close();
