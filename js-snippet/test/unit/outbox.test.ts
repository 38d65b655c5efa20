// Batching, cumulative acks, seq continuity, and the buffer cap (moves dropped first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Outbox } from '../../src/outbox';

test('events become numbered batches with DT after t0', () => {
  const o = new Outbox('sid12345');
  o.add(1, [10, 20], 1000);
  o.add(2, [11, 21, 0, '#b', 'Buy'], 1016);
  const b = o.cut(1100)!;
  assert.deepEqual(b, { seq: 0, t0: 1000, ev: [[1, 0, 10, 20], [2, 16, 11, 21, 0, '#b', 'Buy']] });
  assert.equal(o.cut(1200), null, 'nothing pending, no batch');
  o.add(5, [false], 2000);
  assert.equal(o.cut(2000)!.seq, 1);
  assert.equal(o.unacked.length, 2);
});

test('acks are cumulative and keep what is not acked yet', () => {
  const o = new Outbox('sid12345');
  for (let i = 0; i < 5; i++) {
    o.add(1, [i, i], i);
    o.cut(i);
  }
  o.ack(2);
  assert.deepEqual(o.unacked.map((b) => b.seq), [3, 4]);
  assert.equal(o.count, 2);
  o.ack(1); // a stale ack changes nothing
  assert.deepEqual(o.unacked.map((b) => b.seq), [3, 4]);
  o.ack(4);
  assert.equal(o.unacked.length, 0);
});

test('a restored outbox continues the session and resends its unacked batches', () => {
  const a = new Outbox('sid12345');
  a.add(1, [1, 1], 0);
  a.cut(0);
  a.add(1, [2, 2], 5);
  a.cut(5);
  a.ack(0);
  const saved = JSON.parse(JSON.stringify(a.save()));
  const b = new Outbox(saved.sid, saved.seq, saved.unacked);
  assert.equal(b.sid, 'sid12345');
  assert.deepEqual(b.unacked.map((x) => x.seq), [1]);
  b.add(1, [3, 3], 9);
  assert.equal(b.cut(9)!.seq, 2, 'seq continues');
});

test('past the cap, moves are dropped before clicks, and the drop is reported', () => {
  const o = new Outbox('sid12345', 0, [], 10);
  for (let i = 0; i < 10; i++) o.add(1, [i, i], i);
  o.add(1, [99, 99], 20); // dropped: a move at the cap
  o.add(3, [0, 500], 21); // dropped: a scroll at the cap
  o.add(2, [5, 5, 0, '#b', 'B'], 22); // kept: a click
  const b = o.cut(30)!;
  const kinds = b.ev.map((r) => r[0]);
  assert.equal(kinds.filter((k) => k === 1).length, 10);
  assert.ok(kinds.includes(2), 'the click is kept');
  const report = b.ev.find((r) => r[0] === 9)!;
  assert.deepEqual(report.slice(2), ['spoor_dropped', { events: 2 }]);
});

test('at twice the cap everything is dropped', () => {
  const o = new Outbox('sid12345', 0, [], 2);
  for (let i = 0; i < 10; i++) o.add(2, [i, i, 0, null, null], i);
  assert.equal(o.pending, 4);
  assert.equal(o.dropped, 6);
});
