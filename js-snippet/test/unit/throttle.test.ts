// Throttling: at most one call per interval, with the latest state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { throttle } from '../../src/collectors/viewport';

test('calls once per interval however often it is triggered', () => {
  const timers: (() => void)[] = [];
  let calls = 0;
  const t = throttle(() => calls++, 100, ((f: () => void) => timers.push(f)) as any);
  for (let i = 0; i < 50; i++) t();
  assert.equal(timers.length, 1);
  timers.shift()!();
  assert.equal(calls, 1);
  t();
  t();
  assert.equal(timers.length, 1, 'a new window starts after the call');
});
