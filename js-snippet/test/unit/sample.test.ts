import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampledIn } from '../../src/config';

// A sessionStorage for Node: a Map behind the same methods.
const data = new Map<string, string>();
(globalThis as any).sessionStorage = {
  getItem: (k: string) => data.get(k) ?? null,
  setItem: (k: string, v: string) => void data.set(k, v),
};

test('everyone is recorded at rate 1, nobody at rate 0', () => {
  assert.equal(sampledIn('spoor:a', 1, () => 0.999), true);
  assert.equal(data.size, 0, 'nothing stored when there is no choice to remember');
  assert.equal(sampledIn('spoor:b', 0, () => 0), false);
});

test('the decision is made once per session and kept', () => {
  assert.equal(sampledIn('spoor:c', 0.25, () => 0.2), true);
  assert.equal(sampledIn('spoor:c', 0.25, () => 0.9), true, 'the next page keeps recording');
  assert.equal(sampledIn('spoor:d', 0.25, () => 0.3), false);
  assert.equal(sampledIn('spoor:d', 0.25, () => 0.0), false, 'and the next page keeps not');
});

test('about the given share of sessions is recorded', () => {
  let n = 0;
  for (let i = 0; i < 4000; i++) if (sampledIn(`spoor:s${i}`, 0.25)) n++;
  assert.ok(n > 850 && n < 1150, String(n));
});
