// The location dashboard at `/map`: live device markers (clustered), a device list with last
// seen and speed, a chosen device's track for a time range (or a day) with its stays, the
// day's timeline of trips and stays (pick a trip to draw it, read its summary and replay it),
// route replay at 1–60× over the real time gaps with a follow camera, and a speed chart;
// geofences drawn, named and deleted on the map, and their events live and per device
// (`fences.ts`).
//
// The map never depends on the internet: a grid and Natural Earth's borders and coastlines
// (`basemap.ts`, served by spoor) are drawn beneath the tiles, so tracks and markers stay
// readable when the configured tile server cannot be reached.

import { L } from './leaflet';
import 'leaflet.markercluster';
import { download, json, openSocket, removeAfterConfirm, setToken, token, Unauthorized } from '../api';
import { h } from '../dom';
import { askToken as askTokenForm } from '../token';
import { addBasemap, TILE_PANE } from './basemap';
import { ago, Clock, downsample, Fix, isStale, matchesSearch, positionAt } from './route';
import { SpeedChart } from './speed';
import { Entry, entries, Stay, timelineItems, Trip, tripSummary } from './timeline';
import { eventLine, FenceEvent, Fences } from './fences';

const root = document.getElementById('app')!;
const meta = document.querySelector('meta[name="spoor-tiles"]');
const TILE_URL = meta?.getAttribute('content') || '';
const ATTRIBUTION = meta?.getAttribute('data-attribution') || '';
const site = new URLSearchParams(location.search).get('site') || '';
const MAX_TRACK = 100_000;
/** Most fixes a drawn line has; longer ranges are thinned for drawing only. */
const MAX_DRAWN = 5_000;

/** Grid tiles drawn locally: the background when no tile server answers. */
const Grid = L.GridLayer.extend({
  createTile(coords: L.Coords): HTMLElement {
    const size = this.getTileSize();
    const c = document.createElement('canvas');
    c.width = size.x;
    c.height = size.y;
    const g = c.getContext('2d')!;
    g.fillStyle = '#eef1f4';
    g.fillRect(0, 0, size.x, size.y);
    g.strokeStyle = '#d3dae1';
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const p = (i * size.x) / 4 + 0.5;
      g.beginPath();
      g.moveTo(p, 0);
      g.lineTo(p, size.y);
      g.moveTo(0, p);
      g.lineTo(size.x, p);
      g.stroke();
    }
    g.fillStyle = '#a9b4bf';
    g.font = '10px system-ui, sans-serif';
    g.fillText(`${coords.z}/${coords.x}/${coords.y}`, 4, 12);
    return c;
  },
}) as unknown as new (options?: L.GridLayerOptions) => L.GridLayer;

function speedText(d: Fix): string {
  return d.speed_mps == null ? '–' : `${(d.speed_mps * 3.6).toFixed(1)} km/h`;
}

function q(params: Record<string, string | number>, siteId = site): string {
  const u = new URLSearchParams();
  if (siteId) u.set('site', siteId);
  for (const [k, v] of Object.entries(params)) u.set(k, String(v));
  return u.toString();
}

/** A device as people know it: the name typed in its app, else its id. */
const label = (d: Fix): string => d.name || d.did;
const searchText = (d: Fix): string => (d.name ? `${d.name} ${d.did}` : d.did);

function icon(label: string, cls: string): L.DivIcon {
  const el = h('div', { class: `dev-icon ${cls}` }, h('span', {}, label));
  return L.divIcon({ html: el, className: 'dev-marker', iconSize: [14, 14], iconAnchor: [7, 7] });
}

async function loadTrack(siteId: string, did: string, since: number, until: number): Promise<Fix[]> {
  const out: Fix[] = [];
  let after: number | null = null;
  for (;;) {
    const params: Record<string, string | number> = { since, until, limit: 10000 };
    if (after !== null) params.after = after;
    const page = await json<{ positions: Fix[]; next: number | null }>(
      `/api/devices/${encodeURIComponent(did)}/track?${q(params, siteId)}`,
    );
    out.push(...page.positions);
    if (page.next == null || out.length >= MAX_TRACK) return out;
    after = page.next;
  }
}

function askToken(message: string): void {
  askTokenForm(root, message, () => void start());
}

async function start(): Promise<void> {
  if (!token()) return askToken('Paste the read token spoor printed when it started.');
  let initial: { devices: Fix[] };
  const pending: Fix[] = [];
  // Subscribe before loading the devices, so no position in between is missed.
  let ws: WebSocket | undefined;
  try {
    ws = await openLive((p) => pending.push(p));
    initial = await json<{ devices: Fix[] }>(`/api/devices?${q({})}`);
  } catch (e) {
    ws?.close();
    if (e instanceof Unauthorized) {
      setToken(null);
      return askToken('That token was not accepted. Paste the read token again.');
    }
    root.replaceChildren(h('p', { class: 'error' }, String(e)));
    return;
  }
  dashboard(initial.devices, pending, ws as WebSocket);
}

let onLive: (p: Fix) => void = () => {};
let onFence: (e: FenceEvent) => void = () => {};

async function openLive(early: (p: Fix) => void): Promise<WebSocket> {
  const ws = await openSocket('/api/live', { site: site || '' });
  onLive = early;
  ws.onmessage = (m) => {
    const v = JSON.parse(m.data);
    if (v.geofence_event) onFence(v.geofence_event);
    else onLive(v);
  };
  return ws;
}

function dashboard(initial: Fix[], pending: Fix[], ws: WebSocket): void {
  const mapEl = h('div', { id: 'map', class: 'map' });
  const list = h('ul', { class: 'devices' });
  const count = h('span', { class: 'count' }, '');
  const search = h('input', { type: 'search', name: 'find', placeholder: 'Find a device', autocomplete: 'off' });
  const status = h('span', { class: 'status' }, '');
  const tileNote = h('div', { class: 'tile-note', hidden: true }, 'Map tiles unavailable: drawing borders and coastlines only.');
  const attribution = h('div', { class: 'attribution' }, [ATTRIBUTION && TILE_URL ? ATTRIBUTION : '', 'Natural Earth'].filter(Boolean).join(' · '));
  const range = h(
    'select',
    { name: 'range' },
    h('option', { value: '3600000' }, 'last hour'),
    h('option', { value: '86400000', selected: true }, 'last 24 h'),
    h('option', { value: '604800000' }, 'last 7 days'),
    h('option', { value: '2592000000' }, 'last 30 days'),
    h('option', { value: '0' }, 'everything'),
    h('option', { value: 'day' }, 'one day'),
    h('option', { value: 'custom' }, 'from … to …'),
  );
  const localInput = (ms: number): string => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
    return d.toISOString().slice(0, 16);
  };
  const fromInput = h('input', { type: 'datetime-local', name: 'from', value: localInput(Date.now() - 86_400_000) });
  const toInput = h('input', { type: 'datetime-local', name: 'to', value: localInput(Date.now()) });
  const custom = h('div', { class: 'custom-range', hidden: true }, fromInput, toInput);
  const dayInput = h('input', { type: 'date', name: 'day', value: localInput(Date.now()).slice(0, 10) });
  const dayPick = h('div', { class: 'day-range', hidden: true }, dayInput);
  const timeline = h('ol', { class: 'day-timeline' });
  const timelineBox = h('div', { class: 'timeline-box', hidden: true }, h('h3', {}, 'Timeline'), timeline);
  const deviceEvents = h('ol', { class: 'device-fence-events' });
  const chart = new SpeedChart(300, 90);
  chart.el.hidden = true;
  const playBtn = h('button', { type: 'button', class: 'play', disabled: true }, 'Play');
  const speed = h(
    'select',
    { name: 'speed' },
    ...[1, 2, 5, 10, 30, 60].map((s) => h('option', { value: String(s), selected: s === 10 }, `${s}×`)),
  );
  const follow = h('input', { type: 'checkbox', name: 'follow', checked: true });
  const slider = h('input', { type: 'range', name: 'at', min: 0, max: 1000, value: 0, disabled: true });
  const clockText = h('span', { class: 'clock' }, '');
  const trackInfo = h('div', { class: 'track-info' }, 'Pick a device to see its track.');
  const deleteBtn = h('button', { type: 'button', class: 'danger', hidden: true }, 'Delete device');
  const gpxBtn = h('button', { type: 'button', class: 'gpx', hidden: true, title: 'this range of the track, as a GPX file' }, 'Download GPX');
  let shownRange = { since: 0, until: 0 };
  const panel = h(
    'aside',
    { class: 'side' },
    h('h2', {}, 'Devices ', count),
    search,
    list,
    h('div', { class: 'track-controls' },
      h('label', {}, 'Range ', range),
      custom,
      dayPick,
      trackInfo,
      timelineBox,
      deviceEvents,
      h('div', { class: 'replay' }, playBtn, ' ', h('label', {}, 'Speed ', speed), ' ',
        h('label', {}, follow, ' follow')),
      slider,
      clockText,
      chart.el,
      h('div', { class: 'device-actions' }, gpxBtn, ' ', deleteBtn),
    ),
    status,
  );
  root.replaceChildren(h('div', { class: 'map-layout' }, panel, h('div', { class: 'map-wrap' }, mapEl, tileNote, attribution)));

  const map = L.map(mapEl, { attributionControl: false, zoomControl: true, worldCopyJump: true }).setView([20, 0], 2);
  new Grid({ maxZoom: 22 }).addTo(map);
  void addBasemap(map);
  if (TILE_URL) {
    let failures = 0;
    L.tileLayer(TILE_URL, { maxZoom: 19, pane: TILE_PANE })
      .on('tileerror', () => {
        if (++failures >= 2) tileNote.hidden = false;
      })
      .on('tileload', () => {
        failures = 0;
        tileNote.hidden = true;
      })
      .addTo(map);
  } else tileNote.hidden = false;

  // Geofences are a site's: the page's `?site=`, else the site of the devices shown.
  const fences = new Fences(map, () => site || devices.values().next().value?.fix.site || '');
  panel.insertBefore(fences.el, status);
  onFence = (e) => fences.live(e);

  const cluster = L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false });
  map.addLayer(cluster);
  const devices = new Map<string, { fix: Fix; marker: L.Marker; row: HTMLLIElement; stale: boolean }>();
  let selected: string | null = null;
  let trackLayer: L.LayerGroup | null = null;
  let track: Fix[] = [];
  /** What the replay runs over: the whole track, or the trip picked from the timeline. */
  let shown: Fix[] = [];
  let tripLayer: L.Polyline | null = null;
  let clock: Clock | null = null;
  let replayMarker: L.Marker | null = null;
  let frame = 0;

  /** Greys out a device's row and marker once it has been silent for an hour. */
  function freshness(entry: { fix: Fix; marker: L.Marker; row: HTMLLIElement; stale: boolean }): void {
    const stale = isStale(entry.fix.ts);
    entry.row.classList.toggle('stale', stale);
    if (stale !== entry.stale) {
      entry.stale = stale;
      entry.marker.setIcon(icon(label(entry.fix), stale ? 'live stale' : 'live'));
    }
  }

  function showCount(): void {
    const shown = [...devices.values()].filter((d) => !d.row.hidden).length;
    count.textContent = shown === devices.size ? `(${devices.size})` : `(${shown} of ${devices.size})`;
  }

  function renderRow(d: Fix, row: HTMLLIElement): void {
    row.hidden = !matchesSearch(searchText(d), search.value);
    row.replaceChildren(
      h('span', { class: 'did', title: d.did }, label(d)),
      h('span', { class: 'src' }, d.source || ''),
      h('span', { class: 'seen' }, ago(d.ts)),
      h('span', { class: 'speed' }, speedText(d)),
      d.battery == null ? h('span', {}) : h('span', { class: 'batt' }, `${Math.round(d.battery)} %`),
      // A page's device: its recorded sessions are one click away.
      d.source === 'snippet'
        ? h('a', { class: 'sessions-link', href: `/?${new URLSearchParams({ did: d.did, site: d.site || '' })}` }, 'sessions')
        : '',
    );
    row.classList.toggle('selected', d.did === selected);
  }

  function upsert(d: Fix): void {
    const known = devices.get(d.did);
    if (known && known.fix.ts > d.ts) return;
    if (known) {
      known.fix = { ...d, battery: d.battery ?? known.fix.battery };
      known.marker.setLatLng([d.lat, d.lon]);
      renderRow(known.fix, known.row);
      freshness(known);
      return;
    }
    const marker = L.marker([d.lat, d.lon], { icon: icon(label(d), 'live'), title: d.did });
    marker.on('click', () => void select(d.did));
    cluster.addLayer(marker);
    const row = h('li', { 'data-did': d.did, onclick: () => void select(d.did) });
    const entry = { fix: d, marker, row, stale: false };
    devices.set(d.did, entry);
    renderRow(d, row);
    freshness(entry);
    showCount();
    const rows = [...devices.values()].sort((a, b) => b.fix.ts - a.fix.ts).map((x) => x.row);
    list.replaceChildren(...rows);
  }

  function stopReplay(): void {
    cancelAnimationFrame(frame);
    clock?.pause();
    playBtn.textContent = 'Play';
  }

  function tick(): void {
    if (!clock || !replayMarker) return;
    const t = clock.time();
    const p = positionAt(shown, t);
    chart.at(t);
    if (p) {
      replayMarker.setLatLng([p.lat, p.lon]);
      if (follow.checked) map.panTo([p.lat, p.lon], { animate: false });
    }
    slider.value = String(Math.round(((t - clock.start) / Math.max(1, clock.end - clock.start)) * 1000));
    clockText.textContent = new Date(t).toLocaleString();
    if (clock.done()) stopReplay();
    else if (clock.playing) frame = requestAnimationFrame(tick);
  }

  function clearTrack(): void {
    trackLayer?.remove();
    trackLayer = null;
    tripLayer = null;
    replayMarker = null;
    clock = null;
    track = shown = [];
    timeline.replaceChildren();
    deviceEvents.replaceChildren();
    timelineBox.hidden = chart.el.hidden = true;
  }

  /** Runs the replay (and the speed chart) over `fixes`. */
  function replayOver(fixes: Fix[]): void {
    stopReplay();
    shown = fixes;
    clock = new Clock(fixes[0].ts, fixes[fixes.length - 1].ts);
    clock.setSpeed(Number(speed.value));
    replayMarker?.setLatLng([fixes[0].lat, fixes[0].lon]);
    chart.set(fixes);
    chart.el.hidden = false;
    playBtn.disabled = slider.disabled = false;
    slider.value = '0';
    clockText.textContent = new Date(fixes[0].ts).toLocaleString();
  }

  /** A timeline entry picked: a trip is drawn on its own, summed up and made the replay; a
   * stay is shown where it was. */
  function pick(e: Entry, li: HTMLLIElement): void {
    for (const x of timeline.children) x.classList.toggle('picked', x === li);
    if (!trackLayer) return;
    if (e.kind === 'stay') {
      map.setView([e.stay.lat, e.stay.lon], Math.max(map.getZoom(), 15));
      return;
    }
    const t: Trip = e.trip;
    const fixes = track.filter((f) => f.ts >= t.start && f.ts <= t.end);
    if (fixes.length < 2) return;
    tripLayer?.remove();
    tripLayer = L.polyline(downsample(fixes, MAX_DRAWN).map((f) => [f.lat, f.lon] as [number, number]), {
      color: '#e8710a',
      weight: 6,
      className: 'trip-line',
    });
    trackLayer.addLayer(tripLayer);
    map.fitBounds(tripLayer.getBounds(), { padding: [30, 30], maxZoom: 17 });
    trackInfo.textContent = tripSummary(t);
    replayOver(fixes);
  }

  /** The range the controls ask for. */
  function rangeNow(): { since: number; until: number } {
    const now = Date.now();
    if (range.value === 'custom') {
      return {
        since: new Date(fromInput.value).getTime() || 0,
        until: new Date(toInput.value).getTime() || now + 86_400_000,
      };
    }
    if (range.value === 'day') {
      const since = new Date(`${dayInput.value}T00:00`).getTime() || now - 86_400_000;
      return { since, until: since + 86_400_000 - 1 };
    }
    const span = Number(range.value);
    return { since: span ? now - span : 0, until: now + 86_400_000 };
  }

  async function select(did: string): Promise<void> {
    selected = did;
    deleteBtn.hidden = false;
    stopReplay();
    for (const d of devices.values()) renderRow(d.fix, d.row);
    const { since, until } = rangeNow();
    trackInfo.textContent = 'Loading track…';
    shownRange = { since, until };
    const siteId = devices.get(did)?.fix.site || site;
    let loaded: Fix[];
    let day: { trips: Trip[]; stays: Stay[] };
    let crossed: FenceEvent[];
    try {
      [loaded, day, crossed] = await Promise.all([
        loadTrack(siteId, did, since, until),
        json<{ trips: Trip[]; stays: Stay[] }>(`/api/devices/${encodeURIComponent(did)}/trips?${q({ since, until }, siteId)}`),
        fences.forDevice(did, since, until),
      ]);
    } catch (e) {
      trackInfo.textContent = `${did}: ${e}`;
      return;
    }
    clearTrack();
    track = loaded;
    trackLayer = L.layerGroup().addTo(map);
    deviceEvents.replaceChildren(...crossed.map((e) => eventLine(e, false)));
    for (const e of crossed) {
      const m = L.circleMarker([e.lat, e.lon], { radius: 5, color: '#fff', weight: 2, fillOpacity: 1, fillColor: e.type === 'exit' ? '#b3261e' : '#2e7d32', className: `fence-event-marker ${e.type}` });
      m.bindTooltip(eventLine(e, false));
      trackLayer.addLayer(m);
    }
    gpxBtn.hidden = track.length === 0;
    if (track.length === 0) {
      trackInfo.textContent = `${did}: no positions in this range.`;
      playBtn.disabled = slider.disabled = true;
      return;
    }
    const drawn = downsample(track, MAX_DRAWN);
    const line = L.polyline(drawn.map((p) => [p.lat, p.lon] as [number, number]), { color: '#2a6fdb', weight: 4, className: 'track-line' });
    trackLayer.addLayer(line);
    for (const s of day.stays) {
      const m = L.circleMarker([s.lat, s.lon], { radius: 7, color: '#b3261e', fillColor: '#f2b8b5', fillOpacity: 0.9, className: 'stop-marker' });
      m.bindTooltip(`stayed ${Math.round((s.departure - s.arrival) / 60000)} min, from ${new Date(s.arrival).toLocaleTimeString()}`);
      trackLayer.addLayer(m);
    }
    replayMarker = L.marker([track[0].lat, track[0].lon], { icon: icon('', 'replay'), zIndexOffset: 1000 });
    trackLayer.addLayer(replayMarker);
    map.fitBounds(line.getBounds(), { padding: [30, 30], maxZoom: 17 });
    const n = day.stays.length;
    const km = day.trips.reduce((a, t) => a + t.distance_m, 0) / 1000;
    trackInfo.textContent =
      `${label(devices.get(did)?.fix ?? track[0])}: ${track.length} positions, ${n} stop${n === 1 ? '' : 's'}, ` +
      `${day.trips.length} trip${day.trips.length === 1 ? '' : 's'} (${km.toFixed(1)} km)` +
      (drawn.length < track.length ? `; drawn with ${drawn.length} points` : '');
    timeline.replaceChildren(...timelineItems(entries(day), pick));
    timelineBox.hidden = day.trips.length + day.stays.length === 0;
    replayOver(track);
  }

  gpxBtn.addEventListener('click', async () => {
    const did = selected;
    const known = did && devices.get(did);
    if (!did || !known) return;
    const path = `/api/devices/${encodeURIComponent(did)}/track?${q({ ...shownRange, format: 'gpx' }, known.fix.site || site)}`;
    try {
      await download(path, `${did.replace(/[^\w.@-]/g, '_')}.gpx`);
    } catch (e) {
      trackInfo.textContent = `${did}: download failed: ${e}`;
    }
  });

  deleteBtn.addEventListener('click', async () => {
    const did = selected;
    const known = did && devices.get(did);
    if (!did || !known) return;
    const path = `/api/devices/${encodeURIComponent(did)}?site=${encodeURIComponent(known.fix.site || site)}`;
    try {
      if (!(await removeAfterConfirm(path, `Delete device ${did} and all its positions? This cannot be undone.`))) return;
    } catch (e) {
      trackInfo.textContent = `${did}: delete failed: ${e}`;
      return;
    }
    stopReplay();
    clearTrack();
    cluster.removeLayer(known.marker);
    known.row.remove();
    devices.delete(did);
    showCount();
    selected = null;
    deleteBtn.hidden = gpxBtn.hidden = true;
    playBtn.disabled = slider.disabled = true;
    clockText.textContent = '';
    trackInfo.textContent = `${did} deleted.`;
  });

  playBtn.addEventListener('click', () => {
    if (!clock) return;
    if (clock.playing) return stopReplay();
    clock.play();
    playBtn.textContent = 'Pause';
    frame = requestAnimationFrame(tick);
  });
  speed.addEventListener('change', () => clock?.setSpeed(Number(speed.value)));
  slider.addEventListener('input', () => {
    if (!clock) return;
    clock.seek(clock.start + ((clock.end - clock.start) * Number(slider.value)) / 1000);
    tick();
  });
  range.addEventListener('change', () => {
    custom.hidden = range.value !== 'custom';
    dayPick.hidden = range.value !== 'day';
    if (selected) void select(selected);
  });
  for (const i of [fromInput, toInput, dayInput])
    i.addEventListener('change', () => {
      if (selected) void select(selected);
    });

  for (const d of initial) upsert(d);
  for (const d of pending) upsert(d);
  void fences.load();
  onLive = (p) => {
    upsert(p);
    if (p.did === selected && trackLayer && clock && !clock.playing && p.ts > clock.end && shown === track) {
      track.push(p);
      clock.end = p.ts;
      trackLayer.eachLayer((l) => {
        if (l instanceof L.Polyline && !(l instanceof L.CircleMarker)) l.addLatLng([p.lat, p.lon]);
      });
    }
  };
  ws.onclose = () => {
    status.textContent = 'Live updates stopped; reload to reconnect.';
  };
  if (devices.size > 0) {
    const b = L.latLngBounds([...devices.values()].map((d) => [d.fix.lat, d.fix.lon] as [number, number]));
    map.fitBounds(b, { padding: [40, 40], maxZoom: 14 });
  } else status.textContent = 'No devices yet: positions appear here as they arrive.';
  search.addEventListener('input', () => {
    for (const d of devices.values()) d.row.hidden = !matchesSearch(searchText(d.fix), search.value);
    showCount();
  });
  setInterval(() => {
    for (const d of devices.values()) {
      renderRow(d.fix, d.row);
      freshness(d);
    }
  }, 15_000);
}

void start();
