import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Clock, distance, findStops, Fix, indexAt, positionAt, ago, isStale, matchesSearch, STALE_MS } from '../../src/map/route';

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

test('stops are long stays within a radius', () => {
  const track: Fix[] = [];
  // Moving 100 m per minute for 5 minutes, then 10 minutes within 20 m, then moving again.
  for (let i = 0; i < 5; i++) track.push(fix(52 + i * 0.0009, 13, i * 60_000));
  for (let i = 0; i < 10; i++) track.push(fix(52.0045 + (i % 2) * 0.0001, 13, (5 + i) * 60_000));
  for (let i = 0; i < 5; i++) track.push(fix(52.006 + i * 0.0009, 13, (15 + i) * 60_000));
  const stops = findStops(track, 50, 120_000);
  assert.equal(stops.length, 1);
  assert.equal(stops[0].from, 5 * 60_000);
  assert.equal(stops[0].until, 14 * 60_000);
  assert.deepEqual(findStops(track.slice(0, 5)), []);
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
