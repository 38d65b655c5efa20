// Scroll (throttled), resize (throttled) and tab visibility.

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

export function viewport(emit: Emit, scrollMs: number): Teardown {
  const scroll = throttle(() => emit(Kind.Scroll, Math.round(scrollX), Math.round(scrollY)), scrollMs);
  const resize = throttle(() => emit(Kind.Resize, innerWidth, innerHeight), 250);
  const offs = [
    on(window, 'scroll', scroll),
    on(window, 'resize', resize),
    on(document, 'visibilitychange', () => emit(Kind.Visibility, !document.hidden)),
  ];
  return () => offs.forEach((f) => f());
}
