// The session player: draws the recorded viewport to scale on a canvas (cursor with a fading
// trail, click ripples, scroll position, hidden-tab gaps), shows the current URL and title,
// and drives a timeline with page, click and rage-click markers. It streams the events and
// starts playing with the first chunk; it can follow a live session over its WebSocket.
// The clock runs on requestAnimationFrame with a speed factor; late events are inserted in
// time order by binary search.

import { ActivityLog, LOGGED } from './activity';
import { Chunk, download, json, live, removeAfterConfirm, stream } from './api';
import { duration, h, link, shortUa } from './dom';
import { DomView } from './domview';
import { drawWireframe } from './wireframe';
import { advance, clock, Timeline, upto } from './timeline';
import { Kind } from '../../js-snippet/src/protocol';

interface Ev {
  t: number;
  k: number;
  f: unknown[];
  rage?: boolean;
}

const TRAIL_MS = 1000;
const RIPPLE_MS = 600;
const SEEK_MS = 5000;

/** Inserts keeping `arr` sorted by time (appending is the common case). */
function insert(arr: Ev[], e: Ev): void {
  if (!arr.length || arr[arr.length - 1].t <= e.t) arr.push(e);
  else arr.splice(upto(arr, e.t), 0, e);
}

const last = (arr: Ev[], t: number): Ev | undefined => arr[upto(arr, t) - 1];

class Recording {
  all: Ev[] = [];
  pointer: Ev[] = []; // moves, clicks, touches: where the cursor is
  clicks: Ev[] = [];
  scrolls: Ev[] = [];
  resizes: Ev[] = [];
  pages: Ev[] = [];
  vis: Ev[] = [];
  layouts: Ev[] = [];
  log: Ev[] = []; // what the activity log lists
  seen = new Set<number>();
  maxScroll = 0;
  /** Full-page replay (kind 11), when the site recorded it. */
  dom = new DomView();

  add(c: Chunk): boolean {
    if (this.seen.has(c.seq)) return false;
    this.seen.add(c.seq);
    const rage = new Set(c.rage || []);
    c.ev.forEach((row, i) => {
      const e: Ev = { t: c.t0 + (row[1] as number), k: row[0] as number, f: row.slice(2), rage: rage.has(i) };
      insert(this.all, e);
      if (e.k === Kind.Move || e.k === Kind.Click || e.k === Kind.Touch) insert(this.pointer, e);
      if (e.k === Kind.Click) insert(this.clicks, e);
      if (e.k === Kind.Scroll) {
        insert(this.scrolls, e);
        this.maxScroll = Math.max(this.maxScroll, Number(e.f[1]) || 0);
      }
      if (e.k === Kind.Resize) insert(this.resizes, e);
      if (e.k === Kind.Page) insert(this.pages, e);
      if (e.k === Kind.Visibility) insert(this.vis, e);
      if (e.k === Kind.Layout) insert(this.layouts, e);
      if (e.k === Kind.Dom) this.dom.add(e.f);
      if (LOGGED.has(e.k)) insert(this.log, e);
    });
    return true;
  }
}

interface Summary {
  sid: string;
  site: string;
  did: string | null;
  url: string | null;
  title: string | null;
  vw: number | null;
  vh: number | null;
  dpr: number | null;
  tz: string | null;
  lang: string | null;
  ua: string | null;
  ref: string | null;
  started: number;
  last: number;
  duration_ms: number;
  pages: string[];
  clicks: number;
  rage_clicks: number;
}

/** The session at a glance: when, how long, who (browser, screen, place), from where. */
function details(s: Summary, go: (p: string) => void): HTMLElement {
  let from = '';
  try {
    from = s.ref ? new URL(s.ref).host : '';
  } catch {
    from = '';
  }
  const parts: (Node | string)[] = [
    new Date(s.started).toLocaleString(),
    duration(s.duration_ms),
    `${s.pages.length} page${s.pages.length === 1 ? '' : 's'}`,
    `${s.clicks} click${s.clicks === 1 ? '' : 's'}${s.rage_clicks ? ` (${s.rage_clicks} rage)` : ''}`,
    shortUa(s.ua),
    s.vw && s.vh ? `${s.vw}×${s.vh}${s.dpr && s.dpr !== 1 ? ` @${s.dpr}x` : ''}` : '',
    [s.tz, s.lang].filter(Boolean).join(', '),
    from && `from ${from}`,
  ].filter((x) => x !== '');
  if (s.did) parts.push(link(`/?did=${encodeURIComponent(s.did)}`, `device ${s.did}`, go));
  const el = h('div', { class: 'details' });
  parts.forEach((p, i) => el.append(...(i ? [' · ', p] : [p])));
  return el;
}

export async function player(root: HTMLElement, sid: string, site: string, go: (p: string) => void): Promise<() => void> {
  const summary = await json<Summary>(`/api/sessions/${encodeURIComponent(sid)}?site=${encodeURIComponent(site)}`);
  const params = new URLSearchParams(location.search);
  const rec = new Recording();
  let tl = new Timeline([], true);
  let play = 0;
  let playing = !params.has('t');
  let speed = 1;
  let skip = true;
  let following = false;
  let stopLive: (() => void) | null = null;
  let dirty = true;
  let frame = 0;
  let lastFrame = performance.now();

  const title = h('div', { class: 'title' });
  const url = h('div', { class: 'url' });
  const heat = h('span', { class: 'heatlink' });
  const canvas = h('canvas', { class: 'stage', width: 960, height: 560 });
  const time = h('span', { class: 'time' }, '0:00');
  const playBtn = h('button', { class: 'play', onclick: () => toggle() }, 'Pause');
  const speedSel = h(
    'select',
    { class: 'speed', onchange: () => (speed = Number(speedSel.value)) },
    ...[1, 2, 4, 8].map((s) => h('option', { value: s }, `${s}×`)),
  );
  const skipBox = h('input', { type: 'checkbox', checked: true, onchange: () => { skip = skipBox.checked; dirty = true; } });
  const liveBtn = h('button', { class: 'live', onclick: () => (following ? unfollow() : follow()) }, 'Follow live');
  const track = h('div', { class: 'track' });
  const progress = h('div', { class: 'progress' });
  const bar = h('div', { class: 'timeline', onclick: (e: MouseEvent) => {
    const r = bar.getBoundingClientRect();
    seek(((e.clientX - r.left) / r.width) * tl.duration);
  } }, track, progress);
  const deleteBtn = h('button', { type: 'button', class: 'danger', onclick: async () => {
    const path = `/api/sessions/${encodeURIComponent(sid)}?site=${encodeURIComponent(site)}`;
    try {
      if (!(await removeAfterConfirm(path, `Delete session ${sid} and everything recorded in it? This cannot be undone.`))) return;
    } catch (e) {
      deleteBtn.replaceWith(h('span', { class: 'error' }, `Delete failed: ${e}`));
      return;
    }
    go('/');
  } }, 'Delete session');
  const log = new ActivityLog((t) => seek(tl.toPlay(t)));
  // Page (full-page replay) or wireframe, when the session has both; page first.
  let view: 'page' | 'wireframe' = params.get('view') === 'wireframe' ? 'wireframe' : 'page';
  const viewSel = h(
    'select',
    { class: 'view', hidden: true, title: 'what the stage shows', onchange: () => (view = viewSel.value as typeof view) },
    h('option', { value: 'page' }, 'Page'),
    h('option', { value: 'wireframe' }, 'Wireframe'),
  ) as HTMLSelectElement;
  viewSel.value = view;
  const rrwebBtn = h('button', { type: 'button', class: 'export', hidden: true, title: 'the rrweb events, for rrweb-player' }, 'Download rrweb JSON');
  rrwebBtn.addEventListener('click', () => {
    const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(rec.dom.events)], { type: 'application/json' })), download: `${sid}.rrweb.json` });
    document.body.append(a);
    a.click();
    a.remove();
  });
  const exportBtn = h('button', { type: 'button', class: 'export', title: 'every recorded batch, one JSON object a line' }, 'Download events');
  exportBtn.addEventListener('click', () => {
    const path = `/api/sessions/${encodeURIComponent(sid)}/events?site=${encodeURIComponent(site)}`;
    download(path, `${sid}.ndjson`).catch((e) => exportBtn.replaceWith(h('span', { class: 'error' }, `Download failed: ${e}`)));
  });
  root.replaceChildren(
    h(
      'div',
      { class: 'player' },
      h('p', { class: 'crumbs' }, link('/', '← Sessions', go), h('span', { class: 'actions' }, exportBtn, ' ', rrwebBtn, ' ', deleteBtn)),
      h('div', { class: 'meta' }, title, url, details(summary, go), heat),
      h('div', { class: 'stage-row' }, canvas, rec.dom.el, h('div', { class: 'log-wrap' }, log.el)),
      h('div', { class: 'controls' }, playBtn, time, speedSel, h('label', {}, skipBox, ' skip inactivity'), liveBtn, viewSel),
      bar,
      h('p', { class: 'help' }, 'Space: play/pause · ← →: 5 s back/forward · click a line of the log to jump there'),
    ),
  );

  const toggle = () => {
    playing = !playing;
    if (playing && play >= tl.duration && !following) play = 0;
  };
  const seek = (p: number) => {
    play = Math.max(0, Math.min(tl.duration, p));
    if (following) unfollow();
  };
  const follow = () => {
    following = true;
    playing = true;
    liveBtn.textContent = 'Following live';
    liveBtn.classList.add('on');
    stopLive = live(sid, site, (c) => { if (rec.add(c)) dirty = true; }, () => unfollow());
  };
  const unfollow = () => {
    following = false;
    liveBtn.textContent = 'Follow live';
    liveBtn.classList.remove('on');
    stopLive?.();
    stopLive = null;
  };
  const onKey = (e: KeyboardEvent) => {
    if ((e.target as HTMLElement).tagName === 'INPUT' || (e.target as HTMLElement).tagName === 'SELECT') return;
    if (e.key === ' ') { e.preventDefault(); toggle(); }
    else if (e.key === 'ArrowLeft') seek(play - SEEK_MS);
    else if (e.key === 'ArrowRight') seek(play + SEEK_MS);
  };
  document.addEventListener('keydown', onKey);

  /** Rebuilds the timeline and its markers from what has arrived. */
  const rebuild = () => {
    const realBefore = tl.duration ? tl.toReal(play) : 0;
    tl = new Timeline(rec.all.map((e) => e.t), skip);
    if (realBefore) play = tl.toPlay(realBefore);
    const pct = (t: number) => `${(tl.duration ? tl.toPlay(t) / tl.duration : 0) * 100}%`;
    const marks: HTMLElement[] = tl.segments
      .filter((s) => s.skipped)
      .map((s) => h('div', { class: 'skipped', style: `left:${pct(s.start)};width:${(s.length / Math.max(1, tl.duration)) * 100}%`, title: 'inactivity skipped' }));
    // One mark per kind and thousandth of the bar: a session of 100,000 clicks draws at most
    // a thousand of them, which look the same.
    const taken = new Set<string>();
    const mark = (e: Ev, cls: string, title = '') => {
      const at = Math.round((tl.duration ? tl.toPlay(e.t) / tl.duration : 0) * 1000);
      if (taken.has(cls + at)) return;
      taken.add(cls + at);
      marks.push(h('div', { class: `mark ${cls}`, style: `left:${at / 10}%`, title }));
    };
    for (const e of rec.pages) mark(e, 'page', String(e.f[0] ?? ''));
    for (const e of rec.clicks) mark(e, e.rage ? 'rage' : 'click');
    track.replaceChildren(...marks);
    log.render(rec.log, rec.all.length ? rec.all[0].t : 0);
    dirty = false;
  };

  const draw = () => {
    const real = tl.toReal(play);
    const page = rec.dom.ready && view === 'page';
    viewSel.hidden = rrwebBtn.hidden = !rec.dom.ready;
    canvas.hidden = page;
    rec.dom.el.hidden = !page;
    if (page) rec.dom.sync(real, playing || following, speed);
    else if (rec.dom.ready && !pausedDom) rec.dom.sync(real, false, speed); // once, on leaving
    pausedDom = !page;
    const pageRow = last(rec.pages, real);
    const pageUrl = String(pageRow?.f[0] ?? summary.url ?? '');
    title.textContent = String(pageRow?.f[1] ?? summary.title ?? '');
    url.textContent = pageUrl;
    canvas.dataset.url = pageUrl;
    if (heat.dataset.url !== pageUrl) {
      heat.dataset.url = pageUrl;
      heat.replaceChildren(pageUrl ? link(`/heatmap?site=${encodeURIComponent(site)}&url=${encodeURIComponent(pageUrl)}`, 'Heatmap of this page', go) : '');
    }
    const size = last(rec.resizes, real);
    const vw = Number(size?.f[0] ?? summary.vw ?? 1280) || 1280;
    const vh = Number(size?.f[1] ?? summary.vh ?? 720) || 720;
    const g = canvas.getContext('2d')!;
    const W = canvas.width;
    const H = canvas.height;
    const s = Math.min((W - 40) / vw, (H - 40) / vh);
    const ox = (W - vw * s) / 2;
    const oy = (H - vh * s) / 2;
    g.fillStyle = '#e9edf2';
    g.fillRect(0, 0, W, H);
    g.fillStyle = '#fff';
    g.strokeStyle = '#b8c2cc';
    g.fillRect(ox, oy, vw * s, vh * s);
    g.strokeRect(ox, oy, vw * s, vh * s);
    g.fillStyle = '#8a96a3';
    g.font = '12px sans-serif';
    g.fillText(`${vw}×${vh}`, ox, oy - 6);
    // Scroll position: a thumb on the right edge over the page height seen so far.
    const scroll = last(rec.scrolls, real);
    const sy = Number(scroll?.f[1] ?? 0);
    const docH = Math.max(vh, rec.maxScroll + vh);
    g.fillStyle = '#dde3ea';
    g.fillRect(ox + vw * s - 8, oy, 8, vh * s);
    g.fillStyle = '#7d8b99';
    g.fillRect(ox + vw * s - 8, oy + (sy / docH) * vh * s, 8, Math.max(6, (vh / docH) * vh * s));
    canvas.dataset.scroll = String(sy);
    const X = (x: unknown) => ox + Number(x) * s;
    const Y = (y: unknown) => oy + Number(y) * s;
    // The page's wireframe under everything else: the newest snapshot since this page began,
    // or, early on, the page's first one (it is taken a moment after the page loads).
    let layout = last(rec.layouts, real);
    if (!layout || (pageRow && layout.t < pageRow.t)) {
      const next = rec.layouts[upto(rec.layouts, real)];
      const nextPage = rec.pages[upto(rec.pages, real)];
      layout = next && (!nextPage || next.t < nextPage.t) ? next : undefined;
    }
    if (layout) {
      const sx = Number(scroll?.f[0] ?? 0);
      g.save();
      g.beginPath();
      g.rect(ox, oy, vw * s - 8, vh * s);
      g.clip();
      drawWireframe(g, layout.f[2] as unknown[][], (x) => ox + (x - sx) * s, (y) => oy + (y - sy) * s, s);
      g.restore();
      canvas.dataset.wireframe = String((layout.f[2] as unknown[]).length);
    } else delete canvas.dataset.wireframe;
    // Trail: the last second of pointer positions, fading with age.
    const end = upto(rec.pointer, real);
    let i = end - 1;
    while (i > 0 && rec.pointer[i - 1].t >= real - TRAIL_MS) i--;
    for (let j = Math.max(i, 1); j < end; j++) {
      const a = rec.pointer[j - 1];
      const b = rec.pointer[j];
      g.strokeStyle = `rgba(220,40,40,${0.6 * (1 - (real - b.t) / TRAIL_MS)})`;
      g.lineWidth = 2;
      g.beginPath();
      g.moveTo(X(a.f[0]), Y(a.f[1]));
      g.lineTo(X(b.f[0]), Y(b.f[1]));
      g.stroke();
    }
    // Click ripples.
    for (let j = upto(rec.clicks, real) - 1; j >= 0 && rec.clicks[j].t >= real - RIPPLE_MS; j--) {
      const c = rec.clicks[j];
      const age = (real - c.t) / RIPPLE_MS;
      g.strokeStyle = c.rage ? `rgba(230,0,0,${1 - age})` : `rgba(30,90,230,${1 - age})`;
      g.lineWidth = c.rage ? 4 : 3;
      g.beginPath();
      g.arc(X(c.f[0]), Y(c.f[1]), 6 + age * 24, 0, 2 * Math.PI);
      g.stroke();
    }
    const cur = rec.pointer[end - 1];
    if (cur) {
      const cx = X(cur.f[0]);
      const cy = Y(cur.f[1]);
      g.fillStyle = '#e02020';
      g.strokeStyle = '#fff';
      g.lineWidth = 2;
      g.beginPath();
      g.arc(cx, cy, 7, 0, 2 * Math.PI);
      g.fill();
      g.stroke();
      canvas.dataset.cursor = `${Math.round(cx)},${Math.round(cy)}`;
      canvas.dataset.rec = `${cur.f[0]},${cur.f[1]}`;
    }
    const visible = last(rec.vis, real);
    if (visible && visible.f[0] === false) {
      g.fillStyle = 'rgba(20,30,40,0.55)';
      g.fillRect(ox, oy, vw * s, vh * s);
      g.fillStyle = '#fff';
      g.font = '20px sans-serif';
      g.fillText('Tab hidden', ox + 20, oy + 40);
    }
    log.at(real);
    time.textContent = `${clock(play)} / ${clock(tl.duration)}`;
    progress.style.width = `${tl.duration ? (play / tl.duration) * 100 : 0}%`;
    playBtn.textContent = playing ? 'Pause' : 'Play';
  };

  let lastRebuild = 0;
  let pausedDom = false;
  const tick = (now: number) => {
    if (dirty && now - lastRebuild > 250) {
      lastRebuild = now;
      rebuild();
    }
    if (following) play = tl.duration;
    else if (playing) {
      play = advance(play, now - lastFrame, speed, tl.duration);
      if (play >= tl.duration && rec.all.length && !streaming) playing = false;
    }
    lastFrame = now;
    draw();
    frame = requestAnimationFrame(tick);
  };

  let streaming = true;
  const seekTo = params.get('t');
  stream(`/api/sessions/${encodeURIComponent(sid)}/events?site=${encodeURIComponent(site)}`, (c) => {
    if (rec.add(c)) dirty = true;
  })
    .then(() => {
      streaming = false;
      rebuild();
      if (seekTo !== null) play = tl.toPlay(tl.start + Number(seekTo) * 1000);
      if (params.get('live') === '1') follow();
    })
    .catch(() => (streaming = false));
  frame = requestAnimationFrame(tick);

  return () => {
    cancelAnimationFrame(frame);
    rec.dom.destroy();
    document.removeEventListener('keydown', onKey);
    stopLive?.();
  };
}
