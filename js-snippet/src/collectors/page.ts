// Page views, including single-page-app route changes (pushState, replaceState, popstate,
// hashchange). Emits `[0, url, title]` whenever the recorded URL (`url.ts`: no query or
// fragment but what the site keeps) changes.

import { on, safe, Teardown } from '../safe';
import { Emit } from './types';
import { Kind } from '../protocol';
import { cleanUrl } from '../url';

export function pages(emit: Emit, keep: string[]): Teardown {
  let last = '';
  const check = safe(() => {
    const u = cleanUrl(location.href, keep);
    if (u !== last) {
      last = u;
      emit(Kind.Page, u, document.title);
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
