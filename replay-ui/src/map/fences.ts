// Geofences on the location dashboard: the site's circles and polygons drawn on the map and
// listed beside it, drawing new ones (a circle: click its centre, then its edge; a polygon:
// click its corners, then Finish or click the first corner again), renaming and deleting,
// and the enter/exit/dwell events as they happen and for a chosen device. Names are the
// user's text: they reach the page only as text.

import { L } from './leaflet';
import { json, removeAfterConfirm, send } from '../api';
import { h } from '../dom';

export interface Fence {
  id: string;
  name: string;
  circle?: { lat: number; lon: number; radius_m: number };
  polygon?: [number, number][];
}

export interface FenceEvent {
  id: string;
  type: 'enter' | 'exit' | 'dwell';
  geofence: string;
  name: string;
  did: string;
  site: string;
  ts: number;
  lat: number;
  lon: number;
}

type Mode = 'idle' | 'circle' | 'polygon' | 'name';

const STYLE = { color: '#7b3fb5', weight: 2, fillOpacity: 0.12, className: 'geofence' };
const DRAFT = { color: '#7b3fb5', weight: 2, dashArray: '6 4', fillOpacity: 0.08, className: 'geofence-draft' };

export function eventLine(e: FenceEvent, withDevice: boolean): HTMLLIElement {
  const verb = e.type === 'enter' ? 'entered' : e.type === 'exit' ? 'left' : 'dwelt in';
  return h(
    'li',
    { class: `fence-event ${e.type}`, 'data-event': e.id },
    h('time', {}, new Date(e.ts).toLocaleTimeString()),
    ' ',
    withDevice ? `${e.did} ${verb} ` : `${verb} `,
    h('strong', {}, e.name),
  );
}

export class Fences {
  readonly el: HTMLElement;
  private readonly list = h('ul', { class: 'fences' });
  private readonly events = h('ol', { class: 'fence-events' });
  private readonly hint = h('div', { class: 'fence-hint' }, '');
  private readonly form = h('form', { class: 'fence-form', hidden: true });
  private readonly layer: L.LayerGroup;
  private readonly eventLayer: L.LayerGroup;
  private mode: Mode = 'idle';
  private points: L.LatLng[] = [];
  private draft: L.Path | null = null;
  private finishBtn = h('button', { type: 'button', class: 'finish', hidden: true }, 'Finish');
  private fences: Fence[] = [];

  constructor(private readonly map: L.Map, private readonly site: () => string) {
    this.layer = L.layerGroup().addTo(map);
    this.eventLayer = L.layerGroup().addTo(map);
    const circleBtn = h('button', { type: 'button', class: 'draw-circle' }, 'Draw circle');
    const polygonBtn = h('button', { type: 'button', class: 'draw-polygon' }, 'Draw polygon');
    circleBtn.addEventListener('click', () => this.begin('circle'));
    polygonBtn.addEventListener('click', () => this.begin('polygon'));
    this.finishBtn.addEventListener('click', () => this.finishPolygon());
    this.el = h(
      'section',
      { class: 'fences-box' },
      h('h3', {}, 'Geofences'),
      h('div', { class: 'fence-tools' }, circleBtn, ' ', polygonBtn, ' ', this.finishBtn),
      this.hint,
      this.form,
      this.list,
      h('h3', {}, 'Geofence events'),
      this.events,
    );
    map.on('click', (e: L.LeafletMouseEvent) => this.click(e.latlng));
    map.on('mousemove', (e: L.LeafletMouseEvent) => this.move(e.latlng));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.mode !== 'idle') this.cancel();
    });
  }

  private path(id?: string): string {
    const site = this.site();
    const q = site ? `?site=${encodeURIComponent(site)}` : '';
    return `/api/geofences${id ? `/${encodeURIComponent(id)}` : ''}${q}`;
  }

  async load(): Promise<void> {
    try {
      this.fences = (await json<{ geofences: Fence[] }>(this.path())).geofences;
    } catch (e) {
      this.hint.textContent = `Geofences: ${e instanceof Error ? e.message : e}`;
      return;
    }
    this.render();
  }

  private shape(f: Fence): L.Path {
    const layer = f.circle
      ? L.circle([f.circle.lat, f.circle.lon], { ...STYLE, radius: f.circle.radius_m })
      : L.polygon((f.polygon || []).map(([a, b]) => [a, b] as [number, number]), STYLE);
    layer.bindTooltip(h('span', {}, f.name), { sticky: true });
    return layer;
  }

  private render(): void {
    this.layer.clearLayers();
    const rows = this.fences.map((f) => {
      const shape = this.shape(f);
      this.layer.addLayer(shape);
      const name = h('span', { class: 'fence-name' }, f.name);
      const kind = h('span', { class: 'fence-kind' }, f.circle ? `circle, ${Math.round(f.circle.radius_m)} m` : `polygon, ${f.polygon?.length} corners`);
      const rename = h('button', { type: 'button', class: 'rename' }, 'Rename');
      const del = h('button', { type: 'button', class: 'delete' }, 'Delete');
      const row = h('li', { 'data-fence': f.id }, name, kind, h('span', { class: 'fence-actions' }, rename, del));
      name.addEventListener('click', () => {
        const b = shape instanceof L.Circle ? shape.getBounds() : (shape as L.Polygon).getBounds();
        this.map.fitBounds(b, { padding: [40, 40], maxZoom: 17 });
      });
      rename.addEventListener('click', () => this.rename(f, row));
      del.addEventListener('click', () => void this.remove(f));
      return row;
    });
    this.list.replaceChildren(...rows);
    if (this.mode === 'idle') this.hint.textContent = this.fences.length ? '' : 'No geofences yet.';
  }

  private rename(f: Fence, row: HTMLLIElement): void {
    const input = h('input', { type: 'text', name: 'rename', value: f.name, maxlength: 200 });
    const save = h('button', { type: 'submit' }, 'Save');
    const form = h('form', { class: 'rename-form' }, input, save);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const shape = f.circle ? { circle: f.circle } : { polygon: f.polygon };
      try {
        await send(this.path(f.id), 'PUT', { ...shape, name: input.value });
      } catch (err) {
        this.hint.textContent = `Rename failed: ${err instanceof Error ? err.message : err}`;
      }
      await this.load();
    });
    row.replaceChildren(form);
    input.focus();
  }

  private async remove(f: Fence): Promise<void> {
    try {
      if (!(await removeAfterConfirm(this.path(f.id), `Delete the geofence “${f.name}”?`))) return;
    } catch (err) {
      this.hint.textContent = `Delete failed: ${err instanceof Error ? err.message : err}`;
      return;
    }
    await this.load();
  }

  private begin(mode: 'circle' | 'polygon'): void {
    this.cancel();
    this.mode = mode;
    this.map.doubleClickZoom.disable();
    this.map.getContainer().classList.add('drawing');
    this.hint.textContent =
      mode === 'circle'
        ? 'Click the centre, then the edge. Esc cancels.'
        : 'Click each corner; Finish (or the first corner) closes it. Esc cancels.';
  }

  private cancel(): void {
    this.draft?.remove();
    this.draft = null;
    this.points = [];
    this.mode = 'idle';
    this.form.hidden = this.finishBtn.hidden = true;
    this.map.doubleClickZoom.enable();
    this.map.getContainer().classList.remove('drawing');
    this.hint.textContent = '';
  }

  private click(at: L.LatLng): void {
    if (this.mode === 'circle') {
      if (!this.points.length) {
        this.points = [at];
        this.draft = L.circle(at, { ...DRAFT, radius: 1 }).addTo(this.map);
      } else {
        (this.draft as L.Circle).setRadius(this.points[0].distanceTo(at));
        this.askName();
      }
    } else if (this.mode === 'polygon') {
      const first = this.points[0];
      const near = first && this.map.latLngToContainerPoint(first).distanceTo(this.map.latLngToContainerPoint(at)) < 10;
      if (near && this.points.length >= 3) return this.finishPolygon();
      this.points.push(at);
      this.draft?.remove();
      this.draft = L.polygon(this.points, DRAFT).addTo(this.map);
      this.finishBtn.hidden = this.points.length < 3;
    }
  }

  private move(at: L.LatLng): void {
    if (this.mode === 'circle' && this.points.length) (this.draft as L.Circle).setRadius(this.points[0].distanceTo(at));
  }

  private finishPolygon(): void {
    if (this.mode === 'polygon' && this.points.length >= 3) this.askName();
  }

  /** The shape is drawn: its name, then it is saved. */
  private askName(): void {
    const drawn = this.mode;
    this.mode = 'name';
    this.finishBtn.hidden = true;
    const input = h('input', { type: 'text', name: 'fence-name', placeholder: 'Name', maxlength: 200, required: true });
    const save = h('button', { type: 'submit' }, 'Save');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => this.cancel());
    this.form.replaceChildren(input, ' ', save, ' ', cancel);
    this.form.hidden = false;
    this.hint.textContent = 'Name the geofence.';
    this.form.onsubmit = async (e) => {
      e.preventDefault();
      const body: Omit<Fence, 'id'> =
        drawn === 'circle'
          ? { name: input.value, circle: { lat: this.points[0].lat, lon: this.points[0].lng, radius_m: Math.max(1, (this.draft as L.Circle).getRadius()) } }
          : { name: input.value, polygon: this.points.map((p) => [p.lat, p.lng] as [number, number]) };
      try {
        await send(this.path(), 'POST', body);
      } catch (err) {
        this.hint.textContent = `Not saved: ${err instanceof Error ? err.message : err}`;
        return;
      }
      this.cancel();
      await this.load();
    };
    input.focus();
  }

  /** A live event: marked on the map and listed, newest first. */
  live(e: FenceEvent): void {
    const m = L.circleMarker([e.lat, e.lon], { radius: 6, color: '#fff', weight: 2, fillOpacity: 1, fillColor: e.type === 'exit' ? '#b3261e' : '#2e7d32', className: `fence-event-marker ${e.type}` });
    m.bindTooltip(eventLine(e, true));
    this.eventLayer.addLayer(m);
    this.events.prepend(eventLine(e, true));
    while (this.events.children.length > 50) this.events.lastElementChild?.remove();
  }

  /** A device's events in a range, for its timeline. */
  async forDevice(did: string, since: number, until: number): Promise<FenceEvent[]> {
    const site = this.site();
    const q = new URLSearchParams({ did, since: String(since), until: String(until) });
    if (site) q.set('site', site);
    try {
      return (await json<{ events: FenceEvent[] }>(`/api/geofences/events?${q}`)).events;
    } catch {
      return [];
    }
  }
}
