// The transport against a fake WebSocket: hello first, resend from welcome.acked, acks free
// the buffer, reconnect after a drop, fatal errors stop, beacons stay under 64 KiB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode } from '../../src/msgpack';
import { Outbox } from '../../src/outbox';
import { Transport } from '../../src/transport';

class FakeWS {
  static all: FakeWS[] = [];
  readyState = 0;
  sent: any[] = [];
  binaryType = '';
  onopen?: () => void;
  onmessage?: (m: { data: ArrayBuffer }) => void;
  onclose?: (e: { code: number }) => void;
  constructor(public url: string) {
    FakeWS.all.push(this);
  }
  send(b: Uint8Array) {
    this.sent.push(decode(b));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen!();
  }
  server(frame: any) {
    const b = encode(frame);
    this.onmessage!({ data: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose!({ code });
  }
}
(globalThis as any).WebSocket = FakeWS;
const beacons: { url: string; size: number }[] = [];
Object.defineProperty(globalThis, 'navigator', {
  value: { sendBeacon: (url: string, blob: Blob) => (beacons.push({ url, size: blob.size }), true) },
  configurable: true,
});

function setup() {
  FakeWS.all = [];
  const box = new Outbox('sid12345');
  const t = new Transport('http://spoor.test:8080', 'wk_key', () => ({ sid: box.sid }), box, () => {});
  return { box, t };
}

test('hello first, then batches; resend from welcome.acked; acks free the buffer', async () => {
  const { box, t } = setup();
  box.add(1, [1, 1], 0);
  t.flush(10);
  const ws = FakeWS.all[0];
  assert.equal(ws.url, 'ws://spoor.test:8080/v1/ingest?key=wk_key');
  ws.open();
  assert.equal(ws.sent[0].t, 'hello');
  assert.equal(ws.sent[0].sid, 'sid12345');
  ws.server({ t: 'welcome', sid: 'sid12345', acked: -1 });
  assert.deepEqual(ws.sent.slice(1).map((f: any) => [f.t, f.seq]), [['batch', 0]]);
  box.add(1, [2, 2], 20);
  t.flush(30);
  assert.deepEqual(ws.sent.at(-1).seq, 1);
  ws.server({ t: 'ack', seq: 1 });
  assert.equal(box.unacked.length, 0);
  t.stop();
});

test('after a drop it reconnects and resends only what the server lacks', async () => {
  const { box, t } = setup();
  for (let i = 0; i < 3; i++) {
    box.add(1, [i, i], i);
    box.cut(i);
  }
  t.flush(5);
  const ws1 = FakeWS.all[0];
  ws1.open();
  ws1.server({ t: 'welcome', sid: 'sid12345', acked: -1 });
  ws1.drop();
  await new Promise((r) => setTimeout(r, 600)); // first backoff is at most 500 ms
  const ws2 = FakeWS.all[1];
  assert.ok(ws2, 'reconnected');
  ws2.open();
  ws2.server({ t: 'welcome', sid: 'sid12345', acked: 1 });
  const batches = ws2.sent.filter((f: any) => f.t === 'batch').map((f: any) => f.seq);
  assert.deepEqual(batches, [2], 'only the batch after welcome.acked is resent');
  t.stop();
});

test('a fatal error stops the transport for good', async () => {
  const { box, t } = setup();
  box.add(1, [1, 1], 0);
  t.flush(1);
  const ws = FakeWS.all[0];
  ws.open();
  ws.server({ t: 'error', code: 'bad_key', msg: 'unknown write key', fatal: true });
  ws.drop(1008);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(FakeWS.all.length, 1, 'no reconnect after bad_key');
});

test('a batch cut for a beacon also goes on the open socket', () => {
  const { box, t } = setup();
  box.add(1, [1, 1], 0);
  t.flush(1);
  const ws = FakeWS.all[0];
  ws.open();
  ws.server({ t: 'welcome', sid: 'sid12345', acked: -1 });
  box.add(2, [5, 5, 0, '#b', 'B'], 10);
  t.beacon(20);
  const seqs = ws.sent.filter((f: any) => f.t === 'batch').map((f: any) => f.seq);
  assert.deepEqual(seqs, [0, 1], 'seq 1 went by beacon and by socket');
  t.stop();
});

test('beacons split the unacked tail into bodies under 64 KiB', () => {
  const { box, t } = setup();
  beacons.length = 0;
  for (let i = 0; i < 40; i++) {
    for (let j = 0; j < 100; j++) box.add(2, [j, j, 0, 'main>div.card>button.buy', 'Add to cart'], i * 1000 + j);
    box.cut(i * 1000 + 500);
  }
  t.beacon(50_000);
  assert.ok(beacons.length > 1, `${beacons.length} beacons`);
  for (const b of beacons) {
    assert.ok(b.size < 64 * 1024, `beacon of ${b.size} bytes`);
    assert.equal(b.url, 'http://spoor.test:8080/v1/batch?key=wk_key');
  }
  t.stop();
});
