// Layout snapshots (kind 10) in Chromium: boxes where the elements are, no text stored, caps
// and size on big pages; and the player drawing the wireframe under the cursor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { build } from 'esbuild';
import { api, browser, page, rows, shotsDir, startPages, startSpoor, stop, tempDir, TOKEN, waitFor } from './harness.mjs';

let spoor, pages, chrome, bundle;
const WORDS = 'zebracorn quillfeather';

const LAYOUT_BODY = `<style>*{box-sizing:border-box} .a{position:absolute}</style>
  <header class="a" style="left:0;top:0;width:1000px;height:60px;background:#234"><nav class="a" style="left:600px;top:10px;width:380px;height:40px"><a href="#x">Pricing ${WORDS}</a></nav></header>
  <h1 class="a" style="left:20px;top:80px;width:500px;height:40px;margin:0">Welcome ${WORDS}</h1>
  <p class="a" style="left:20px;top:140px;width:600px;height:60px;margin:0">Paragraph ${WORDS} text.</p>
  <img class="a" style="left:650px;top:90px;width:300px;height:200px" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
  <button id="cta" class="a" style="left:20px;top:220px;width:160px;height:44px">Buy ${WORDS}</button>
  <input class="a" style="left:200px;top:220px;width:200px;height:30px" value="${WORDS}">
  <div data-spoor-block class="a" style="left:20px;top:300px;width:300px;height:100px"><p>Secret ${WORDS}</p></div>
  <div class="a" style="left:0;top:1500px;width:10px;height:10px"></div>`;

before(async () => {
  const ref = {};
  const lazy = (title, b) => () => page(title, ref.base, b)();
  pages = await startPages({ '/layout.html': lazy('Layout', LAYOUT_BODY) });
  spoor = await startSpoor({ dir: tempDir(), pageOrigin: pages.origin });
  ref.base = spoor.base;
  chrome = await browser();
  const out = await build({
    stdin: { contents: "import { snapshot } from './src/collectors/layout'; import { encode } from './src/msgpack'; window.__layout = { snapshot, encode };", resolveDir: '.', loader: 'ts' },
    bundle: true,
    write: false,
    format: 'iife',
  });
  bundle = out.outputFiles[0].text;
});

after(async () => {
  await chrome?.close();
  await stop(spoor);
  pages?.server.close();
});

test('the snapshot boxes are where the elements are, and no text is stored', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/layout.html');
  const s = await waitFor('a session', async () => (await api(spoor.base, '/api/sessions?site=e2e&url=layout')).sessions[0]);
  await p.click('#cta');
  const r = await waitFor('a layout event and the click', async () => {
    const r = await rows(spoor.base, 'e2e', s.sid);
    return r.rows.some((x) => x.kind === 10) && r.rows.some((x) => x.kind === 2) && r;
  });
  const [docW, docH, boxes] = r.rows.find((x) => x.kind === 10).f;
  assert.equal(docW, 1000);
  assert.ok(docH >= 1510, `doc height ${docH}`);
  const want = await p.evaluate(() =>
    ['header', 'nav', 'nav a', 'h1', 'p', 'img', '#cta', 'input', '[data-spoor-block]'].map((sel) => {
      const b = document.querySelector(sel).getBoundingClientRect();
      return [sel, b.left + scrollX, b.top + scrollY, b.width, b.height];
    }),
  );
  const roles = { header: 0, nav: 7, 'nav a': 5, h1: 1, p: 2, img: 3, '#cta': 4, input: 6, '[data-spoor-block]': 0 };
  for (const [sel, x, y, w, h] of want) {
    const hit = boxes.find((b) => b[0] === roles[sel] && Math.abs(b[1] - x) <= 2 && Math.abs(b[2] - y) <= 2 && Math.abs(b[3] - w) <= 2 && Math.abs(b[4] - h) <= 2);
    assert.ok(hit, `${sel} at ${x},${y} ${w}×${h} in ${JSON.stringify(boxes)}`);
  }
  assert.ok(!boxes.some((b) => b[1] >= 20 && b[2] >= 300 && b[2] < 400 && b[0] === 2), 'nothing inside the blocked subtree');
  // No page text in any layout; elsewhere only the clicked button's own label (click text is
  // a feature of click events), never the heading, paragraph, input value or blocked text.
  const layouts = JSON.stringify(r.rows.filter((x) => x.kind === 10));
  const others = JSON.stringify(r.rows.filter((x) => x.kind !== 10 && x.kind !== 2));
  for (const word of WORDS.split(' ')) {
    assert.ok(!layouts.includes(word), `page text "${word}" in a layout`);
    assert.ok(!others.includes(word), `page text "${word}" stored`);
  }
  assert.ok(!r.text.includes('Welcome') && !r.text.includes('Paragraph') && !r.text.includes('Secret'));
  const header = boxes.find((b) => b[0] === 0 && b[4] === 60);
  assert.equal(header[5], '#234', 'a coarse background colour for a large block');

  // The player draws the wireframe with the cursor on the clicked button.
  const click = r.rows.find((x) => x.kind === 2);
  const start = r.rows[0].t;
  const v = await ctx.newPage();
  await v.setViewportSize({ width: 1100, height: 800 });
  await v.goto(`${spoor.base}/sessions/${s.sid}?site=e2e&token=${TOKEN}&t=${(click.t - start) / 1000 + 0.001}`);
  await v.waitForFunction(() => document.querySelector('canvas.stage')?.dataset.wireframe && document.querySelector('canvas.stage').dataset.cursor);
  const cursor = (await v.$eval('canvas.stage', (c) => c.dataset.cursor)).split(',').map(Number);
  // The button's box on the stage: the viewport is scaled into 960×560 with 20 px margins.
  const sc = Math.min(920 / 1000, 520 / 700);
  const [, bx, by, bw, bh] = boxes.find((b) => b[0] === 4);
  const ox = (960 - 1000 * sc) / 2;
  const oy = (560 - 700 * sc) / 2;
  assert.ok(cursor[0] >= ox + bx * sc && cursor[0] <= ox + (bx + bw) * sc, `cursor x ${cursor[0]} on the button`);
  assert.ok(cursor[1] >= oy + by * sc && cursor[1] <= oy + (by + bh) * sc, `cursor y ${cursor[1]} on the button`);
  const buttonPixel = await v.$eval('canvas.stage', (c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data), [Math.round(ox + (bx + 8) * sc), Math.round(oy + (by + bh / 2) * sc)]);
  assert.deepEqual(buttonPixel.slice(0, 3), [0xc5, 0xd9, 0xf2], 'the button is drawn in its wireframe colour');
  await v.screenshot({ path: new URL('../../../docs/img/wireframe.png', import.meta.url).pathname });
  await ctx.close();
});

test('big pages stay within the box cap and the size budget', async () => {
  const p = await chrome.newPage({ viewport: { width: 1280, height: 800 } });
  const results = {};
  for (const n of [1000, 5000]) {
    await p.setContent(`<body style="margin:0">${Array.from({ length: n / 5 }, (_, i) => `<section style="padding:4px;border:1px solid #ccc"><h3>T${i}</h3><p>text ${i}</p><a href="#">l</a><button>b</button></section>`).join('')}</body>`);
    await p.addScriptTag({ content: bundle });
    results[n] = await p.evaluate(() => {
      const { snapshot, encode } = window.__layout;
      const times = [];
      let snap;
      for (let i = 0; i < 7; i++) {
        const t = performance.now();
        snap = snapshot();
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      return { boxes: snap[2].length, bytes: encode([10, 0, ...snap]).length, medianMs: times[3] };
    });
  }
  console.log('layout snapshot:', JSON.stringify(results));
  assert.ok(results[1000].boxes <= 500 && results[5000].boxes <= 500, 'capped at 500 boxes');
  assert.equal(results[5000].boxes, 500);
  assert.ok(results[1000].bytes <= 8192, `${results[1000].bytes} bytes encoded`);
  await p.close();
});
