// Mouse moves (sampled by time and distance), clicks (with selector and text), touches.

import { on, Teardown } from '../safe';
import { blocked, selector, text } from '../selector';
import { Emit } from './types';
import { Kind } from '../protocol';
import { syncScroll } from './viewport';

export interface PointerOptions {
  /** Least ms between two recorded moves. */
  moveMs: number;
  /** Least px a move must cover to be recorded. */
  movePx: number;
  /** Record a clicked element's visible text, or only its selector. */
  clickText: boolean;
}

export function pointer(emit: Emit, o: PointerOptions): Teardown {
  let lx = -1e9;
  let ly = -1e9;
  let lt = 0;
  const sample = (kind: number, x: number, y: number, t: number): void => {
    if (t - lt >= o.moveMs && Math.abs(x - lx) + Math.abs(y - ly) >= o.movePx) {
      lt = t;
      lx = x;
      ly = y;
      emit(kind, Math.round(x), Math.round(y));
    }
  };
  const offs = [
    on(document, 'mousemove', (e: MouseEvent) => sample(Kind.Move, e.clientX, e.clientY, e.timeStamp)),
    on(document, 'touchmove', (e: TouchEvent) => {
      const t = e.touches[0];
      if (t) sample(Kind.Touch, t.clientX, t.clientY, e.timeStamp);
    }),
    on(document, 'touchstart', (e: TouchEvent) => {
      const t = e.touches[0];
      syncScroll();
      if (t) emit(Kind.Touch, Math.round(t.clientX), Math.round(t.clientY));
    }),
    on(document, 'click', (e: MouseEvent) => {
      const el = e.target instanceof Element ? e.target : null;
      syncScroll();
      const hidden = blocked(el);
      emit(Kind.Click, Math.round(e.clientX), Math.round(e.clientY), e.button, hidden ? null : selector(el), hidden || !o.clickText ? null : text(el));
    }),
  ];
  return () => offs.forEach((f) => f());
}
