// The sessions list: newest first, filters, cursor paging, a live badge on active sessions.

import { json } from './api';
import { duration, h, link, shortUa } from './dom';

interface Summary {
  sid: string;
  site: string;
  did: string | null;
  started: number;
  last: number;
  duration_ms: number;
  events: number;
  clicks: number;
  rage_clicks: number;
  dead_clicks?: number;
  pages: string[];
  url: string | null;
  ua: string | null;
}

const LIVE_MS = 30_000;

const toLocal = (ms: string | null) => {
  if (!ms) return '';
  const d = new Date(+ms - new Date().getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};

/** How often the list reloads itself while *live now* is on. */
const LIVE_REFRESH_MS = 5000;

/** Renders the list; returns what stops its live refresh. */
export async function list(root: HTMLElement, go: (p: string) => void): Promise<() => void> {
  const q = new URLSearchParams(location.search);
  const liveOnly = q.get('live') === '1';
  const field = (name: string, type = 'text', value = q.get(name) || '', attrs = {}) =>
    h('input', { name, type, value, ...attrs });
  const since = field('since', 'datetime-local', toLocal(q.get('since')));
  const until = field('until', 'datetime-local', toLocal(q.get('until')));
  const form = h(
    'form',
    {
      class: 'filters',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const p = new URLSearchParams();
        const fd = new FormData(form);
        for (const [k, v] of fd) {
          if (!v) continue;
          if (k === 'since' || k === 'until') p.set(k, String(new Date(String(v)).getTime()));
          else if (k === 'min') p.set('min_duration', String(Number(v) * 1000));
          else p.set(k, String(v));
        }
        go('/?' + p);
      },
    },
    h('label', {}, 'Site ', field('site', 'text', q.get('site') || '', { placeholder: 'all', size: 8 })),
    h('label', {}, 'From ', since),
    h('label', {}, 'To ', until),
    h('label', {}, 'URL contains ', field('url', 'text', q.get('url') || '', { size: 16 })),
    h('label', {}, 'Device ', field('did', 'text', q.get('did') || '', { placeholder: 'any', size: 12 })),
    h('label', {}, 'Min duration (s) ', field('min', 'number', q.get('min_duration') ? String(+q.get('min_duration')! / 1000) : '', { min: 0, style: 'width:5em' })),
    h('label', {}, field('has_clicks', 'checkbox', 'true', { checked: q.get('has_clicks') === 'true' }), ' has clicks'),
    h('label', {}, field('has_rage', 'checkbox', 'true', { checked: q.get('has_rage') === 'true' }), ' has rage clicks'),
    h('label', { title: `sessions active in the last ${LIVE_MS / 1000} s, refreshed every ${LIVE_REFRESH_MS / 1000} s` }, field('live', 'checkbox', '1', { checked: liveOnly }), ' live now'),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const results = h('div', { class: 'results' });
  root.replaceChildren(h('h2', {}, 'Sessions'), form, results);
  const load = async (): Promise<void> => {
    const api = new URLSearchParams(q);
    api.delete('live');
    api.set('limit', '50');
    const now = Date.now();
    if (liveOnly) api.set('since', String(now - LIVE_MS));
    const page = await json<{ sessions: Summary[]; next: string | null }>('/api/sessions?' + api);
    results.replaceChildren(...table(page, q, now, liveOnly, go));
  };
  await load();
  if (!liveOnly) return () => {};
  let timer = 0;
  let stopped = false;
  const again = () => {
    timer = window.setTimeout(() => {
      // A failed refresh (server restarting) tries again at the next tick.
      load().catch(() => {}).finally(() => { if (!stopped) again(); });
    }, LIVE_REFRESH_MS);
  };
  again();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function table(page: { sessions: Summary[]; next: string | null }, q: URLSearchParams, now: number, liveOnly: boolean, go: (p: string) => void): HTMLElement[] {
  const rows = page.sessions.map((s) => {
    const path = `/sessions/${encodeURIComponent(s.sid)}?site=${encodeURIComponent(s.site)}`;
    const liveNow = now - s.last < LIVE_MS;
    return h(
      'tr',
      { 'data-sid': s.sid },
      h('td', {}, link(path, new Date(s.started).toLocaleString(), go), liveNow && h('span', { class: 'badge live' }, 'live')),
      h('td', {}, duration(s.duration_ms)),
      h('td', { class: 'pages', title: s.pages.join('\n') }, `${s.pages.length} `, h('span', { class: 'url' }, s.url || '')),
      h('td', { class: 'num' }, s.clicks, s.dead_clicks ? h('span', { class: 'dead', title: 'no visible reaction within 1 s' }, ` · ${s.dead_clicks} dead`) : ''),
      h('td', { class: 'num' + (s.rage_clicks ? ' rage' : '') }, s.rage_clicks),
      h('td', { class: 'did' }, s.did ? link(`/?did=${encodeURIComponent(s.did)}`, s.did, go) : ''),
      h('td', { class: 'ua', title: s.ua || '' }, shortUa(s.ua)),
      h('td', {}, s.site),
    );
  });
  const next = new URLSearchParams(q);
  if (page.next) next.set('after', page.next);
  const first = new URLSearchParams(q);
  first.delete('after');
  const empty = liveOnly ? 'Nobody is on the site right now; this list refreshes by itself.' : 'No sessions match. Open the demo page (/demo) to record one.';
  return [
    rows.length
      ? h(
          'table',
          { class: 'sessions' },
          h('thead', {}, h('tr', {}, ...['Start', 'Duration', 'Pages', 'Clicks', 'Rage', 'Device', 'Browser', 'Site'].map((t) => h('th', {}, t)))),
          h('tbody', {}, ...rows),
        )
      : h('p', { class: 'empty' }, empty),
    h('p', { class: 'paging' }, q.get('after') && link('/?' + first, 'First page', go), ' ', page.next && link('/?' + next, 'Next page →', go)),
  ];
}
