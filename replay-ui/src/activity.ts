// The player's activity log: what a visitor did besides moving the pointer (page views,
// clicks, input focus, tab switches, custom events), one line each, in time order, at its
// real offset into the session (the player's clock skips inactivity; the log does not). Clicking
// a line seeks the player there; the line at the playhead is highlighted. Every recorded
// string reaches the page as text (`h` sets textContent), never as HTML.

import { h } from './dom';
import { clock, upto } from './timeline';
import { Kind } from '../../js-snippet/src/protocol';

/** An event as the player keeps it: absolute time, kind, fields after DT. */
export interface LogEvent {
  t: number;
  k: number;
  f: unknown[];
  rage?: boolean;
}

/** The kinds the log shows: pointer moves, scrolls, touches, resizes, GPS and layouts are
 * drawn on the stage instead. */
export const LOGGED = new Set<number>([Kind.Page, Kind.Click, Kind.Visibility, Kind.Input, Kind.Custom]);

/** Lines shown at most: a pathological session cannot make the page unresponsive. */
export const MAX_LINES = 5000;

const MAX_TEXT = 160;

function clip(s: string): string {
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT - 1) + '…' : s;
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

/** A line's label and text for one event, or null for a kind the log leaves out. */
export function describe(e: LogEvent): { label: string; text: string; cls: string } | null {
  switch (e.k) {
    case Kind.Page:
      return { label: 'Page', text: clip(str(e.f[1]) ? `${str(e.f[1])} · ${str(e.f[0])}` : str(e.f[0])), cls: 'page' };
    case Kind.Click: {
      const text = str(e.f[4]).trim();
      const sel = str(e.f[3]);
      return {
        label: e.rage ? 'Rage click' : 'Click',
        text: clip([text && `“${text}”`, sel].filter(Boolean).join(' ') || `at ${str(e.f[0])}, ${str(e.f[1])}`),
        cls: e.rage ? 'rage' : 'click',
      };
    }
    case Kind.Visibility:
      return { label: e.f[0] === false ? 'Tab hidden' : 'Tab visible', text: '', cls: 'vis' };
    case Kind.Input:
      return { label: 'Input', text: clip(str(e.f[0])), cls: 'input' };
    case Kind.Custom: {
      let props = '';
      if (e.f[1] !== null && e.f[1] !== undefined) {
        try {
          props = JSON.stringify(e.f[1]);
        } catch {
          props = '';
        }
      }
      return { label: 'Event', text: clip([str(e.f[0]), props].filter(Boolean).join(' ')), cls: 'custom' };
    }
    default:
      return null;
  }
}

/** Index of the last event at or before `t` in time-ordered `events`, or -1. */
export function lastAt(events: LogEvent[], t: number): number {
  return upto(events, t) - 1;
}

export class ActivityLog {
  readonly el = h('ol', { class: 'log' });
  private shown: LogEvent[] = [];
  private current = -1;

  constructor(private seek: (t: number) => void) {}

  private start = 0;

  private line(e: LogEvent): HTMLElement {
    const d = describe(e)!;
    return h(
      'li',
      { class: d.cls, title: d.text, onclick: () => this.seek(e.t) },
      h('span', { class: 'at', title: new Date(e.t).toLocaleString() }, clock(e.t - this.start)),
      h('span', { class: 'what' }, d.label),
      h('span', { class: 'text' }, d.text),
    );
  }

  /** Draws `events` (time-ordered, already filtered to `LOGGED`). While a session streams
   * in or is followed live, new events come after the ones shown: only those are added. */
  render(events: LogEvent[], start: number): void {
    const n = this.shown.length;
    const grown = n > 0 && start === this.start && events.length >= n && events[0] === this.shown[0] && events[n - 1] === this.shown[n - 1];
    if (grown) {
      const tail = this.el.lastElementChild;
      if (tail?.classList.contains('more')) tail.remove();
      const more = events.slice(n, MAX_LINES);
      this.shown.push(...more);
      this.el.append(...more.map((e) => this.line(e)));
    } else {
      this.start = start;
      this.shown = events.slice(0, MAX_LINES);
      this.current = -1;
      this.el.replaceChildren(...this.shown.map((e) => this.line(e)));
    }
    if (events.length > MAX_LINES) this.el.append(h('li', { class: 'more' }, `… ${events.length - MAX_LINES} more`));
    if (!this.shown.length) this.el.replaceChildren(h('li', { class: 'more' }, 'No page views, clicks or events yet.'));
  }

  /** Highlights the line at the playhead, keeping it in view. */
  at(t: number): void {
    const i = lastAt(this.shown, t);
    if (i === this.current) return;
    this.el.children[this.current]?.classList.remove('now');
    this.current = i;
    const li = this.el.children[i] as HTMLElement | undefined;
    if (!li) return;
    li.classList.add('now');
    const top = li.offsetTop - this.el.offsetTop;
    if (top < this.el.scrollTop || top > this.el.scrollTop + this.el.clientHeight - li.offsetHeight) {
      this.el.scrollTop = top - this.el.clientHeight / 2;
    }
  }
}
