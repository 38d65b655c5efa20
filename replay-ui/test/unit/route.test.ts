import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Clock, distance, downsample, Fix, indexAt, positionAt, ago, isStale, matchesSearch, speedSeries, STALE_MS } from '../../src/map/route';
import { entries, tripLine, tripSummary, Trip, Stay } from '../../src/map/timeline';

const fix = (lat: number, lon: number, ts: number): Fix => ({ did: 'd', lat, lon, ts });

test('distance is haversine metres', () => {
  const d = distance({ lat: 0, lon: 0 }, { lat: 1, lon: 0 });
  assert.ok(Math.abs(d - 111195) < 10, String(d));
});

test('positions interpolate between fixes and clamp at the ends', () => {
  const t = [fix(0, 0, 1000), fix(0, 10, 2000), fix(10, 10, 4000)];
  assert.equal(indexAt(t, 999), -1);
  assert.equal(indexAt(t, 2000), 1);
  assert.equal(indexAt(t, 3999), 1);
  assert.deepEqual(positionAt(t, 500), { lat: 0, lon: 0 });
  assert.deepEqual(positionAt(t, 1500), { lat: 0, lon: 5 });
  assert.deepEqual(positionAt(t, 3000), { lat: 5, lon: 10 });
  assert.deepEqual(positionAt(t, 9999), { lat: 10, lon: 10 });
  assert.equal(positionAt([], 1), null);
});

test('a long track is thinned for drawing, keeping both ends', () => {
  const track: Fix[] = Array.from({ length: 100_001 }, (_, i) => fix(52 + i * 1e-6, 13, i * 1000));
  const d = downsample(track, 5000);
  assert.ok(d.length <= 5000 && d.length > 4000, String(d.length));
  assert.equal(d[0], track[0]);
  assert.equal(d[d.length - 1], track[track.length - 1]);
  for (let i = 1; i < d.length; i++) assert.ok(d[i].ts > d[i - 1].ts);
  assert.equal(downsample(track.slice(0, 10), 5000).length, 10);
});

test('speeds come from the app, or from the step, one point per column', () => {
  // 100 m a minute (1.67 m/s) without speeds, then the app says 20 m/s.
  const track: Fix[] = [];
  for (let i = 0; i < 10; i++) track.push(fix(52 + i * 0.0009, 13, i * 60_000));
  track.push({ ...fix(52.01, 13, 10 * 60_000), speed_mps: 20 });
  const s = speedSeries(track, 1000);
  assert.equal(s.length, 11);
  assert.equal(s[0].v, 0);
  assert.ok(Math.abs(s[5].v - 100 / 60) < 0.05, String(s[5].v));
  assert.equal(s[10].v, 20);
  // Two columns: the fastest fix of each.
  assert.deepEqual(speedSeries(track, 2).map((p) => p.v > 19), [false, true]);
  assert.deepEqual(speedSeries([], 10), []);
});

test('the timeline lists stays and trips in time order', () => {
  const trip: Trip = { start: 1_800_000, end: 4_200_000, distance_m: 24_130, moving_s: 2_300, max_speed_mps: 13.9, avg_speed_mps: 10.05, from: { lat: 1, lon: 2 }, to: { lat: 3, lon: 4 } };
  const home: Stay = { lat: 1, lon: 2, arrival: 0, departure: 1_790_000 };
  const work: Stay = { lat: 3, lon: 4, arrival: 4_210_000, departure: 9_000_000 };
  const e = entries({ trips: [trip], stays: [work, home] });
  assert.deepEqual(e.map((x) => x.kind), ['stay', 'trip', 'stay']);
  assert.match(tripLine(trip), /Trip 24\.1 km, 40m 0s/);
  assert.match(tripSummary(trip), /24\.1 km .*moving 38m 20s.*average 36 km\/h, top 50 km\/h/);
});

test('the replay clock runs at its speed over real gaps', () => {
  let now = 0;
  const c = new Clock(1000, 61_000, () => now);
  assert.equal(c.time(), 1000);
  c.setSpeed(10);
  c.play();
  now = 1000; // one real second at 10×
  assert.equal(c.time(), 11_000);
  c.setSpeed(60);
  now = 1500;
  assert.equal(c.time(), 41_000);
  c.pause();
  now = 99_999;
  assert.equal(c.time(), 41_000);
  c.seek(0);
  assert.equal(c.time(), 1000);
  c.play();
  now += 10_000;
  assert.ok(c.done());
  c.setSpeed(500);
  assert.equal(c.speed, 60);
});

test('ago reads naturally', () => {
  assert.equal(ago(0, 30_000), '30 s ago');
  assert.equal(ago(0, 5 * 60_000), '5 min ago');
  assert.equal(ago(0, 3 * 3600_000), '3 h ago');
  assert.equal(ago(0, 49 * 3600_000), '2 d ago');
});

test('stale devices and the device search', () => {
  const now = 10_000_000;
  assert.equal(isStale(now - STALE_MS, now), false);
  assert.equal(isStale(now - STALE_MS - 1, now), true);
  assert.ok(matchesSearch('Courier-7', 'cour'));
  assert.ok(matchesSearch('courier-7', ' R-7 '));
  assert.ok(matchesSearch('jane:phone', ''));
  assert.ok(!matchesSearch('jane:phone', 'courier'));
});
