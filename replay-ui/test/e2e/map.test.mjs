// The location dashboard in headless Chromium against the real server: devices seeded
// through the tracker endpoints appear, a track draws with its stop, replay moves the
// marker, and a new live position shows up without a reload; a day's timeline of trips and
// stays, a picked trip replayed with its speed chart. The machine has no internet, so this
// also shows the offline basemap (Natural Earth borders and coastlines) drawn when tiles
// cannot load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { KEY, TOKEN, browser, startSpoor, stop, tempDir, waitFor } from '../../../js-snippet/test/e2e/harness.mjs';

let spoor, chrome;
const shots = new URL('../../../docs/img/', import.meta.url).pathname;
const START = Date.now() - 40 * 60_000;

async function osmand(params) {
  const r = await fetch(`${spoor.base}/v1/osmand?key=${KEY}&${new URLSearchParams(params)}`);
  assert.equal(r.status, 200, await r.text());
}

before(async () => {
  spoor = await startSpoor({ dir: tempDir(), pageOrigin: 'http://localhost:1' });
  chrome = await browser();
  mkdirSync(shots, { recursive: true });
  // A courier: 10 minutes north-east, 8 minutes parked, 10 minutes east.
  let t = START;
  const fixes = [];
  for (let i = 0; i < 10; i++, t += 60_000) fixes.push([52.50 + i * 0.002, 13.38 + i * 0.002, t, 9]);
  for (let i = 0; i < 8; i++, t += 60_000) fixes.push([52.518 + (i % 2) * 0.00005, 13.398, t, 0]);
  for (let i = 0; i < 10; i++, t += 60_000) fixes.push([52.518, 13.40 + i * 0.003, t, 12]);
  for (const [lat, lon, ts, kn] of fixes) await osmand({ id: 'courier-7', lat, lon, timestamp: ts, speed: kn, batt: 64 });
  // A trailer that last reported three hours ago.
  await osmand({ id: 'trailer-2', lat: 52.47, lon: 13.33, timestamp: Date.now() - 3 * 3_600_000, speed: 0 });
  // A second device through OwnTracks, nearby.
  const r = await fetch(`${spoor.base}/v1/owntracks/${KEY}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-limit-u': 'jane', 'x-limit-d': 'phone' },
    body: JSON.stringify({ _type: 'location', lat: 52.51, lon: 13.42, tst: Math.floor(Date.now() / 1000) - 120, vel: 18, batt: 90 }),
  });
  assert.equal(r.status, 200);
});

after(async () => {
  await chrome?.close();
  await stop(spoor);
});

test('devices appear, a track draws, replay moves the marker, live positions arrive', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) errors.push(m.text());
  });
  await p.goto(`${spoor.base}/map?token=${TOKEN}`);
  await p.waitForSelector('ul.devices li[data-did="courier-7"]');
  const rows = await p.$$eval('ul.devices li', (ls) => ls.map((l) => l.dataset.did));
  assert.deepEqual(rows.sort(), ['courier-7', 'jane:phone', 'trailer-2']);
  const courier = await p.textContent('li[data-did="courier-7"]');
  assert.match(courier, /osmand/);
  assert.match(courier, /22\.2 km\/h/, 'the last speed, 12 kn, in km/h');
  assert.match(courier, /64 %/);
  // Markers are on the map (one each, or a cluster of both).
  await waitFor('markers', () => p.$$eval('.dev-marker, .marker-cluster', (m) => m.length >= 1));
  // No internet here: the grid shows and says so.
  await waitFor('the tile note', () => p.isVisible('.tile-note'), 30_000);
  // The offline basemap (borders and coastlines, served by spoor) is drawn beneath.
  await p.waitForSelector('.leaflet-basemap-pane canvas', { state: 'attached' });
  await p.waitForTimeout(800); // let the zoom and cluster animations settle for the picture
  await p.screenshot({ path: shots + 'map.png' });

  await p.click('li[data-did="courier-7"]');
  await p.waitForSelector('path.track-line');
  await waitFor('track info', async () => /28 positions, 1 stop/.test(await p.textContent('.track-info')));
  // The track shown can be downloaded as GPX.
  const [dl] = await Promise.all([p.waitForEvent('download'), p.click('button.gpx')]);
  assert.equal(dl.suggestedFilename(), 'courier-7.gpx');
  const gpx = readFileSync(await dl.path(), 'utf8');
  assert.equal((gpx.match(/<trkpt /g) || []).length, 28);
  assert.match(gpx, /<name>courier-7<\/name>/);
  assert.equal(await p.$$eval('path.stop-marker', (m) => m.length), 1);
  // Two straight legs with a corner: Leaflet draws them as (at least) two segments.
  await waitFor('the track shape', () => p.$eval('path.track-line', (el) => (el.getAttribute('d').match(/L/g) || []).length >= 2));
  const where = () => p.$eval('.dev-icon.replay', (el) => el.parentElement.style.transform);
  const before = await where();
  await p.selectOption('select[name=speed]', '60');
  await p.click('button.play');
  await waitFor('the replay marker to move', async () => (await where()) !== before, 10_000);
  await waitFor('the slider to advance', async () => Number(await p.inputValue('input[name=at]')) > 0);
  await p.waitForTimeout(1500);
  await p.screenshot({ path: shots + 'map-replay.png' });
  // The follow camera keeps the moving marker in the middle of the map.
  const [m, box] = await Promise.all([p.locator('.dev-icon.replay').boundingBox(), p.locator('#map').boundingBox()]);
  const dx = m.x + m.width / 2 - (box.x + box.width / 2);
  const dy = m.y + m.height / 2 - (box.y + box.height / 2);
  assert.ok(Math.hypot(dx, dy) < 40, `marker ${Math.round(dx)},${Math.round(dy)} px from the centre`);
  await p.click('button.play'); // pause
  const paused = Number(await p.inputValue('input[name=at]'));
  await p.waitForTimeout(500);
  assert.equal(Number(await p.inputValue('input[name=at]')), paused, 'pause stops the clock');

  // A custom range that ends before the courier's first fix shows no track.
  await p.selectOption('select[name=range]', 'custom');
  await p.fill('input[name=to]', await p.evaluate((ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
    return d.toISOString().slice(0, 16);
  }, START - 3_600_000));
  await p.dispatchEvent('input[name=to]', 'change');
  await waitFor('an empty range', async () => /no positions in this range/.test(await p.textContent('.track-info')));

  // A new device reports: it appears without a reload.
  await osmand({ id: 'bike-9', lat: 52.52, lon: 13.41, timestamp: Date.now(), speed: 5 });
  await p.waitForSelector('li[data-did="bike-9"]', { timeout: 10_000 });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("a day's timeline: stays and a trip; a picked trip is drawn, summed up, charted and replayed", async () => {
  // A commute: 10 minutes at home, 20 minutes north at about 12 m/s, 10 minutes at work.
  const t0 = Date.now() - 3 * 3_600_000;
  const fixes = [];
  for (let i = 0; i < 20; i++) fixes.push([52.4 + (i % 3) * 0.00005, 13.5, t0 + i * 30_000, 0]);
  for (let i = 0; i < 80; i++) fixes.push([52.4012 + i * 0.00162, 13.5, t0 + 600_000 + i * 15_000, 23.3]);
  for (let i = 0; i < 20; i++) fixes.push([52.531 + (i % 3) * 0.00005, 13.5, t0 + 1_800_000 + i * 30_000, 0]);
  for (const [lat, lon, ts, kn] of fixes) await osmand({ id: 'commuter-3', lat, lon, timestamp: ts, speed: kn });

  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  await p.goto(`${spoor.base}/map?token=${TOKEN}`);
  await p.waitForSelector('li[data-did="commuter-3"]');
  // That day, as the browser's calendar has it.
  await p.selectOption('select[name=range]', 'day');
  const day = await p.evaluate((ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
    return d.toISOString().slice(0, 10);
  }, t0);
  await p.fill('input[name=day]', day);
  await p.click('li[data-did="commuter-3"]');
  await waitFor('the timeline', async () => (await p.$$eval('.day-timeline li', (l) => l.length)) === 3);
  assert.deepEqual(await p.$$eval('.day-timeline li', (l) => l.map((x) => x.className)), ['tl-stay', 'tl-trip', 'tl-stay']);
  assert.ok(await p.$eval('.day-timeline', (l) => l.scrollHeight <= l.clientHeight + 1), 'every entry shows');
  const tripLine = await p.textContent('.day-timeline li.tl-trip');
  assert.match(tripLine, /Trip 14\.\d km/, tripLine);
  assert.match(await p.textContent('.track-info'), /120 positions, 2 stops, 1 trip/);
  assert.equal(await p.$$eval('path.stop-marker', (m) => m.length), 2);

  await p.click('.day-timeline li.tl-trip');
  await p.waitForSelector('path.trip-line', { state: 'attached' }); // a straight line: no width
  const summary = await p.textContent('.track-info');
  assert.match(summary, /^Trip .*: 14\.\d km in 2\dm .*average 4\d km\/h, top 43 km\/h/, summary);
  // The speed chart has drawn the trip's speeds.
  const drawn = await p.$eval('canvas.speed-chart', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let blue = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 120) blue++;
    return blue;
  });
  assert.ok(drawn > 200, `speed line pixels: ${drawn}`);
  // Replaying the trip moves the marker along it, from home towards work.
  const lat = () => p.$eval('.dev-icon.replay', (el) => el.getBoundingClientRect().top);
  const start = await lat();
  await p.selectOption('select[name=speed]', '60');
  await p.uncheck('input[name=follow]');
  await p.click('button.play');
  await waitFor('the replay marker to go north', async () => (await lat()) < start - 20, 15_000);
  await p.click('button.play');
  await p.screenshot({ path: shots + 'map-timeline.png' });

  // Offline: the basemap's borders and coastlines are drawn beneath (no tile server here).
  for (let i = 0; i < 7; i++) {
    await p.click('.leaflet-control-zoom-out');
    await p.waitForTimeout(300);
  }
  const inked = await p.$eval('.leaflet-basemap-pane canvas', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lines = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 200) lines++;
    return lines;
  });
  assert.ok(inked > 500, `border and coastline pixels: ${inked}`);
  await p.waitForTimeout(500);
  await p.screenshot({ path: shots + 'map-offline.png' });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('silent devices are greyed out, and the list can be searched', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  await p.goto(`${spoor.base}/map?token=${TOKEN}`);
  await p.waitForSelector('li[data-did="trailer-2"]');
  assert.ok(await p.$eval('li[data-did="trailer-2"]', (l) => l.classList.contains('stale')), 'three hours silent');
  assert.ok(!(await p.$eval('li[data-did="courier-7"]', (l) => l.classList.contains('stale'))), 'twelve minutes ago');
  await p.click('li[data-did="trailer-2"]');
  await waitFor('its grey marker', () => p.$$eval('.dev-icon.stale', (m) => m.some((x) => x.textContent === 'trailer-2')));
  const total = await p.$$eval('ul.devices li', (ls) => ls.length);
  assert.equal(await p.textContent('h2 .count'), `(${total})`);
  await p.fill('input[name=find]', 'COUR');
  const visible = () => p.$$eval('ul.devices li', (ls) => ls.filter((l) => !l.hidden).map((l) => l.dataset.did));
  assert.deepEqual(await visible(), ['courier-7']);
  assert.equal(await p.textContent('h2 .count'), `(1 of ${total})`);
  await p.fill('input[name=find]', '');
  assert.equal((await visible()).length, total);
  await ctx.close();
});

test('a device can be deleted from the dashboard, after a confirmation', async () => {
  await osmand({ id: 'old-van', lat: 52.49, lon: 13.37, timestamp: Date.now() - 5_000, speed: 0 });
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  await p.goto(`${spoor.base}/map?token=${TOKEN}`);
  await p.click('li[data-did="old-van"]');
  await waitFor('its track', async () => /old-van: 1 positions/.test(await p.textContent('.track-info')));
  const devices = async () => (await (await fetch(`${spoor.base}/api/devices`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()).devices.map((d) => d.did);
  // Saying no keeps it.
  p.once('dialog', (d) => d.dismiss());
  await p.click('button.danger');
  await p.waitForTimeout(300);
  assert.ok((await devices()).includes('old-van'));
  assert.equal(await p.$$eval('li[data-did="old-van"]', (l) => l.length), 1);
  // Saying yes removes it from the store, the list and the map.
  let question = '';
  p.once('dialog', (d) => {
    question = d.message();
    void d.accept();
  });
  await p.click('button.danger');
  await waitFor('the row to go', async () => (await p.$$eval('li[data-did="old-van"]', (l) => l.length)) === 0);
  assert.match(question, /Delete device old-van/);
  assert.ok(!(await devices()).includes('old-van'));
  assert.ok((await devices()).includes('courier-7'), 'only that device');
  assert.match(await p.textContent('.track-info'), /old-van deleted/);
  assert.equal(await p.$$eval('path.track-line', (l) => l.length), 0, 'its track is gone');
  assert.ok(await p.isHidden('button.danger'));
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("a page's device links to its recorded sessions", async () => {
  const r = await fetch(`${spoor.base}/v1/batch?key=${KEY}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      hello: { sid: 'map_sess_walk', did: 'walker-3', url: 'https://shop.example/store-finder', vw: 400, vh: 800 },
      batches: [{ seq: 0, t0: Date.now() - 2_000, ev: [[0, 0, 'https://shop.example/store-finder', 'Stores'], [8, 10, 52.515, 13.39, 12]] }],
    }),
  });
  assert.equal(r.status, 200, await r.text());
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  await p.goto(`${spoor.base}/map?token=${TOKEN}`);
  await p.waitForSelector('li[data-did="walker-3"] a.sessions-link');
  assert.match(await p.textContent('li[data-did="walker-3"]'), /snippet/);
  assert.equal(await p.$$eval('li[data-did="courier-7"] a.sessions-link', (a) => a.length), 0, 'trackers have no sessions');
  await p.click('li[data-did="walker-3"] a.sessions-link');
  await p.waitForSelector('tr[data-sid]');
  assert.deepEqual(await p.$$eval('tr[data-sid]', (rows) => rows.map((r) => r.dataset.sid)), ['map_sess_walk']);
  await ctx.close();
});

test('geofences are drawn on the map, named, renamed and deleted, and a crossing shows live', async () => {
  const api = async (path, init = {}) => {
    const r = await fetch(`${spoor.base}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...(init.headers || {}) } });
    return r.status === 204 ? null : r.json();
  };
  const fences = async () => (await api('/api/geofences?site=e2e')).geofences;
  const ctx = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  await p.goto(`${spoor.base}/map?site=e2e&token=${TOKEN}`);
  await p.waitForSelector('li[data-did="courier-7"]');
  await p.waitForSelector('.fences-box');
  await p.waitForTimeout(800);
  const box = await p.$eval('#map', (m) => { const r = m.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  const cx = box.x + box.w / 2, cy = box.y + box.h / 2;

  // A circle: its centre, then its edge, then its name.
  await p.click('button.draw-circle');
  assert.match(await p.textContent('.fence-hint'), /centre/);
  await p.mouse.click(cx, cy);
  await p.mouse.move(cx + 40, cy);
  await p.mouse.click(cx + 70, cy);
  await p.fill('input[name=fence-name]', 'Depot <b>north</b>');
  await p.click('.fence-form button[type=submit]');
  await p.waitForSelector('ul.fences li .fence-name');
  let all = await fences();
  assert.equal(all.length, 1);
  assert.ok(all[0].circle.radius_m > 0, JSON.stringify(all[0]));
  assert.equal(all[0].name, 'Depot <b>north</b>');
  assert.equal(await p.textContent('ul.fences li .fence-name'), 'Depot <b>north</b>', 'a name is text, never HTML');
  assert.equal(await p.$$eval('ul.fences b', (b) => b.length), 0);
  await waitFor('the circle on the map', () => p.$$eval('path.geofence', (l) => l.length === 1));

  // A polygon: three corners, then Finish.
  await p.click('button.draw-polygon');
  await p.mouse.click(cx - 200, cy - 150);
  await p.mouse.click(cx - 100, cy - 150);
  await p.mouse.click(cx - 150, cy - 80);
  await p.click('button.finish');
  await p.fill('input[name=fence-name]', 'Yard');
  await p.click('.fence-form button[type=submit]');
  await waitFor('two fences listed', () => p.$$eval('ul.fences li', (l) => l.length === 2));
  all = await fences();
  const yard = all.find((f) => f.name === 'Yard');
  assert.equal(yard.polygon.length, 3);
  await waitFor('both on the map', () => p.$$eval('path.geofence', (l) => l.length === 2));

  // Renamed in place.
  await p.click(`li[data-fence="${yard.id}"] button.rename`);
  await p.fill('input[name=rename]', 'Yard north');
  await p.click('.rename-form button[type=submit]');
  await waitFor('the new name', async () => (await fences()).some((f) => f.name === 'Yard north'));
  await waitFor('listed', async () => /Yard north/.test(await p.textContent('ul.fences')));

  // A van drives into the circle: its enter shows live, on the map and in the list.
  const depot = (await fences()).find((f) => f.circle);
  const { lat, lon, radius_m } = depot.circle;
  const away = lat + (radius_m * 3) / 111_195;
  const now = Date.now();
  await osmand({ id: 'van-fence', lat: away, lon, timestamp: now - 20_000 });
  await osmand({ id: 'van-fence', lat, lon, timestamp: now - 10_000 });
  await p.waitForSelector('.fence-events li.enter');
  assert.match(await p.textContent('.fence-events li.enter'), /van-fence entered Depot <b>north<\/b>/);
  await waitFor('its marker', () => p.$$eval('path.fence-event-marker.enter', (m) => m.length >= 1));
  const events = (await api('/api/geofences/events?site=e2e&did=van-fence')).events;
  assert.deepEqual(events.map((e) => [e.type, e.geofence]), [['enter', depot.id]]);
  // The device's own timeline lists it too.
  await p.click('li[data-did="van-fence"]');
  await waitFor('the device events', async () => /entered Depot/.test(await p.textContent('.device-fence-events')));
  await p.waitForTimeout(600);
  await p.screenshot({ path: shots + 'map-geofences.png' });

  // Deleted after a confirmation.
  p.once('dialog', (d) => void d.accept());
  await p.click(`li[data-fence="${yard.id}"] button.delete`);
  await waitFor('one fence left', async () => (await fences()).length === 1);
  await waitFor('one on the map', () => p.$$eval('path.geofence', (l) => l.length === 1));
  assert.deepEqual(errors, []);
  await ctx.close();
});
