// The replay viewer in headless Chromium against the real server, with seeded sessions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { DEMO_TOKEN, KEY, TOKEN, browser, startSpoor, stop, tempDir, waitFor } from '../../../js-snippet/test/e2e/harness.mjs';

let spoor, chrome;
const T = Date.now() - 60_000;
const HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">';
const HOSTILE_URL = 'javascript:window.__pwned=2';
const HOSTILE_TEXT = '<script>window.__pwned=3</script>';
const shots = new URL('../../../docs/img/', import.meta.url).pathname;

async function seed(hello, batches) {
  const r = await fetch(`${spoor.base}/v1/batch?key=${KEY}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hello, batches }),
  });
  assert.equal(r.status, 200, await r.text());
}

before(async () => {
  spoor = await startSpoor({ dir: tempDir(), pageOrigin: 'http://localhost:1' });
  chrome = await browser();
  await seed({ sid: 'ui_sess_cursor', url: 'https://shop.example/a', title: 'Shop A', vw: 1000, vh: 600 }, [
    { seq: 0, t0: T, ev: [[0, 0, 'https://shop.example/a', 'Shop A'], [1, 100, 100, 100], [1, 200, 200, 150], [1, 300, 300, 200], [2, 400, 300, 200, 0, '#buy', 'Buy'], [3, 450, 0, 400]] },
    { seq: 1, t0: T + 10_000, ev: [[1, 0, 500, 300], [0, 100, 'https://shop.example/b', 'Shop B'], [2, 200, 500, 300, 0, '#next', 'Next']] },
  ]);
  await seed({ sid: 'ui_sess_rage', did: 'visitor-7', url: 'https://shop.example/c', vw: 800, vh: 600 }, [
    { seq: 0, t0: T + 1000, ev: [[10, 0, 800, 900, [[0, 0, 0, 800, 40, '#234'], [4, 30, 30, 80, 40], [2, 20, 120, 500, 20]]], [2, 0, 50, 50, 0, '#pay', 'Pay'], [2, 100, 51, 50, 0, '#pay', 'Pay'], [2, 200, 50, 51, 0, '#pay', 'Pay']] },
  ]);
  await seed({ sid: 'ui_sess_evil', url: HOSTILE_URL, title: HOSTILE_TITLE, vw: 800, vh: 600 }, [
    { seq: 0, t0: T + 2000, ev: [[0, 0, HOSTILE_URL, HOSTILE_TITLE], [2, 10, 10, 10, 0, HOSTILE_TEXT, HOSTILE_TEXT], [9, 20, HOSTILE_TEXT, { html: HOSTILE_TITLE }]] },
  ]);
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await chrome?.close();
  await stop(spoor);
});

async function open(path, viewport = { width: 1200, height: 860 }) {
  const ctx = await chrome.newContext({ viewport });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  await p.goto(spoor.base + path);
  return { ctx, p, errors };
}

test('the list shows sessions newest first and its filters work', async () => {
  const { ctx, p, errors } = await open(`/?token=${TOKEN}`);
  await p.waitForSelector('table.sessions');
  const sids = await p.$$eval('tr[data-sid]', (rows) => rows.map((r) => r.dataset.sid));
  // Newest first by last activity: the cursor session's second batch is the latest.
  assert.deepEqual(sids, ['ui_sess_cursor', 'ui_sess_evil', 'ui_sess_rage']);
  assert.ok(!p.url().includes('token='), 'the token leaves the address bar');
  await p.screenshot({ path: shots + 'sessions.png' });
  await p.fill('input[name=url]', 'shop.example/b');
  await p.click('button[type=submit]');
  await p.waitForFunction(() => document.querySelectorAll('tr[data-sid]').length === 1);
  assert.equal(await p.$eval('tr[data-sid]', (r) => r.dataset.sid), 'ui_sess_cursor');
  await p.goto(spoor.base + '/?has_rage=true');
  await p.waitForSelector('tr[data-sid]');
  assert.deepEqual(await p.$$eval('tr[data-sid]', (rows) => rows.map((r) => r.dataset.sid)), ['ui_sess_rage']);
  assert.equal(await p.$eval('td.rage', (td) => td.textContent), '1');
  // A device links to all of its sessions; the filter keeps it.
  await p.goto(spoor.base + '/');
  await p.click('td.did a');
  await p.waitForFunction(() => document.querySelectorAll('tr[data-sid]').length === 1);
  assert.equal(await p.$eval('tr[data-sid]', (r) => r.dataset.sid), 'ui_sess_rage');
  assert.equal(await p.inputValue('input[name=did]'), 'visitor-7');
  await p.fill('input[name=did]', 'nobody');
  await p.click('button[type=submit]');
  await p.waitForSelector('p.empty');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('live now lists only active sessions and picks up new ones by itself', async () => {
  const { ctx, p, errors } = await open(`/?live=1&site=e2e&token=${TOKEN}`);
  await p.waitForSelector('p.empty');
  assert.ok(await p.isChecked('input[name=live]'));
  assert.match(await p.textContent('p.empty'), /refreshes by itself/);
  await seed({ sid: 'ui_sess_now', url: 'https://shop.example/now', vw: 800, vh: 600 }, [
    { seq: 0, t0: Date.now(), ev: [[0, 0, 'https://shop.example/now', 'Now'], [1, 10, 10, 10]] },
  ]);
  await p.waitForSelector('tr[data-sid=ui_sess_now] .badge.live', { timeout: 12_000 });
  assert.deepEqual(await p.$$eval('tr[data-sid]', (r) => r.map((x) => x.dataset.sid)), ['ui_sess_now']);
  // It keeps asking while shown; leaving the list stops its refresh.
  let polls = 0;
  p.on('request', (r) => {
    if (r.url().includes('/api/sessions?')) polls++;
  });
  await waitFor('a refresh', () => polls > 0, 12_000);
  await p.click('tr[data-sid=ui_sess_now] a');
  await p.waitForSelector('canvas.stage');
  polls = 0;
  await p.waitForTimeout(6000);
  assert.equal(polls, 0, 'no list requests from the player');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('the player draws the cursor where the events put it at a given time', async () => {
  const { ctx, p, errors } = await open(`/sessions/ui_sess_cursor?site=e2e&t=0.25&token=${TOKEN}`);
  await p.waitForFunction(() => document.querySelector('canvas.stage')?.dataset.rec === '200,150');
  assert.equal(await p.textContent('.meta .title'), 'Shop A');
  const [cx, cy] = (await p.$eval('canvas.stage', (c) => c.dataset.cursor)).split(',').map(Number);
  const pixel = await p.$eval('canvas.stage', (c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data), [cx, cy]);
  assert.ok(pixel[0] > 200 && pixel[1] < 80 && pixel[2] < 80, `cursor pixel ${pixel}`);
  // The cursor is drawn to scale: recorded (200,150) in a 1000×600 viewport on a 960×560 stage.
  const s = Math.min(920 / 1000, 520 / 600);
  assert.ok(Math.abs(cx - ((960 - 1000 * s) / 2 + 200 * s)) <= 1);
  assert.ok(Math.abs(cy - ((560 - 600 * s) / 2 + 150 * s)) <= 1);
  // The 10 s pause is skipped on the timeline, and markers are drawn.
  assert.equal(await p.$$eval('.timeline .skipped', (s) => s.length), 1);
  assert.equal(await p.$$eval('.timeline .mark.click', (s) => s.length), 2);
  assert.equal(await p.$$eval('.timeline .mark.page', (s) => s.length), 2);
  // Markers sit where their events fall on the (compressed) timeline: the first click is
  // 400 ms into 1,150 ms of playback. (Catches styles the CSP would block.)
  const at = await p.$eval('.timeline .mark.click', (m) => (m.getBoundingClientRect().left + 1 - m.parentElement.getBoundingClientRect().left) / m.parentElement.getBoundingClientRect().width);
  assert.ok(Math.abs(at - 400 / 1150) < 0.01, `click marker at ${at}`);
  await p.screenshot({ path: shots + 'player.png' });
  // Seek past the gap with the keyboard: play, then the cursor reaches (500,300) on page B.
  await p.keyboard.press('Space');
  await p.waitForFunction(() => document.querySelector('canvas.stage').dataset.url === 'https://shop.example/b', null, { timeout: 10_000 });
  assert.equal(await p.$eval('canvas.stage', (c) => c.dataset.rec), '500,300');
  assert.equal(await p.textContent('.meta .title'), 'Shop B');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('the activity log lists what the visitor did and seeks there', async () => {
  await seed({ sid: 'ui_sess_log', url: 'https://shop.example/p', vw: 800, vh: 600 }, [
    { seq: 0, t0: T + 3000, ev: [
      [0, 0, 'https://shop.example/p', 'Product'],
      [1, 200, 100, 100],
      [2, 1000, 100, 100, 0, 'button#add', 'Add to cart'],
      [9, 1500, 'add_to_cart', { item: 'lamp' }],
      [6, 2500, 'input#email'],
      [5, 3500, false],
      [5, 4000, true],
      [1, 4500, 300, 300],
    ] },
  ]);
  const { ctx, p, errors } = await open(`/sessions/ui_sess_log?site=e2e&t=0&token=${TOKEN}`);
  await p.waitForFunction(() => document.querySelectorAll('ol.log li').length === 6);
  const lines = await p.$$eval('ol.log li', (ls) => ls.map((l) => [...l.children].map((c) => c.textContent)));
  assert.deepEqual(lines, [
    ['0:00', 'Page', 'Product · https://shop.example/p'],
    ['0:01', 'Click', '“Add to cart” button#add'],
    ['0:01', 'Event', 'add_to_cart {"item":"lamp"}'],
    ['0:02', 'Input', 'input#email'],
    ['0:03', 'Tab hidden', ''],
    ['0:04', 'Tab visible', ''],
  ]);
  assert.equal(await p.$eval('ol.log li.now', (l) => l.children[1].textContent), 'Page', 'paused at the start');
  // The whole recording downloads as NDJSON, one batch a line.
  const [dl] = await Promise.all([p.waitForEvent('download'), p.click('button.export')]);
  assert.equal(dl.suggestedFilename(), 'ui_sess_log.ndjson');
  const batches = readFileSync(await dl.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(batches.map((b) => [b.seq, b.ev.length]), [[0, 8]]);
  const details = await p.textContent('.meta .details');
  for (const part of ['5s', '1 page', '1 click', 'node', '800×600']) assert.ok(details.includes(part), `${part} in ${details}`);
  // A click on a line moves the playhead there: the tab-hidden overlay's moment.
  await p.click('ol.log li:nth-child(5)');
  await p.waitForFunction(() => document.querySelector('ol.log li.now')?.children[1].textContent === 'Tab hidden');
  assert.match(await p.textContent('.time'), /^0:03 \//);
  await p.screenshot({ path: shots + 'player-log.png' });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('the activity log of a very busy session stops at 5,000 lines and says how many more', async () => {
  const clicks = (n, from) => Array.from({ length: n }, (_, i) => [2, from + i, 10 + (i % 50), 10, 0, '#b', 'B']);
  await seed({ sid: 'ui_sess_busy', url: 'https://shop.example/busy', vw: 800, vh: 600 }, [
    { seq: 0, t0: T + 4000, ev: [[0, 0, 'https://shop.example/busy', 'Busy'], ...clicks(3000, 1)] },
    { seq: 1, t0: T + 8000, ev: clicks(3000, 0) },
  ]);
  const { ctx, p, errors } = await open(`/sessions/ui_sess_busy?site=e2e&t=0&token=${TOKEN}`);
  await p.waitForFunction(() => document.querySelector('ol.log li.more')?.textContent === '… 1001 more', null, { timeout: 15_000 });
  assert.equal(await p.$$eval('ol.log li:not(.more)', (l) => l.length), 5000);
  // The timeline draws one mark per kind and thousandth of its width, not 6,000.
  const clickMarks = await p.$$eval('.timeline .mark.click', (m) => m.length);
  assert.ok(clickMarks > 0 && clickMarks <= 1001, String(clickMarks));
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('live follow shows a new page view within a second', async () => {
  await seed({ sid: 'ui_sess_live', url: 'https://shop.example/live', vw: 800, vh: 600 }, [
    { seq: 0, t0: Date.now(), ev: [[0, 0, 'https://shop.example/live', 'Live'], [1, 10, 10, 10]] },
  ]);
  const { ctx, p, errors } = await open(`/sessions/ui_sess_live?site=e2e&live=1&token=${TOKEN}`);
  await p.waitForSelector('button.live.on');
  await p.waitForFunction(() => document.querySelector('canvas.stage')?.dataset.url === 'https://shop.example/live');
  await seed({ sid: 'ui_sess_live' }, [{ seq: 1, t0: Date.now(), ev: [[0, 0, 'https://shop.example/live-new', 'New'], [2, 5, 20, 20, 0, '#x', 'X']] }]);
  await p.waitForFunction(() => document.querySelector('.meta .url').textContent === 'https://shop.example/live-new', null, { timeout: 1000 });
  // The log grows with the session: the new page view and click are added after the first page.
  await p.waitForFunction(() => document.querySelectorAll('ol.log li').length === 3);
  assert.deepEqual(await p.$$eval('ol.log li .what', (w) => w.map((x) => x.textContent)), ['Page', 'Page', 'Click']);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('hostile recorded strings are shown as text and never run', async () => {
  const heat = `/heatmap?site=e2e&url=${encodeURIComponent(HOSTILE_URL)}&token=${TOKEN}`;
  for (const path of [`/?token=${TOKEN}`, `/sessions/ui_sess_evil?site=e2e&t=0.05&token=${TOKEN}`, heat]) {
    const { ctx, p, errors } = await open(path);
    await p.waitForSelector(path.startsWith('/?') ? 'tr[data-sid]' : path === heat ? 'canvas.heat[data-points]' : 'canvas.stage[data-url]');
    await p.waitForTimeout(300);
    assert.equal(await p.evaluate(() => window.__pwned), undefined, 'no recorded string executed');
    assert.equal(await p.$$eval('#app img, #app script', (e) => e.length), 0, 'no element made from recorded text');
    assert.equal(await p.$$eval('a[href^="javascript:"]', (a) => a.length), 0, 'no javascript: link');
    if (path === heat) {
      assert.equal(await p.textContent('td.sel'), HOSTILE_TEXT, 'a recorded selector is listed as text');
    } else if (!path.startsWith('/?')) {
      assert.equal(await p.textContent('.meta .title'), HOSTILE_TITLE);
      assert.equal(await p.textContent('.meta .url'), HOSTILE_URL);
      assert.ok((await p.textContent('ol.log')).includes(HOSTILE_TEXT), 'the log shows recorded markup as text');
    } else {
      assert.ok((await p.textContent('tr[data-sid=ui_sess_evil]')).includes(HOSTILE_URL));
    }
    const csp = (await p.request.get(spoor.base + '/')).headers()['content-security-policy'];
    assert.ok(csp.includes("script-src 'self'"), csp);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

test('the heatmap view draws the clicks of a page', async () => {
  // Two clicks on the same page three days ago: outside the last 24 hours.
  const old = Date.now() - 3 * 86_400_000;
  await seed({ sid: 'ui_sess_old', url: 'https://shop.example/c', vw: 800, vh: 600 }, [
    { seq: 0, t0: old, ev: [[2, 0, 600, 500, 0, '#old', 'Old'], [2, 900, 620, 500, 0, '#old', 'Old']] },
  ]);
  const { ctx, p } = await open(`/heatmap?site=e2e&url=${encodeURIComponent('https://shop.example/c')}&range=86400000&token=${TOKEN}`);
  await p.waitForSelector('canvas.heat[data-points]');
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.points), '3', 'the last 24 hours');
  assert.equal(await p.inputValue('select[name=range]'), '86400000');
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.wireframe), '3', 'the clicks are drawn over the page wireframe');
  const text = await p.$eval('canvas.heat', (c) => Array.from(c.getContext('2d').getImageData(300, 130, 1, 1).data));
  assert.deepEqual(text.slice(0, 3), [0xdf, 0xe4, 0xea], 'a text bar of the wireframe');
  await p.screenshot({ path: shots + 'heatmap.png' });
  const pixel = await p.$eval('canvas.heat', (c) => Array.from(c.getContext('2d').getImageData(50, 50, 1, 1).data));
  assert.ok(pixel[1] < 200, `a hot spot at the clicks: ${pixel}`);
  // All time brings the old clicks in; the choice stays in the address.
  await p.selectOption('select[name=range]', '');
  await p.waitForFunction(() => document.querySelector('canvas.heat')?.dataset.points === '5');
  assert.ok(!p.url().includes('range='));
  await ctx.close();
});

test('scroll maps, device segments and the element list of a page', async () => {
  // A long pricing page: views from desktops (1,280 px) and phones (375 px) scrolling to
  // different depths, clicks on its plans, each class with its own wireframe.
  const page = 'https://shop.example/pricing';
  const desk = [[0, 0, 0, 1280, 3000], [7, 0, 0, 1280, 64], [1, 80, 120, 700, 40], [2, 80, 180, 900, 18], [2, 80, 210, 860, 18],
    [3, 80, 280, 520, 300], [0, 80, 700, 340, 420], [1, 100, 720, 200, 30], [4, 110, 1020, 160, 44], [0, 470, 700, 340, 420], [1, 490, 720, 200, 30], [4, 500, 1020, 160, 44],
    [0, 860, 700, 340, 420], [1, 880, 720, 200, 30], [4, 890, 1020, 160, 44], [2, 80, 1300, 1000, 18], [2, 80, 1330, 900, 18], [5, 80, 2800, 120, 18]];
  const phone = [[0, 0, 0, 375, 4200], [7, 0, 0, 375, 56], [1, 16, 90, 300, 36], [3, 16, 150, 343, 200], [0, 16, 400, 343, 380], [4, 32, 700, 200, 44], [0, 16, 820, 343, 380], [4, 32, 1120, 200, 44]];
  const t0 = Date.now() - 120_000;
  const views = [];
  for (let i = 0; i < 12; i++) {
    const mobile = i % 3 === 0;
    const deep = [0, 400, 900, 1500, 2300][i % 5];
    // Down to the plans, clicks there, then on down (or not) to `deep`.
    const plans = mobile ? 600 : 700;
    const ev = [[0, 0, page + (i % 2 ? '?utm_source=mail' : ''), 'Pricing'], [10, 5, mobile ? 375 : 1280, mobile ? 4200 : 3000, mobile ? phone : desk], [3, 200, 0, plans]];
    if (mobile) ev.push([2, 300, 130, 722 - plans, 0, 'section.plans>div:nth-of-type(1)>button', 'Start']);
    else {
      for (let k = 0; k < 1 + (i % 4); k++) ev.push([2, 300 + k * 1500, 590, 1042 - plans, 0, '#plan-pro', 'Choose Pro']);
      if (i % 4 === 1) ev.push([2, 9000, 590 - 390, 1042 - plans, 0, '#plan-basic', 'Choose Basic']);
    }
    if (deep > plans) ev.push([3, 9500, 0, deep]);
    if (!mobile && deep >= 2300) ev.push([2, 12000, 140, 2808 - deep, 0, 'footer a.terms', 'Terms']);
    views.push(seed({ sid: `ui_heat_${i}`, url: page, vw: mobile ? 375 : 1280, vh: mobile ? 667 : 720 }, [{ seq: 0, t0: t0 + i, ev }]));
  }
  await Promise.all(views);
  // The heatmaps' index lists the page once, whatever its query strings, and opens it.
  const index = await open(`/heatmaps?site=e2e&token=${TOKEN}`);
  await index.p.waitForSelector('table.pages');
  assert.equal(await index.p.$eval(`tr[data-page="${page}"] td.num`, (td) => td.textContent), '12');
  await index.p.screenshot({ path: shots + 'heatmaps.png' });
  await index.p.click(`tr[data-page="${page}"] a`);
  await index.p.waitForSelector('canvas.heat[data-points]');
  assert.equal(await index.p.$eval('canvas.heat', (c) => c.dataset.points), '27');
  assert.deepEqual(index.errors, []);
  await index.ctx.close();
  const q = `site=e2e&url=${encodeURIComponent(page + '?ref=ad')}&token=${TOKEN}`;
  const { ctx, p, errors } = await open(`/heatmap?${q}`, { width: 1700, height: 1000 });
  await p.waitForSelector('canvas.heat[data-points]');
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.points), '27', 'every click, whatever the query string');
  assert.ok((await p.textContent('p.url')).includes('counted as https://shop.example/pricing'));
  const rows = await p.$$eval('tr.element', (r) => r.map((x) => [x.cells[0].textContent, x.cells[1].textContent]));
  assert.deepEqual(rows[0], ['#plan-pro', '20'], 'the most clicked first');
  assert.equal(rows.length, 4);
  // Picking an element outlines its box on the wireframe.
  await p.click('tr.element >> nth=0');
  await p.waitForSelector('canvas.heat[data-picked]');
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.picked), '500,1020,160,44', 'the Pro button of the wireframe');
  assert.equal(await p.$eval('canvas.heat', (c) => Array.from(c.getContext('2d').getImageData(497, 1040, 1, 1).data).slice(0, 3).join()), '26,86,219');
  await p.screenshot({ path: shots + 'heatmap-elements.png' });
  // Phones only: their clicks, their wireframe.
  await p.selectOption('select[name=device]', 'mobile');
  await p.waitForFunction(() => document.querySelector('canvas.heat')?.dataset.points === '4');
  assert.ok(p.url().includes('device=mobile'));
  assert.equal(await p.$eval('canvas.heat', (c) => c.width), 375);
  // The scroll map of all devices.
  await p.selectOption('select[name=device]', '');
  await p.click('button[data-view=scroll]');
  await p.waitForSelector('canvas.heat[data-views]');
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.views), '12');
  // Fold: the median first screen (8 desktops of 720 px, 4 phones of 667 px).
  assert.equal(await p.$eval('canvas.heat', (c) => c.dataset.fold), '700');
  const depth = await p.$$eval('table.depth tr', (r) => r.slice(1).map((x) => x.cells[1].textContent));
  assert.equal(depth[0], '1250 px', 'every view saw the plans: a phone scrolled to 600 px sees down to 1,267 px');
  await p.screenshot({ path: shots + 'heatmap-scroll.png' });
  assert.ok(p.url().includes('view=scroll'));
  assert.deepEqual(errors, []);
  await ctx.close();
  // The click map with its list, for the docs.
  const second = await open(`/heatmap?${q}&device=desktop`, { width: 1700, height: 1000 });
  await second.p.waitForSelector('canvas.heat[data-points]');
  await second.p.evaluate(() => document.querySelector('.heat-page').scrollTo(0, 600));
  await second.p.screenshot({ path: shots + 'heatmap-clicks.png' });
  await second.ctx.close();
});

test('a session can be deleted from the player, after a confirmation', async () => {
  await seed({ sid: 'ui_sess_gone', url: 'https://shop.example/gone', vw: 800, vh: 600 }, [
    { seq: 0, t0: Date.now() - 5_000, ev: [[0, 0, 'https://shop.example/gone', 'Gone'], [2, 10, 20, 20, 0, '#x', 'X']] },
  ]);
  const status = async () => (await fetch(`${spoor.base}/api/sessions/ui_sess_gone?site=e2e`, { headers: { authorization: `Bearer ${TOKEN}` } })).status;
  const { ctx, p, errors } = await open(`/sessions/ui_sess_gone?site=e2e&token=${TOKEN}`);
  await p.waitForSelector('canvas.stage[data-url]');
  // Saying no keeps it.
  p.once('dialog', (d) => d.dismiss());
  await p.click('button.danger');
  await p.waitForTimeout(300);
  assert.equal(await status(), 200);
  assert.ok(p.url().includes('/sessions/ui_sess_gone'));
  // Saying yes deletes it and goes back to the list, which no longer shows it.
  let question = '';
  p.once('dialog', (d) => {
    question = d.message();
    void d.accept();
  });
  await p.click('button.danger');
  await p.waitForSelector('table.sessions');
  assert.match(question, /Delete session ui_sess_gone/);
  assert.equal(new URL(p.url()).pathname, '/');
  assert.equal(await status(), 404);
  assert.equal(await p.$$eval('tr[data-sid=ui_sess_gone]', (r) => r.length), 0);
  assert.ok((await p.$$eval('tr[data-sid]', (r) => r.length)) >= 3, 'the other sessions stay');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("a site's own read token shows that site only, and says so when asked for another", async () => {
  const { ctx, p, errors } = await open(`/?token=${DEMO_TOKEN}`);
  await p.waitForSelector('p.empty');
  assert.equal(await p.$$eval('tr[data-sid]', (r) => r.length), 0, 'none of the e2e sessions');
  await p.goto(spoor.base + '/sessions/ui_sess_cursor?site=e2e');
  await p.waitForSelector('p.error');
  assert.match(await p.textContent('p.error'), /this read token is for another site \(HTTP 403\)/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('a wrong token brings the token prompt back', async () => {
  const { ctx, p } = await open('/?token=rt_wrong');
  await p.waitForSelector('form.token');
  assert.match(await p.textContent('form.token'), /not accepted/);
  await p.fill('form.token input', TOKEN);
  await p.click('form.token button');
  await p.waitForSelector('tr[data-sid]');
  await ctx.close();
});
