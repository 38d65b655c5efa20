// Describing a clicked element: a short CSS selector that stays stable across page loads,
// and its trimmed visible text. Never a value of a form field, no text of an element that is
// or holds editable content or form fields (what a visitor typed would show); nothing of an
// element inside `data-spoor-block`.

const MAX_TEXT = 80;
/** Form fields, by tag name (the layout and input collectors use it too). */
export const FIELD = /^(INPUT|TEXTAREA|SELECT)$/;
const EDITABLE = 'input,textarea,select,option,[contenteditable]';

export function blocked(el: Element | null): boolean {
  return !!el?.closest?.('[data-spoor-block]');
}

function part(el: Element): string {
  if (el.id && /^[A-Za-z][\w-]*$/.test(el.id) && !/\d{3,}/.test(el.id)) return '#' + el.id;
  let s = el.tagName.toLowerCase();
  const cls = [...el.classList].filter((c) => /^[A-Za-z][\w-]*$/.test(c) && !/\d{3,}/.test(c)).slice(0, 2);
  if (cls.length) s += '.' + cls.join('.');
  const p = el.parentElement;
  if (p) {
    const same = [...p.children].filter((c) => c.tagName === el.tagName);
    if (same.length > 1) s += `:nth-of-type(${same.indexOf(el) + 1})`;
  }
  return s;
}

/** Up to four levels, stopping at an element with a usable id. */
export function selector(el: Element | null): string {
  const parts: string[] = [];
  for (let e = el; e && e.nodeType === 1 && parts.length < 4; e = e.parentElement) {
    const p = part(e);
    parts.unshift(p);
    if (p[0] === '#' || e.tagName === 'BODY') break;
  }
  return parts.join('>');
}

/** Visible text of a clicked element, collapsed and trimmed; empty for form fields, editable
 * content, and anything holding either. */
export function text(el: Element | null): string {
  if (!el || el.matches(EDITABLE) || (el as HTMLElement).isContentEditable || el.querySelector(EDITABLE)) return '';
  const t = (el.textContent || '').slice(0, 400).replace(/\s+/g, ' ').trim();
  return t.length > MAX_TEXT ? t.slice(0, MAX_TEXT - 1) + '…' : t;
}
