// Scroll (throttled), resize (throttled) and tab visibility. A click or touch first sends
// the scroll position of that moment if it moved since the last one sent (`syncScroll`), so
// a click right after a scroll is placed where it was, not where the last throttled scroll
// event left the page.

import { on, Teardown } from '../safe';
import { Emit } from './types';
import { Kind } from '../protocol';

/** Calls `f` at most once per `ms`, always with the latest state (trailing call). */
export function throttle(f: () => void, ms: number, set = setTimeout): () => void {
  let waiting = false;
  return () => {
    if (waiting) return;
    waiting = true;
    set(() => {
      waiting = false;
      f();
    }, ms);
  };
}

let sent = '0,0';
let out: Emit = () => {};

/** Sends the scroll position now, if it moved since the last one sent. */
export function syncScroll(): void {
  const x = Math.round(scrollX);
  const y = Math.round(scrollY);
  if (sent != (sent = x + ',' + y)) out(Kind.Scroll, x, y);
}

export function viewport(emit: Emit, scrollMs: number): Teardown {
  out = emit;
  const scroll = throttle(syncScroll, scrollMs);
  const resize = throttle(() => emit(Kind.Resize, innerWidth, innerHeight), 250);
  const offs = [
    on(window, 'scroll', scroll),
    on(window, 'resize', resize),
    on(document, 'visibilitychange', () => emit(Kind.Visibility, !document.hidden)),
  ];
  return () => offs.forEach((f) => f());
}
