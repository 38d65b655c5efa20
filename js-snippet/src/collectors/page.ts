// Page views, including single-page-app route changes (pushState, replaceState, popstate,
// hashchange). Emits `[0, url, title]` whenever the URL changes.

import { on, safe, Teardown } from '../safe';
import { Emit } from './types';
import { Kind } from '../protocol';

export function pages(emit: Emit): Teardown {
  let last = '';
  const check = safe(() => {
    if (location.href !== last) {
      last = location.href;
      emit(Kind.Page, location.href, document.title);
    }
  });
  check();
  const h = history;
  const orig = { push: h.pushState, replace: h.replaceState };
  h.pushState = function (...a: Parameters<History['pushState']>) {
    orig.push.apply(this, a);
    check();
  };
  h.replaceState = function (...a: Parameters<History['replaceState']>) {
    orig.replace.apply(this, a);
    check();
  };
  const offs = [on(window, 'popstate', check), on(window, 'hashchange', check)];
  return () => {
    h.pushState = orig.push;
    h.replaceState = orig.replace;
    offs.forEach((f) => f());
  };
}
