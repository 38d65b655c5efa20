// Layout snapshots (kind 10): where the page's blocks, headings, text, images, buttons, links
// and inputs are, in document CSS pixels, and nothing they say. Taken at each page view and
// route change, and again (at most every few seconds) after a resize or a large DOM change.
// A `data-spoor-block` subtree is one box. Visible elements only, at most MAX_BOXES.

import { safe, Teardown } from '../safe';
import { FIELD } from '../selector';
import { Emit } from './types';
import { Kind } from '../protocol';

export const MAX_BOXES = 500;
/** Role codes, in the order of docs/protocol.md. */
export const ROLE = { block: 0, heading: 1, text: 2, image: 3, button: 4, link: 5, input: 6, nav: 7, media: 8 } as const;

const HEADING = /^H[1-6]$/;
const IMAGE = /^(IMG|SVG|PICTURE|CANVAS)$/;
const MEDIA = /^(VIDEO|AUDIO|IFRAME|OBJECT|EMBED)$/;
const SKIP = /^(SCRIPT|STYLE|NOSCRIPT|TEMPLATE|HEAD|META|LINK|BR|OPTION)$/;
const CONTAINER = /^(DIV|SECTION|MAIN|ARTICLE|ASIDE|HEADER|FOOTER|FORM|UL|OL|TABLE)$/;

function hasOwnText(el: Element): boolean {
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 3 && /\S/.test(n.nodeValue || '')) return true;
  }
  return false;
}

/** A coarse background colour (#rgb) of a large block, when it has one. */
function colour(style: CSSStyleDeclaration): string | undefined {
  const m = style.backgroundColor.match(/rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)/);
  if (!m || (m[4] !== undefined && +m[4] < 0.5)) return undefined;
  return '#' + [m[1], m[2], m[3]].map((v) => Math.round(+v / 17).toString(16)).join('');
}

function role(el: Element, style: CSSStyleDeclaration): number | undefined {
  const t = el.tagName;
  if (HEADING.test(t)) return ROLE.heading;
  if (IMAGE.test(t)) return ROLE.image;
  if (MEDIA.test(t)) return ROLE.media;
  if (FIELD.test(t)) return (el as HTMLInputElement).type === 'submit' || (el as HTMLInputElement).type === 'button' ? ROLE.button : ROLE.input;
  if (t === 'BUTTON' || el.getAttribute('role') === 'button') return ROLE.button;
  if (t === 'A') return ROLE.link;
  if (t === 'NAV') return ROLE.nav;
  if (hasOwnText(el)) return ROLE.text;
  if (CONTAINER.test(t) && (style.backgroundColor !== 'rgba(0, 0, 0, 0)' || style.borderTopWidth !== '0px' || style.backgroundImage !== 'none')) {
    return ROLE.block;
  }
  return undefined;
}

export type Box = [number, number, number, number, number, string?];

/** The page's layout now: [docWidth, docHeight, boxes]. Reads layout once, writes nothing. */
export function snapshot(max = MAX_BOXES): [number, number, Box[]] {
  const doc = document.documentElement;
  const sx = scrollX;
  const sy = scrollY;
  const boxes: Box[] = [];
  const walk = (el: Element): void => {
    for (let c = el.firstElementChild; c && boxes.length < max; c = c.nextElementSibling) {
      if (SKIP.test(c.tagName)) continue;
      const r = c.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) {
        // Zero-size parents (display: contents, wrappers of positioned children) can still
        // hold visible boxes.
        if (c.firstElementChild) walk(c);
        continue;
      }
      const style = getComputedStyle(c);
      if (style.display === 'none') continue;
      const visible = style.visibility !== 'hidden' && +style.opacity > 0;
      const box = (k: number, fill?: string): void => {
        const b: Box = [k, Math.round(r.left + sx), Math.round(r.top + sy), Math.round(r.width), Math.round(r.height)];
        if (fill) b.push(fill);
        boxes.push(b);
      };
      if (c.hasAttribute('data-spoor-block')) {
        if (visible) box(ROLE.block, '#888');
        continue;
      }
      const k = visible ? role(c, style) : undefined;
      if (k !== undefined) box(k, k === ROLE.block && r.width * r.height > 40_000 ? colour(style) : undefined);
      // Leaves need no descent; everything else may hold more boxes.
      if (k === undefined || k === ROLE.block || k === ROLE.nav || (k === ROLE.text && c.firstElementChild)) walk(c);
    }
  };
  if (document.body) walk(document.body);
  return [Math.max(doc.scrollWidth, innerWidth), Math.max(doc.scrollHeight, innerHeight), boxes];
}

/** Emits snapshots at page views (call `page()`), after resizes and large DOM changes. */
export function layouts(emit: Emit, minGapMs = 3000): { page: () => void; stop: Teardown } {
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const take = safe(() => {
    timer = undefined;
    last = Date.now();
    emit(Kind.Layout, ...snapshot());
  });
  // Debounced: waits for the page to settle, never more often than minGapMs.
  const soon = (delay = 500): void => {
    if (timer) return;
    timer = setTimeout(take, Math.max(delay, last + minGapMs - Date.now()));
  };
  let added = 0;
  const mo = new MutationObserver(
    safe((records: MutationRecord[]) => {
      for (const r of records) added += r.addedNodes.length + r.removedNodes.length;
      if (added > 20) {
        added = 0;
        soon();
      }
    }),
  );
  mo.observe(document.documentElement, { childList: true, subtree: true });
  const onResize = safe(() => soon());
  addEventListener('resize', onResize, { passive: true });
  return {
    page: () => {
      clearTimeout(timer);
      timer = undefined;
      // After the new route has rendered, and at once if the document is already complete.
      timer = setTimeout(take, document.readyState === 'complete' ? 50 : 300);
    },
    stop: () => {
      mo.disconnect();
      removeEventListener('resize', onResize);
      clearTimeout(timer);
    },
  };
}
