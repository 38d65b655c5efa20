// The outbox: events become numbered batches, batches stay until the server acks them.
//
// Knows nothing of sockets. `add` stamps an event with its time, `cut` closes the current
// batch (seq, t0, DT per event), `ack` forgets what is durable. The buffer has a cap: past it
// mouse moves and scrolls are dropped first, then anything; the drops are reported in a
// custom event `spoor_dropped` in the next batch.

import { Kind } from './protocol';

export type Row = unknown[];
export interface Batch {
  seq: number;
  t0: number;
  ev: Row[];
}
export interface Saved {
  sid: string;
  seq: number;
  unacked: Batch[];
}

export class Outbox {
  cur: Row[] = [];
  t0 = 0;
  dropped = 0;
  unacked: Batch[] = [];
  seq: number;
  count = 0; // events in unacked

  constructor(
    public sid: string,
    seq = 0,
    unacked: Batch[] = [],
    /** Events held (unacked + current) before moves are dropped; twice that drops anything. */
    public cap = 5000,
  ) {
    this.seq = seq;
    for (const b of unacked) this.keep(b);
  }

  private keep(b: Batch): void {
    this.unacked.push(b);
    this.count += b.ev.length;
  }

  /** Queues one event `[kind, …fields]` happening at `now` (epoch ms). */
  add(kind: number, fields: unknown[], now: number): void {
    const held = this.count + this.cur.length;
    if (held >= 2 * this.cap || (held >= this.cap && (kind === Kind.Move || kind === Kind.Scroll || kind === Kind.Touch))) {
      this.dropped++;
      return;
    }
    if (!this.cur.length) this.t0 = now;
    this.cur.push([kind, Math.max(0, Math.round(now - this.t0)), ...fields]);
  }

  /** Events waiting for the next `cut`. */
  get pending(): number {
    return this.cur.length;
  }

  /** Closes the current batch; `null` when there is nothing to send. */
  cut(now: number): Batch | null {
    if (this.dropped) {
      const n = this.dropped;
      this.dropped = 0;
      this.add(Kind.Custom, ['spoor_dropped', { events: n }], now);
    }
    if (!this.cur.length) return null;
    const b: Batch = { seq: this.seq++, t0: this.t0, ev: this.cur };
    this.cur = [];
    this.keep(b);
    return b;
  }

  /** Removes every event of `kind`, sent or not (the server refused them). Emptied batches
   * stay, so the seqs the server sees remain contiguous. */
  strip(kind: number): void {
    const keep = (ev: Row[]) => ev.filter((r) => r[0] !== kind);
    this.cur = keep(this.cur);
    this.count = 0;
    for (const b of this.unacked) this.count += (b.ev = keep(b.ev)).length;
  }

  /** Forgets every batch `<= seq` (cumulative ack). */
  ack(seq: number): void {
    while (this.unacked.length && this.unacked[0].seq <= seq) {
      this.count -= this.unacked.shift()!.ev.length;
    }
  }

  save(): Saved {
    return { sid: this.sid, seq: this.seq, unacked: this.unacked };
  }
}
