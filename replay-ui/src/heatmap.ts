// The heatmap of one page: every recorded click on it, in document coordinates.

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

export async function heatmap(root: HTMLElement, site: string, url: string): Promise<void> {
  const res = await json<{ points: Point[]; truncated: boolean; layout: { doc_width: number; doc_height: number; boxes: unknown[][] } | null }>(
    `/api/heatmap?site=${encodeURIComponent(site)}&url=${encodeURIComponent(url)}`,
  );
  const pts = res.points;
  const lay = res.layout;
  const width = Math.max(320, lay?.doc_width || 0, ...pts.map((p) => p.vw || 0));
  const height = Math.max(240, lay?.doc_height || 0, ...pts.map((p) => p.y + 40));
  const canvas = h('canvas', { class: 'heat', width: Math.ceil(width), height: Math.ceil(Math.min(height, 8000)) });
  root.replaceChildren(
    h('h2', {}, 'Heatmap'),
    h('p', { class: 'url' }, url),
    h('p', {}, `${pts.length} clicks${res.truncated ? ' (the first ones only)' : ''}; rage clicks in red.${lay ? '' : ' No layout snapshot of this page yet.'}`),
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
