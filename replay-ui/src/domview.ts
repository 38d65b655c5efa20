// The full-page view: a session's kind-11 rows (rrweb events, zlib + base64, large ones in
// parts) decoded and played by rrweb's Replayer, driven by the player's own clock (its
// timeline, speed, inactivity skipping and live follow), so both views show the same moment.
//
// The Replayer draws into an iframe sandboxed to `allow-same-origin` only: no recorded script
// runs. The viewer's Content-Security-Policy (inherited by that iframe) still allows no script
// but the viewer's own and no request to another origin, so replaying never contacts the
// recorded site: web fonts and images of that site do not load, and images were recorded as
// placeholders anyway.

import { Replayer } from '@rrweb/replay';
import { strFromU8, unzlibSync } from 'fflate';

interface RrwebEvent {
  type: number;
  timestamp: number;
  data: any;
}

/** How far (ms) rrweb's own clock may drift from the player's before it is moved. */
const MAX_DRIFT = 400;

/** One kind-11 payload back to its rrweb event; `null` for one that does not decode. */
export function decodeDom(data: string): RrwebEvent | null {
  try {
    const bin = atob(data);
    const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    const e = JSON.parse(strFromU8(unzlibSync(u8)));
    return e && typeof e.type === 'number' && typeof e.timestamp === 'number' ? e : null;
  } catch {
    return null;
  }
}

export class DomView {
  /** The decoded rrweb events, in time order (what "Download rrweb JSON" saves). */
  readonly events: RrwebEvent[] = [];
  readonly el: HTMLElement;
  private parts: string[] = [];
  private replayer: Replayer | null = null;
  private shown = -1;
  /** Events arrived since the paused page was last drawn. */
  private added = false;
  private drawnAt = 0;
  private speed = 1;
  private frame: HTMLElement;

  constructor() {
    this.frame = document.createElement('div');
    this.frame.className = 'dom-frame';
    this.el = document.createElement('div');
    this.el.className = 'dom-stage';
    this.el.append(this.frame);
  }

  /** Takes one kind-11 row's fields `[data, part?, parts?]`. */
  add(f: unknown[]): void {
    const [data, part, parts] = f as [string, number | undefined, number | undefined];
    if (typeof data !== 'string') return;
    if (typeof parts !== 'number') return this.push(decodeDom(data));
    if (part === 0) this.parts = [];
    this.parts.push(data);
    if (this.parts.length === parts) {
      this.push(decodeDom(this.parts.join('')));
      this.parts = [];
    }
  }

  private push(e: RrwebEvent | null): void {
    if (!e) return;
    // rrweb emits a few events late (their timestamps are when they happened): keep the
    // list in time order, as the Replayer does with what it is given.
    let i = this.events.length;
    while (i > 0 && this.events[i - 1].timestamp > e.timestamp) i--;
    this.events.splice(i, 0, e);
    if (this.replayer) {
      this.replayer.addEvent(e);
      this.added = true;
    }
  }

  /** Whether there is a page to show (a meta event and a full snapshot at least). */
  get ready(): boolean {
    return this.events.length >= 2;
  }

  private create(): Replayer {
    const r = new Replayer(this.events.slice(), {
      root: this.frame,
      mouseTail: false,
      showWarning: false,
      triggerFocus: false,
      skipInactive: false,
      speed: this.speed,
    });
    r.on('resize', (d: any) => this.fit(d.width, d.height));
    return r;
  }

  /** Scales the recorded viewport into the stage. */
  private fit(width: number, height: number): void {
    const box = this.el.getBoundingClientRect();
    const s = Math.min((box.width || 960) / width, (box.height || 560) / height, 1);
    const wrapper = this.frame.querySelector<HTMLElement>('.replayer-wrapper');
    if (wrapper) {
      wrapper.style.transform = `scale(${s})`;
      wrapper.style.transformOrigin = '0 0';
    }
    this.el.dataset.scale = s.toFixed(3);
  }

  /** Shows the page at `real` (epoch ms), playing on from there at `speed` if `playing`. */
  sync(real: number, playing: boolean, speed: number): void {
    if (!this.ready) return;
    this.replayer ??= this.create();
    const r = this.replayer;
    if (speed !== this.speed) {
      this.speed = speed;
      r.setConfig({ speed });
    }
    // rrweb draws the events strictly before the offset; the playhead shows those at it too.
    const offset = Math.max(0, real - this.events[0].timestamp + 1);
    // For whoever inspects the page (and the tests): what is shown, from how much.
    this.el.dataset.events = String(this.events.length);
    this.el.dataset.time = String(Math.round(real));
    if (!playing) {
      // A paused replayer does not draw events added behind it: draw again when some came
      // (at most four times a second while a session streams in).
      const now = performance.now();
      if (Math.abs(offset - this.shown) > 1 || (this.added && now - this.drawnAt > 250)) {
        r.pause(offset);
        this.added = false;
        this.drawnAt = now;
      }
      this.shown = offset;
      return;
    }
    this.added = false;
    this.shown = -1;
    const running = r.service.state.matches('playing');
    if (!running || Math.abs(r.getCurrentTime() - offset) > MAX_DRIFT) r.play(offset);
  }

  /** The document inside the replay iframe (tests read it). */
  get document(): Document | null {
    return this.replayer?.iframe.contentDocument ?? null;
  }

  destroy(): void {
    this.replayer?.destroy();
    this.replayer = null;
  }
}
