// Input focus and change: which field, never what is in it. No key or input events are
// listened to at all.

import { on, Teardown } from '../safe';
import { blocked, FIELD, selector } from '../selector';
import { Emit } from './types';
import { Kind } from '../protocol';

export function inputs(emit: Emit): Teardown {
  const h = (e: Event): void => {
    const el = e.target instanceof Element ? e.target : null;
    if (el && (FIELD.test(el.tagName) || (el as HTMLElement).isContentEditable)) {
      emit(Kind.Input, blocked(el) ? null : selector(el));
    }
  };
  const offs = [on(document, 'focusin', h), on(document, 'change', h)];
  return () => offs.forEach((f) => f());
}
