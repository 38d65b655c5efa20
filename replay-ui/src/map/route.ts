// Route logic of the location dashboard, free of Leaflet and the DOM so it is unit-tested:
// where a device was at a moment (interpolated between fixes), a long track thinned for
// drawing, its speeds for the chart, and the replay clock that runs over the track's real
// time gaps at 1–60×. Where it stopped is the server's answer (`/trips`), not computed here.

export interface Fix {
  did: string;
  /** The name as typed in the app, when the id was derived from it. */
  name?: string | null;
  lat: number;
  lon: number;
  ts: number;
  speed_mps?: number | null;
  heading_deg?: number | null;
  accuracy_m?: number | null;
  altitude_m?: number | null;
  battery?: number | null;
  source?: string;
  site?: string;
}

const R = 6371008.8;

/** Great-circle distance in metres. */
export function distance(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(h));
}

/** The index of the last fix at or before `t` (-1 if `t` is before the first). */
export function indexAt(track: Fix[], t: number): number {
  let lo = 0;
  let hi = track.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (track[mid].ts <= t) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Where the device was at `t`: linear between the fixes around it, clamped at the ends. */
export function positionAt(track: Fix[], t: number): { lat: number; lon: number } | null {
  if (track.length === 0) return null;
  const i = indexAt(track, t);
  if (i < 0) return { lat: track[0].lat, lon: track[0].lon };
  if (i >= track.length - 1) return { lat: track[i].lat, lon: track[i].lon };
  const a = track[i];
  const b = track[i + 1];
  const f = b.ts === a.ts ? 0 : (t - a.ts) / (b.ts - a.ts);
  return { lat: a.lat + (b.lat - a.lat) * f, lon: a.lon + (b.lon - a.lon) * f };
}

/**
 * At most `max` fixes for drawing a long range: every k-th fix, the first and the last
 * always kept. Replay and the speed chart keep using every fix.
 */
export function downsample(track: Fix[], max: number): Fix[] {
  if (track.length <= max) return track;
  const step = Math.ceil(track.length / (max - 1));
  const out: Fix[] = [];
  for (let i = 0; i < track.length - 1; i += step) out.push(track[i]);
  out.push(track[track.length - 1]);
  return out;
}

/**
 * Speed over time for a chart `columns` wide: the app's speed where a fix has one, else the
 * step's (distance over time since the previous fix); the fastest of each column's fixes.
 */
export function speedSeries(track: Fix[], columns: number): { t: number; v: number }[] {
  if (track.length === 0) return [];
  const start = track[0].ts;
  const span = Math.max(1, track[track.length - 1].ts - start);
  const out: { t: number; v: number }[] = [];
  let col = -1;
  for (let i = 0; i < track.length; i++) {
    const f = track[i];
    const prev = track[i - 1];
    const dt = prev ? (f.ts - prev.ts) / 1000 : 0;
    const v = f.speed_mps ?? (prev && dt >= 1 ? distance(prev, f) / dt : 0);
    const c = Math.floor(((f.ts - start) / span) * (columns - 1));
    if (c !== col) {
      out.push({ t: f.ts, v });
      col = c;
    } else if (v > out[out.length - 1].v) out[out.length - 1].v = v;
  }
  return out;
}

export class Clock {
  private base: number;
  private since: number | null = null;
  speed = 1;

  constructor(public start: number, public end: number, private now: () => number = () => performance.now()) {
    this.base = start;
  }

  get playing(): boolean {
    return this.since !== null;
  }

  time(): number {
    if (this.since === null) return this.base;
    return Math.min(this.end, this.base + (this.now() - this.since) * this.speed);
  }

  play(): void {
    if (this.time() >= this.end) this.base = this.start;
    this.since = this.now();
  }

  pause(): void {
    this.base = this.time();
    this.since = null;
  }

  seek(t: number): void {
    this.base = Math.max(this.start, Math.min(this.end, t));
    if (this.since !== null) this.since = this.now();
  }

  setSpeed(s: number): void {
    this.base = this.time();
    if (this.since !== null) this.since = this.now();
    this.speed = Math.max(1, Math.min(60, s));
  }

  done(): boolean {
    return this.time() >= this.end;
  }
}

/** A device not heard from for this long is drawn greyed out: parked, switched off or out
 * of coverage. */
export const STALE_MS = 3_600_000;

export function isStale(ts: number, now: number = Date.now()): boolean {
  return now - ts > STALE_MS;
}

/** Whether a device id matches the list's search text (case-insensitive substring). */
export function matchesSearch(did: string, text: string): boolean {
  return did.toLowerCase().includes(text.trim().toLowerCase());
}

/** "3 min ago", for the device list. */
export function ago(ts: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
