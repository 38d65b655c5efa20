// The snippet in headless Chromium against the real server, from a page on another origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, browser, page, rows, shotsDir, startPages, startSpoor, stop, tempDir, waitFor } from './harness.mjs';

let spoor, pages, chrome, dir;
const SECRET = 'secret-typed-value-4242';

before(async () => {
  dir = tempDir();
  // The page server needs spoor's port and spoor needs the page origin: reserve the page
  // server first (its pages read spoor.base lazily).
  const ref = {};
  const body = `<button id="buy" style="position:absolute;left:100px;top:100px;width:120px;height:40px">Buy now</button>
    <input id="q" name="q" style="position:absolute;left:100px;top:200px">
    <a id="next" href="/b.html" style="position:absolute;left:100px;top:300px">next page</a>
    <div data-spoor-block style="position:absolute;left:400px;top:100px"><button id="acct">Account 12345</button></div>
    <div style="height:3000px"></div>`;
  const lazy = (title, b, attrs = '', head = '') => () => page(title, ref.base, b, attrs, head)();
  pages = await startPages({
    '/a.html': lazy('Page A', body),
    '/b.html': lazy('Page B', '<button id="other" style="margin:50px">Other</button>'),
    '/blocked.html': lazy('No sockets', body, '', '<script>window.WebSocket = function () { throw new Error("blocked by policy"); };</script>'),
    '/private.html': lazy('Private', body, 'data-respect-privacy'),
    '/unsampled.html': lazy('Not sampled', body, 'data-sample="0"'),
    '/notext.html': lazy('No click text', body, 'data-click-text="off"'),
    '/gps.html': lazy('Field app', '<p>Tracking</p>', 'data-gps="on"'),
    '/app.html': lazy('Single-page app', '<button id="login" style="margin:50px">Log in</button>'),
    '/scrolly.html': lazy(
      'Long page',
      `<a id="top-link" href="#" style="position:absolute;left:100px;top:40px;width:120px;height:30px">Top</a>
       <div style="height:6000px"></div>`,
    ),
    '/editor.html': lazy(
      'Editor',
      `<div id="wrap" style="position:absolute;left:50px;top:50px;width:400px;padding:40px;background:#eee">
         <div id="ed" contenteditable style="min-height:40px;background:#fff"></div></div>`,
      'data-keep-query="utm_source"',
    ),
  });
  spoor = await startSpoor({ dir, pageOrigin: pages.origin });
  ref.base = spoor.base;
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await stop(spoor);
  pages?.server.close();
});

async function sessionFor(url) {
  return waitFor(`a session for ${url}`, async () => {
    const list = await api(spoor.base, `/api/sessions?site=e2e&url=${encodeURIComponent(url)}`);
    return list.sessions[0];
  });
}

test('records a visit across two pages as one session, without typed values', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/a.html');
  const s = await sessionFor('/a.html');
  for (let i = 0; i < 8; i++) await p.mouse.move(300 + i * 20, 400 + i * 5, { steps: 3 });
  await p.click('#buy');
  await p.click('#acct');
  await p.click('#q');
  await p.keyboard.type(SECRET);
  await p.mouse.wheel(0, 600);
  await p.waitForTimeout(300);
  await p.click('#next');
  await p.waitForURL('**/b.html');
  await p.click('#other');
  const r = await waitFor('the click on page B', async () => {
    const r = await rows(spoor.base, 'e2e', s.sid);
    return r.rows.some((x) => x.kind === 2 && String(x.f[3]).includes('other')) && r;
  });
  const summary = await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`);
  const list = await api(spoor.base, '/api/sessions?site=e2e&url=.html');
  assert.equal(list.sessions.filter((x) => x.sid === s.sid).length, 1, 'one session');
  assert.deepEqual(r.chunks.map((c) => c.seq), r.chunks.map((_, i) => i), 'seq continues across the navigation');
  const pagesSeen = r.rows.filter((x) => x.kind === 0).map((x) => new URL(x.f[0]).pathname);
  assert.deepEqual(pagesSeen, ['/a.html', '/b.html']);
  const buy = r.rows.find((x) => x.kind === 2 && x.f[3] === '#buy');
  assert.ok(buy, 'click on #buy');
  assert.equal(buy.f[4], 'Buy now');
  assert.ok(Math.abs(buy.f[0] - 160) <= 2 && Math.abs(buy.f[1] - 120) <= 2, `click at ${buy.f[0]},${buy.f[1]}`);
  assert.ok(r.rows.filter((x) => x.kind === 1).length >= 5, 'mouse moves');
  assert.ok(r.rows.some((x) => x.kind === 3 && x.f[1] > 0), 'scroll');
  assert.ok(r.rows.some((x) => x.kind === 6 && x.f[0] === '#q'), 'input focus, by selector');
  assert.ok(!r.text.includes(SECRET), 'typed text is never sent');
  assert.ok(!JSON.stringify(summary).includes(SECRET));
  assert.equal(summary.clicks, 5, 'buy, acct, q, next, other');
  const blockedClick = r.rows.find((x) => x.kind === 2 && Math.abs(x.f[0] - 440) < 40 && Math.abs(x.f[1] - 110) < 15);
  assert.ok(blockedClick, 'the click in the blocked element is recorded');
  assert.deepEqual(blockedClick.f.slice(3), [null, null], 'but not described');
  assert.ok(!r.text.includes('Account 12345'));
  assert.equal(summary.acked, r.chunks.length - 1);
  await p.screenshot({ path: shotsDir() + 'page-a-b.png' });
  await ctx.close();
});

test('clicks made while the server is down arrive after it restarts', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/a.html#/restart');
  const s = await sessionFor('restart');
  await p.click('#buy');
  await waitFor('the first click stored', async () => (await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`)).clicks === 1);
  const port = spoor.port;
  await stop(spoor, 'SIGKILL');
  for (let i = 0; i < 3; i++) {
    await p.click('#buy', { position: { x: 10 + i * 30, y: 10 } });
    await p.waitForTimeout(150);
  }
  spoor = await startSpoor({ dir, port, pageOrigin: pages.origin });
  await waitFor(
    'all four clicks',
    async () => (await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`)).clicks === 4,
    45_000,
  );
  const r = await rows(spoor.base, 'e2e', s.sid);
  const xs = r.rows.filter((x) => x.kind === 2).map((x) => x.f[0]);
  // Offsets are from the button's border box; its 2 px border shifts them.
  const want = [110, 140, 170];
  assert.equal(xs.length, 4);
  xs.slice(1).forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 3, `click ${i} at ${x}, want ${want[i]}`));
  await ctx.close();
});

test('a page where WebSockets fail still delivers over HTTP', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/blocked.html');
  await p.click('#buy');
  await p.click('#buy');
  const s = await sessionFor('blocked');
  await waitFor('two clicks over HTTP', async () => (await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`)).clicks === 2);
  await ctx.close();
});

test('Global Privacy Control is honoured when the tag asks for it', async () => {
  const ctx = await chrome.newContext();
  await ctx.addInitScript(() => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }));
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/private.html');
  await p.click('#buy');
  // The same browser on a page that does not ask to respect privacy is recorded, which
  // shows the recorder was able to send.
  await p.goto(pages.origin + '/a.html#/control');
  await sessionFor('control');
  const list = await api(spoor.base, '/api/sessions?site=e2e&url=private');
  assert.equal(list.sessions.length, 0, 'nothing recorded for the private page');
  await ctx.close();
});

test('data-click-text="off" records what was clicked by selector only', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/notext.html');
  const s = await sessionFor('/notext.html');
  await p.click('#buy');
  const click = await waitFor('the click', async () => {
    const r = await rows(spoor.base, 'e2e', s.sid);
    return r.rows.find((x) => x.kind === 2);
  });
  assert.equal(click.f[3], '#buy');
  assert.equal(click.f[4] ?? null, null, 'no text');
  assert.ok(!(await rows(spoor.base, 'e2e', s.sid)).text.includes('Buy now'));
  await ctx.close();
});

test('no click text from editable content, and no query or fragment secrets in URLs', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  const typed = 'dear-diary-typed-7731';
  await p.goto(pages.origin + '/editor.html?q=private-search&utm_source=mail&reset=tok-991#access_token=frag-552', {
    referer: pages.origin + '/a.html?email=jane%40example.com#sig=ref-313',
  });
  const s = await sessionFor('/editor.html');
  await p.click('#ed');
  await p.keyboard.type(typed);
  // A click on the wrapper of what was typed: its text would be the typed words.
  await p.mouse.click(60, 60);
  const r = await waitFor('the click on the wrapper', async () => {
    const r = await rows(spoor.base, 'e2e', s.sid);
    return r.rows.some((x) => x.kind === 2 && String(x.f[3]).includes('wrap')) && r;
  });
  const wrapClick = r.rows.find((x) => x.kind === 2 && String(x.f[3]).includes('wrap'));
  assert.ok(!wrapClick.f[4], `no click text: ${JSON.stringify(wrapClick.f)}`);
  const summary = await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`);
  const all = r.text + JSON.stringify(summary);
  for (const secret of [typed, 'private-search', 'tok-991', 'frag-552', 'jane', 'ref-313']) {
    assert.ok(!all.includes(secret), `${secret} is not recorded`);
  }
  const page = r.rows.find((x) => x.kind === 0);
  assert.equal(page.f[0], pages.origin + '/editor.html?utm_source=mail', 'the kept parameter stays');
  assert.equal(summary.url, pages.origin + '/editor.html?utm_source=mail');
  assert.equal(summary.ref, pages.origin + '/a.html', 'the referrer without its query and fragment');
  await ctx.close();
});

test('a click right after a scroll lands where it was, on the heatmap', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/scrolly.html');
  await sessionFor('/scrolly.html');
  // Scroll far down and let that be recorded...
  await p.evaluate(() => scrollTo(0, 3000));
  await p.waitForTimeout(400);
  // ...then back to the top and click the link at once, before a throttled scroll goes out.
  await p.evaluate(() => scrollTo(0, 0));
  await p.mouse.click(160, 55);
  const url = pages.origin + '/scrolly.html';
  const point = await waitFor('the click on the heatmap', async () => {
    const h = await api(spoor.base, `/api/heatmap?site=e2e&url=${encodeURIComponent(url)}`);
    return h.points[0];
  });
  // The link's centre in document coordinates is (160, 55).
  assert.ok(Math.abs(point.x - 160) <= 5 && Math.abs(point.y - 55) <= 5, `click placed at ${point.x},${point.y}`);
  await ctx.close();
});

test('a session outside the sample records nothing', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/unsampled.html');
  await p.click('#buy');
  await p.goto(pages.origin + '/unsampled.html?again');
  await p.click('#buy');
  // The control: a page recording everyone, in the same tab, is recorded.
  await p.goto(pages.origin + '/a.html#/sample-control');
  await sessionFor('sample-control');
  const list = await api(spoor.base, '/api/sessions?site=e2e&url=unsampled');
  assert.equal(list.sessions.length, 0, 'nothing recorded for the page sampling nobody');
  await ctx.close();
});

test('the demo page records into the demo site', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1100, height: 700 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e));
  await p.goto(spoor.base + '/demo');
  await p.click('#buy-chair');
  await p.click('text=Cart');
  await p.fill('#search', 'should not be recorded');
  const s = await waitFor('a demo session', async () => (await api(spoor.base, '/api/sessions?site=demo')).sessions[0]);
  // The click's custom event and the route change may arrive in different batches.
  const r = await waitFor('the custom event and the SPA route change', async () => {
    const r = await rows(spoor.base, 'demo', s.sid);
    const custom = r.rows.some((x) => x.kind === 9 && x.f[0] === 'add_to_cart');
    const route = r.rows.some((x) => x.kind === 0 && x.f[0].endsWith('/demo#/cart'));
    return custom && route && r;
  });
  assert.ok(!r.text.includes('should not be recorded'));
  assert.deepEqual(errors, []);
  await p.screenshot({ path: shotsDir() + 'demo.png' });
  await ctx.close();
});

test('a visitor identified during the page is findable by that id, this session included', async () => {
  const ctx = await chrome.newContext();
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/app.html');
  const s = await sessionFor('/app.html');
  assert.equal(s.did ?? null, null, 'nobody yet');
  // The app learns who this is long after the hello: spoor('identify', …) then a click.
  await p.evaluate(() => window.spoor('identify', 'user-42'));
  await p.click('#login');
  const listed = await waitFor('the session under user-42', async () => {
    const list = await api(spoor.base, '/api/sessions?site=e2e&did=user-42');
    return list.sessions.length > 0 && list.sessions;
  });
  assert.deepEqual(listed.map((x) => x.sid), [s.sid]);
  assert.equal((await api(spoor.base, `/api/sessions/${s.sid}?site=e2e`)).did, 'user-42');
  await ctx.close();
});

test('a page that opts in streams GPS fixes: the device appears with its track', async () => {
  const ctx = await chrome.newContext({
    geolocation: { latitude: 48.137, longitude: 11.575, accuracy: 7 },
    permissions: ['geolocation'],
  });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/gps.html');
  const s = await sessionFor('gps.html');
  // No identify() call: the device is the session.
  const first = await waitFor('the first fix', async () =>
    (await api(spoor.base, '/api/devices?site=e2e')).devices.find((d) => d.did === s.sid));
  assert.equal(first.source, 'snippet');
  assert.equal(first.lat, 48.137);
  assert.equal(first.accuracy_m, 7);
  await p.waitForTimeout(50);
  await ctx.setGeolocation({ latitude: 48.14, longitude: 11.58, accuracy: 5 });
  const track = await waitFor('a second fix in the track', async () => {
    const t = await api(spoor.base, `/api/devices/${s.sid}/track?site=e2e`);
    return t.positions.length >= 2 && t;
  });
  assert.deepEqual(track.positions.map((x) => x.lat).slice(-2), [48.137, 48.14]);
  assert.ok(track.positions[0].ts < track.positions[1].ts);
  await ctx.close();
});
