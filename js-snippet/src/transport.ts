// The transport: one WebSocket to the server, batches sent as they are cut, resent after
// every reconnect from `welcome.acked`, reconnects with exponential backoff and full
// jitter. At page hide the unacked tail goes out by `navigator.sendBeacon` (each beacon
// under 64 KiB); where WebSockets never open, batches go by HTTP POST instead.

import { decode, encode, Value } from './msgpack';
import { Batch, Outbox } from './outbox';
import { safe } from './safe';

const BACKOFF_BASE = 500;
const BACKOFF_CAP = 30_000;
const BEACON_MAX = 56_000; // JSON per beacon: with the hello, under the browsers' 64 KiB
/** Sockets that never opened before falling back to HTTP. */
const WS_FAILURES_BEFORE_HTTP = 3;

export class Transport {
  ws: WebSocket | null = null;
  welcomed = false;
  attempt = 0;
  neverOpened = 0;
  http = false;
  posting = false;
  stopped = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Called when the server refuses full-page replay (`dom_disabled`, `dom_limit`). */
  domRefused = () => {};

  constructor(
    private base: string,
    private key: string,
    private hello: () => { [k: string]: Value },
    private box: Outbox,
    private changed: () => void,
  ) {}

  private url(path: string, ws: boolean): string {
    const u = new URL(path, this.base);
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('key', this.key);
    return u.href;
  }

  /** Opens the socket if there is something to send and none is open or pending. */
  connect(): void {
    if (this.stopped || this.http || this.ws || this.timer) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url('/v1/ingest', true));
    } catch {
      this.http = true;
      return;
    }
    ws.binaryType = 'arraybuffer';
    let opened = false;
    ws.onopen = safe(() => {
      opened = true;
      this.neverOpened = 0;
      ws.send(encode({ t: 'hello', v: 1, ...this.hello() }));
    });
    ws.onmessage = safe((m: MessageEvent) => {
      // Always binary: the server answers in the encoding the client sends, and this one
      // sends MessagePack only.
      const f = decode(new Uint8Array(m.data)) as any;
      if (f.t === 'welcome') {
        this.welcomed = true;
        this.attempt = 0;
        this.box.ack(f.acked);
        for (const b of this.box.unacked) this.send(b);
        this.changed();
      } else if (f.t === 'ack') {
        this.box.ack(f.seq);
        this.changed();
      } else if (f.t === 'error') this.refused(f);
    });
    ws.onclose = safe((e: CloseEvent) => {
      this.ws = null;
      this.welcomed = false;
      if (!opened && ++this.neverOpened >= WS_FAILURES_BEFORE_HTTP) this.http = true;
      if (this.stopped) return;
      // An idle close (1000) with nothing to send waits for the next batch.
      if (e.code === 1000 && !this.box.unacked.length) return;
      this.retry();
    });
    this.ws = ws;
  }

  private retry(): void {
    const delay = Math.random() * Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.attempt++);
    this.timer = setTimeout(
      safe(() => {
        this.timer = undefined;
        this.http ? this.post() : this.connect();
      }),
      delay,
    );
  }

  private send(b: Batch): void {
    if (this.ws && this.welcomed && this.ws.readyState === 1) {
      this.ws.send(encode({ t: 'batch', seq: b.seq, t0: b.t0, ev: b.ev as Value }));
    }
  }

  /** Cuts the current batch and sends it (or opens the socket that will). */
  flush(now: number): void {
    if (this.stopped) return;
    const b = this.box.cut(now);
    if (b) this.changed();
    if (this.http) return this.post();
    if (b) this.send(b);
    if (this.box.unacked.length) this.connect();
  }

  private body(batches: Batch[]): string {
    return JSON.stringify({ hello: this.hello(), batches });
  }

  /** HTTP mode: POSTs everything unacked, one request at a time. */
  private post(): void {
    if (this.posting || this.stopped || !this.box.unacked.length) return;
    this.posting = true;
    fetch(this.url('/v1/batch', false), {
      method: 'POST',
      body: this.body(this.box.unacked.slice(0, 50)),
      headers: { 'content-type': 'text/plain' },
      keepalive: true,
    })
      .then((r) => (r.ok ? r.json() : r.json().then((e) => Promise.reject(e))))
      .then(
        safe((r: any) => {
          this.posting = false;
          this.attempt = 0;
          this.box.ack(r.acked);
          this.changed();
          this.post();
        }),
        safe((e: any) => {
          this.posting = false;
          this.refused(e);
          if (!this.timer && !this.stopped) this.retry();
        }),
      );
  }

  /** Page hide: the unacked tail by sendBeacon, in bodies under 64 KiB. */
  beacon(now: number): void {
    if (this.stopped) return;
    // The batch cut here also goes on the socket: if the page stays (a tab switch) and the
    // beacon was refused, a batch sent only by beacon would leave a gap that stalls the
    // cumulative ack until the next reconnect. The server stores whichever copy comes first.
    const cut = this.box.cut(now);
    if (cut) this.send(cut);
    if (!navigator.sendBeacon) return;
    let group: Batch[] = [];
    let size = 0;
    const go = (): void => {
      if (group.length) navigator.sendBeacon(this.url('/v1/batch', false), new Blob([this.body(group)], { type: 'text/plain' }));
      group = [];
      size = 0;
    };
    for (const b of this.box.unacked) {
      const s = JSON.stringify(b).length + 1;
      if (size + s > BEACON_MAX) go();
      // A single batch over the limit is left to the socket, should the page come back.
      if (s <= BEACON_MAX) {
        group.push(b);
        size += s;
      }
    }
    go();
  }

  /** An error from the server (a frame, or an HTTP answer's body): stop for good when it says
   * resending cannot help (`fatal`), drop what full-page replay sent (`dom_*`), or reconnect
   * and resend. */
  private refused(e: any): void {
    if (e?.fatal) this.stop();
    else if (/^dom_/.test(e?.code ?? e?.error)) this.domRefused();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}
