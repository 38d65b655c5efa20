// The heatmap of one page: its recorded clicks (all, or those of a recent period; the newest
// 20,000 at most), in document coordinates over the page's wireframe.

import { json } from './api';
import { h } from './dom';
import { drawWireframe } from './wireframe';

interface Point {
  x: number;
  y: number;
  vw: number;
  vh: number;
  rage: boolean;
}

const RANGES: [string, string][] = [
  ['', 'all time'],
  ['86400000', 'last 24 h'],
  ['604800000', 'last 7 days'],
  ['2592000000', 'last 30 days'],
];

export async function heatmap(root: HTMLElement, site: string, url: string): Promise<void> {
  // `?range=` (ms back from now) is kept in the address, so a heatmap link keeps its range.
  const range = new URLSearchParams(location.search).get('range') || '';
  const api = new URLSearchParams({ site, url });
  if (Number(range) > 0) api.set('since', String(Date.now() - Number(range)));
  const res = await json<{ points: Point[]; truncated: boolean; layout: { doc_width: number; doc_height: number; boxes: unknown[][] } | null }>(
    `/api/heatmap?${api}`,
  );
  const select = h(
    'select',
    {
      name: 'range',
      onchange: () => {
        const u = new URL(location.href);
        if (select.value) u.searchParams.set('range', select.value);
        else u.searchParams.delete('range');
        history.replaceState(null, '', u.pathname + u.search);
        void heatmap(root, site, url);
      },
    },
    ...RANGES.map(([v, label]) => h('option', { value: v, selected: v === range }, label)),
  );
  const pts = res.points;
  const lay = res.layout;
  const width = Math.max(320, lay?.doc_width || 0, ...pts.map((p) => p.vw || 0));
  const height = Math.max(240, lay?.doc_height || 0, ...pts.map((p) => p.y + 40));
  const canvas = h('canvas', { class: 'heat', width: Math.ceil(width), height: Math.ceil(Math.min(height, 8000)) });
  root.replaceChildren(
    h('h2', {}, 'Heatmap'),
    h('p', { class: 'url' }, url),
    h('p', { class: 'heat-info' }, h('label', {}, 'Clicks from ', select), ' ', `${pts.length} clicks${res.truncated ? ' (the newest only)' : ''}; rage clicks in red.${lay ? '' : ' No layout snapshot of this page yet.'}`),
    canvas,
  );
  const g = canvas.getContext('2d')!;
  g.fillStyle = '#fafafa';
  g.fillRect(0, 0, canvas.width, canvas.height);
  // The page's wireframe under the clicks.
  if (lay) {
    drawWireframe(g, lay.boxes, (x) => x, (y) => y, 1);
    canvas.dataset.wireframe = String(lay.boxes.length);
  }
  g.globalCompositeOperation = 'multiply';
  for (const p of pts) {
    const grad = g.createRadialGradient(p.x, p.y, 0, p.x, p.y, 24);
    grad.addColorStop(0, p.rage ? 'rgba(220,0,0,0.55)' : 'rgba(255,120,0,0.45)');
    grad.addColorStop(1, 'rgba(255,200,0,0)');
    g.fillStyle = grad;
    g.fillRect(p.x - 24, p.y - 24, 48, 48);
  }
  canvas.dataset.points = String(pts.length);
}
