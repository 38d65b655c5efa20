// A page's heatmaps over its wireframe: the click map with its most clicked elements, and the
// scroll map (how many views reached each depth, with the fold). Both for one viewport class
// or all, over all time or a recent period; the choices stay in the address, so a link keeps
// them. Counts come pre-aggregated from the server (4 px cells, 25 px depth steps).

import { json } from './api';
import { h } from './dom';
import { drawWireframe } from './wireframe';

interface Cell {
  x: number;
  y: number;
  n: number;
  rage: number;
}

interface Element {
  selector: string;
  clicks: number;
  rage: number;
  dead: number;
  x: number;
  y: number;
}

type Box = [number, number, number, number, number, string?];

interface Layout {
  doc_width: number;
  doc_height: number;
  boxes: Box[];
  device: string;
}

interface ClickMap {
  page: string;
  clicks: number;
  rage: number;
  points: Cell[];
  truncated: boolean;
  elements: Element[];
  layout: Layout | null;
}

interface ScrollMap {
  page: string;
  views: number;
  depths: [number, number][];
  fold_px: number | null;
  layout: Layout | null;
}

const RANGES: [string, string][] = [
  ['', 'all time'],
  ['86400000', 'last 24 h'],
  ['604800000', 'last 7 days'],
  ['2592000000', 'last 30 days'],
];

const DEVICES: [string, string][] = [
  ['', 'all devices'],
  ['desktop', 'desktop (≥ 1,200 px)'],
  ['tablet', 'tablet (768–1,199 px)'],
  ['mobile', 'mobile (< 768 px)'],
];

/** Tallest canvas drawn (px of the page). */
const MAX_HEIGHT = 8000;

function param(name: string): string {
  return new URLSearchParams(location.search).get(name) || '';
}

/** Sets (or, when empty, removes) a parameter of the address without a new history entry. */
function setParam(name: string, value: string): void {
  const u = new URL(location.href);
  if (value) u.searchParams.set(name, value);
  else u.searchParams.delete(name);
  history.replaceState(null, '', u.pathname + u.search);
}

function select(name: string, options: [string, string][], value: string, redraw: () => void): HTMLSelectElement {
  const s = h(
    'select',
    { name, onchange: () => { setParam(name, s.value); redraw(); } },
    ...options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)),
  );
  return s;
}

export async function heatmap(root: HTMLElement, site: string, url: string): Promise<void> {
  const range = param('range');
  const device = param('device');
  const view = param('view') === 'scroll' ? 'scroll' : 'clicks';
  const api = new URLSearchParams({ site, url });
  if (Number(range) > 0) api.set('since', String(Date.now() - Number(range)));
  if (device) api.set('device', device);
  const redraw = () => void heatmap(root, site, url);
  const tab = (v: string, label: string) =>
    h('button', { class: 'tab', 'data-view': v, 'aria-pressed': String(v === view), onclick: () => { setParam('view', v === 'clicks' ? '' : v); redraw(); } }, label);
  const controls = h(
    'p',
    { class: 'heat-controls' },
    tab('clicks', 'Clicks'),
    tab('scroll', 'Scroll depth'),
    ' ',
    h('label', {}, 'Period ', select('range', RANGES, range, redraw)),
    ' ',
    h('label', {}, 'Devices ', select('device', DEVICES, device, redraw)),
  );
  if (view === 'scroll') {
    const res = await json<ScrollMap>(`/api/scrollmap?${api}`);
    scrollView(root, url, res, controls);
  } else {
    const res = await json<ClickMap>(`/api/heatmap?${api}`);
    clickView(root, url, res, controls);
  }
}

/** A canvas the size of the page (its layout, or what the data reaches), wireframe drawn. */
function pageCanvas(lay: Layout | null, reach: { w: number; h: number }): { canvas: HTMLCanvasElement; g: CanvasRenderingContext2D } {
  const width = Math.ceil(Math.max(320, lay?.doc_width || 0, reach.w));
  const height = Math.ceil(Math.min(MAX_HEIGHT, Math.max(240, lay?.doc_height || 0, reach.h)));
  const canvas = h('canvas', { class: 'heat', width, height });
  const g = canvas.getContext('2d')!;
  g.fillStyle = '#fafafa';
  g.fillRect(0, 0, width, height);
  if (lay) {
    drawWireframe(g, lay.boxes, (x) => x, (y) => y, 1);
    canvas.dataset.wireframe = String(lay.boxes.length);
  }
  return { canvas, g };
}

function title(url: string, page: string, controls: HTMLElement): HTMLElement[] {
  return [
    h('h2', {}, 'Heatmap'),
    h('p', { class: 'url' }, url, page !== url ? h('span', { class: 'help' }, `  counted as ${page}`) : null),
    controls,
  ];
}

/** The colour of heat `a` (0..255): blue, cyan, green, yellow, red. */
function palette(): Uint8ClampedArray {
  const c = document.createElement('canvas');
  c.width = 256;
  c.height = 1;
  const g = c.getContext('2d')!;
  const grad = g.createLinearGradient(0, 0, 256, 0);
  grad.addColorStop(0.0, 'rgb(0,0,255)');
  grad.addColorStop(0.35, 'rgb(0,255,255)');
  grad.addColorStop(0.55, 'rgb(0,255,0)');
  grad.addColorStop(0.75, 'rgb(255,255,0)');
  grad.addColorStop(1.0, 'rgb(255,0,0)');
  g.fillStyle = grad;
  g.fillRect(0, 0, 256, 1);
  return g.getImageData(0, 0, 256, 1).data;
}

/** Clicks as heat: each cell a soft spot weighted by its count, summed, then coloured. */
function drawHeat(g: CanvasRenderingContext2D, cells: Cell[], w: number, hgt: number): void {
  const R = 18;
  const stamp = document.createElement('canvas');
  stamp.width = stamp.height = 2 * R;
  const s = stamp.getContext('2d')!;
  const grad = s.createRadialGradient(R, R, 0, R, R, R);
  grad.addColorStop(0, 'rgba(0,0,0,1)');
  grad.addColorStop(1, 'rgba(0,0,0,0)');
  s.fillStyle = grad;
  s.fillRect(0, 0, 2 * R, 2 * R);
  const off = document.createElement('canvas');
  off.width = w;
  off.height = hgt;
  const o = off.getContext('2d')!;
  let max = 1;
  for (const c of cells) max = Math.max(max, c.n);
  for (const c of cells) {
    if (c.y - R > hgt) continue;
    o.globalAlpha = Math.min(1, 0.25 + (0.75 * c.n) / max);
    o.drawImage(stamp, c.x - R, c.y - R);
  }
  const img = o.getImageData(0, 0, w, hgt);
  const d = img.data;
  const pal = palette();
  for (let i = 3; i < d.length; i += 4) {
    const a = d[i];
    if (!a) continue;
    const p = a * 4;
    d[i - 3] = pal[p];
    d[i - 2] = pal[p + 1];
    d[i - 1] = pal[p + 2];
    d[i] = Math.min(210, 60 + a);
  }
  o.putImageData(img, 0, 0);
  g.drawImage(off, 0, 0);
  // Rage clicks: a red ring, edged in white so it shows on the hottest spots too.
  for (const [colour, width] of [['#ffffff', 5], ['#c00000', 2.5]] as const) {
    g.strokeStyle = colour;
    g.lineWidth = width;
    for (const c of cells) {
      if (!c.rage) continue;
      g.beginPath();
      g.arc(c.x, c.y, 13, 0, 2 * Math.PI);
      g.stroke();
    }
  }
}

/** Where an element is on the wireframe: the smallest box holding its clicks' mean point, or
 * a small square around that point when no box does. */
export function elementBox(boxes: Box[], x: number, y: number): [number, number, number, number] {
  let best: Box | null = null;
  for (const b of boxes) {
    const [, bx, by, bw, bh] = b;
    if (x >= bx && x <= bx + bw && y >= by && y <= by + bh && (!best || bw * bh < best[3] * best[4])) best = b;
  }
  return best ? [best[1], best[2], best[3], best[4]] : [x - 12, y - 12, 24, 24];
}

function clickView(root: HTMLElement, url: string, res: ClickMap, controls: HTMLElement): void {
  const pts = res.points;
  let reachW = 0;
  let reachH = 0;
  for (const p of pts) {
    reachW = Math.max(reachW, p.x + 20);
    reachH = Math.max(reachH, p.y + 40);
  }
  const { canvas, g } = pageCanvas(res.layout, { w: reachW, h: reachH });
  drawHeat(g, pts, canvas.width, canvas.height);
  const heated = g.getImageData(0, 0, canvas.width, canvas.height);
  canvas.dataset.points = String(res.clicks);
  const rows = res.elements.map((e) =>
    h(
      'tr',
      {
        class: 'element',
        tabindex: 0,
        onclick: (ev: Event) => pick(ev.currentTarget as HTMLTableRowElement, e),
      },
      h('td', { class: 'sel' }, e.selector),
      h('td', { class: 'num' }, e.clicks),
      h('td', { class: 'num' }, e.rage || ''),
      h('td', { class: 'num' }, e.dead || ''),
    ),
  );
  function pick(row: HTMLTableRowElement, e: Element): void {
    g.putImageData(heated, 0, 0);
    for (const r of rows) r.classList.toggle('picked', r === row);
    const [x, y, w, hh] = elementBox(res.layout?.boxes ?? [], e.x, e.y);
    g.strokeStyle = '#1a56db';
    g.lineWidth = 3;
    g.strokeRect(x - 2, y - 2, w + 4, hh + 4);
    canvas.dataset.picked = `${Math.round(x)},${Math.round(y)},${Math.round(w)},${Math.round(hh)}`;
    // Bring the box into the middle of the page's scroll area.
    const area = canvas.parentElement;
    area?.scrollTo({ top: Math.max(0, y - area.clientHeight / 2), left: Math.max(0, x - area.clientWidth / 2) });
  }
  const list = res.elements.length
    ? h(
        'table',
        { class: 'elements' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Element'), h('th', {}, 'Clicks'), h('th', { title: 'rage clicks' }, 'Rage'), h('th', { title: 'clicks the page did not react to' }, 'Dead'))),
        h('tbody', {}, ...rows),
      )
    : h('p', { class: 'help' }, 'No clicks on named elements.');
  root.replaceChildren(
    ...title(url, res.page, controls),
    h(
      'p',
      { class: 'heat-info' },
      `${res.clicks} clicks${res.rage ? `, ${res.rage} of them rage clicks (red rings)` : ''}${res.truncated ? '; the most clicked cells only' : ''}.`,
      res.layout ? ` Wireframe: the newest ${res.layout.device} layout.` : ' No layout snapshot of this page yet.',
    ),
    h('div', { class: 'heat-wrap' }, h('div', { class: 'heat-page' }, canvas), h('aside', { class: 'heat-side' }, h('h3', {}, 'Most clicked elements'), list)),
  );
}

/** Share of views → colour: red where everyone got, through yellow and green, to blue. */
function shareColour(s: number): string {
  const hue = Math.round(240 * (1 - s));
  return `hsla(${hue}, 85%, 55%, 0.42)`;
}

function scrollView(root: HTMLElement, url: string, res: ScrollMap, controls: HTMLElement): void {
  const deepest = res.depths.length ? res.depths[res.depths.length - 1][0] + 25 : 0;
  const { canvas, g } = pageCanvas(res.layout, { w: 0, h: deepest + 100 });
  const W = canvas.width;
  // Each 25 px band coloured by the share of views that reached it; nothing below the deepest.
  for (const [y, s] of res.depths) {
    g.fillStyle = shareColour(s);
    g.fillRect(0, y, W, 25);
  }
  g.fillStyle = 'rgba(30,40,50,0.55)';
  g.fillRect(0, deepest, W, Math.max(0, canvas.height - deepest));
  // Lines where the share falls below 75, 50 and 25 %.
  // Labels stay readable when the page is scaled down to fit.
  g.font = `${Math.round(Math.max(14, canvas.height / 60))}px system-ui, sans-serif`;
  const label = (y: number, text: string, colour: string, dash: number[]) => {
    g.strokeStyle = colour;
    g.setLineDash(dash);
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(0, y);
    g.lineTo(W, y);
    g.stroke();
    g.setLineDash([]);
    const tw = g.measureText(text).width;
    const fh = parseInt(g.font, 10);
    g.fillStyle = 'rgba(255,255,255,0.9)';
    g.fillRect(W - tw - 16, y - fh - 8, tw + 12, fh + 6);
    g.fillStyle = colour;
    g.fillText(text, W - tw - 10, y - 6);
  };
  for (const q of [0.75, 0.5, 0.25]) {
    const at = res.depths.find(([, s]) => s < q);
    if (at) label(at[0], `${Math.round(q * 100)} % of views reached here`, '#1d2733', []);
  }
  if (res.fold_px != null) label(res.fold_px, `fold: the median first screen, ${res.fold_px} px`, '#b3261e', [8, 6]);
  // The whole page at once, scaled to fit: the point of a scroll map is where views stop.
  canvas.classList.add('fit');
  canvas.dataset.views = String(res.views);
  canvas.dataset.fold = String(res.fold_px ?? '');
  const legend = h(
    'div',
    { class: 'heat-side' },
    h('h3', {}, 'Scroll depth'),
    h('p', {}, `${res.views} page views.`),
    h('p', { class: 'help' }, 'Each band shows the share of views whose screen reached it: red all, blue few; dark below the deepest view.'),
    h('table', { class: 'elements depth' }, h('thead', {}, h('tr', {}, h('th', {}, 'Views'), h('th', {}, 'reached down to'))), h('tbody', {}, ...[100, 75, 50, 25, 10].map((pc) => {
      // The deepest step at least this share of views reached.
      let at: number | null = null;
      for (const [y, s] of res.depths) if (s >= pc / 100) at = y;
      return h('tr', {}, h('td', {}, `${pc} %`), h('td', { class: 'num' }, at != null && res.views ? `${at} px` : '—'));
    }))),
  );
  root.replaceChildren(
    ...title(url, res.page, controls),
    h('p', { class: 'heat-info' }, res.layout ? `Wireframe: the newest ${res.layout.device} layout.` : 'No layout snapshot of this page yet.'),
    h('div', { class: 'heat-wrap' }, h('div', { class: 'heat-page' }, canvas), legend),
  );
}
