// The heatmaps' index: the pages of the newest sessions, most visited first, each linking to
// its heatmap. Page keys are the site's URL rules at work (`/product/*` is one row).

import { json } from './api';
import { h, link } from './dom';

interface Pages {
  site: string;
  pages: { page: string; sessions: number }[];
  sampled: number;
  complete: boolean;
}

export async function pages(root: HTMLElement, site: string, go: (p: string) => void): Promise<void> {
  const form = h(
    'form',
    { class: 'filters', onsubmit: (e: Event) => { e.preventDefault(); go('/heatmaps?' + new URLSearchParams(new FormData(form) as unknown as Record<string, string>)); } },
    h('label', {}, 'Site ', h('input', { name: 'site', value: site, placeholder: 'the only one', size: 10 })),
    h('button', { type: 'submit' }, 'Show'),
  );
  const api = new URLSearchParams();
  if (site) api.set('site', site);
  const res = await json<Pages>(`/api/pages?${api}`);
  const heat = (page: string) => `/heatmap?${new URLSearchParams({ site: res.site, url: page })}`;
  root.replaceChildren(
    h('h2', {}, 'Heatmaps'),
    form,
    h('p', { class: 'help' }, `Pages of ${res.complete ? 'all' : 'the newest'} ${res.sampled} sessions of ${res.site}, most visited first. Open one for its click and scroll maps.`),
    res.pages.length
      ? h(
          'table',
          { class: 'elements pages' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Page'), h('th', {}, 'Sessions'))),
          h('tbody', {}, ...res.pages.map((p) => h('tr', { 'data-page': p.page }, h('td', { class: 'sel' }, link(heat(p.page), p.page, go)), h('td', { class: 'num' }, p.sessions)))),
        )
      : h('p', { class: 'empty' }, 'No sessions yet.'),
  );
}
