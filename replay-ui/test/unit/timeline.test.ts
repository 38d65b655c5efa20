// Timeline math: skip-inactivity mapping, seeking both ways, speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advance, clock, Timeline } from '../../src/timeline';

const T = 1_000_000;

test('without skipping, playback time is real time from the start', () => {
  const t = new Timeline([T, T + 1000, T + 60_000], false);
  assert.equal(t.duration, 60_000);
  assert.equal(t.toPlay(T + 30_000), 30_000);
  assert.equal(t.toReal(30_000), T + 30_000);
});

test('gaps over the threshold are compressed and shown as skipped segments', () => {
  const t = new Timeline([T, T + 1000, T + 2000, T + 62_000, T + 63_000], true, 3000, 500);
  assert.deepEqual(
    t.segments.map((s) => [s.start - T, s.end - T, s.at, s.length, s.skipped]),
    [
      [0, 2000, 0, 2000, false],
      [2000, 62_000, 2000, 500, true],
      [62_000, 63_000, 2500, 1000, false],
    ],
  );
  assert.equal(t.duration, 3500);
  assert.equal(t.toPlay(T + 62_500), 3000);
  assert.equal(t.toReal(3000), T + 62_500);
  // Inside the skipped gap, time runs proportionally.
  assert.equal(t.toReal(2250), T + 32_000);
  assert.equal(t.toPlay(T + 32_000), 2250);
});

test('seeking round-trips and clamps to the session', () => {
  const t = new Timeline([T, T + 5000, T + 100_000, T + 100_500], true);
  assert.equal(t.duration, 1500);
  for (const p of [0, 250, 499, 500, 777, 1000, 1250, t.duration]) assert.ok(Math.abs(t.toPlay(t.toReal(p)) - p) < 1e-6, `at ${p}`);
  assert.equal(t.toReal(-50), T);
  assert.equal(t.toReal(1e12), T + 100_500);
  assert.equal(t.toPlay(0), 0);
});

test('speed multiplies the frame time and stops at the end', () => {
  assert.equal(advance(1000, 16, 1, 10_000), 1016);
  assert.equal(advance(1000, 16, 8, 10_000), 1128);
  assert.equal(advance(9990, 16, 4, 10_000), 10_000);
});

test('an empty or single-event session has a zero-length timeline', () => {
  assert.equal(new Timeline([], true).duration, 0);
  assert.equal(new Timeline([T], true).duration, 0);
  assert.equal(clock(61_500), '1:01');
  assert.equal(clock(3_723_000), '1:02:03');
  assert.equal(clock(-5), '0:00');
});
