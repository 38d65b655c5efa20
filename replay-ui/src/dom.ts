// DOM helpers. Recorded strings (URLs, titles, selectors, click text, custom props) only ever
// reach the page through `textContent` and attribute setters: never as HTML.

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | ((e: any) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    // The CSP blocks style *attributes*; the CSSOM is allowed.
    else if (k === 'style') el.style.cssText = String(v);
    else if (typeof v === 'boolean') {
      if (v) el.setAttribute(k, '');
    } else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/** An in-app link: only paths of this UI, never a recorded URL. */
export function link(path: string, text: string, go: (p: string) => void): HTMLAnchorElement {
  return h('a', { href: path, onclick: (e: MouseEvent) => { if (!e.metaKey && !e.ctrlKey) { e.preventDefault(); go(path); } } }, text);
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** "Chrome/120 · X11" from a user agent, for lists and headers. */
export function shortUa(ua: string | null | undefined): string {
  if (!ua) return '';
  const m = ua.match(/(Firefox|Edg|Chrome|Safari)\/[\d.]+/);
  const os = ua.match(/\(([^;)]+)/);
  return [m ? m[0].split('.')[0] : ua.slice(0, 40), os ? os[1] : ''].filter(Boolean).join(' · ');
}
