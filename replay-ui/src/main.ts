// The replay viewer's entry: a tiny router over the routes DESIGN.md fixes (`/` sessions,
// `/sessions/{sid}?site=` player; `/map` is its own page) plus `/heatmaps?site=` (the pages)
// and `/heatmap?site=&url=`, and the
// read-token prompt shown once, or again after a 401.

import { setToken, token, Unauthorized } from './api';
import { h, link } from './dom';
import { heatmap } from './heatmap';
import { pages } from './pages';
import { askToken as askTokenForm } from './token';
import { list } from './list';
import { player } from './player';

const root = document.getElementById('app')!;
const nav = document.getElementById('nav')!;
let cleanup: (() => void) | void;

function go(path: string): void {
  history.pushState(null, '', path);
  route();
}

function askToken(message: string): void {
  askTokenForm(root, message, () => void route());
}

/** Counts navigations, so a view that finishes loading after the next one began is stopped
 * at once instead of left running (a live list polling, a player following live). */
let navigation = 0;

async function route(): Promise<void> {
  cleanup?.();
  cleanup = undefined;
  const mine = ++navigation;
  const keep = (stop: () => void): void => {
    if (mine === navigation) cleanup = stop;
    else stop();
  };
  const path = location.pathname;
  nav.replaceChildren(
    link('/', 'Sessions', go),
    link('/heatmaps', 'Heatmaps', go),
    // The dashboard is its own page (it bundles Leaflet): a plain link.
    h('a', { href: '/map' }, 'Map'),
  );
  for (const a of nav.querySelectorAll('a')) if (a.getAttribute('href') === path) a.classList.add('here');
  if (!token()) return askToken('spoor printed the viewer URL with its token when it started; paste the token here.');
  const site = new URLSearchParams(location.search).get('site') || '';
  // Each navigation draws into its own element: a view still loading when the next one
  // begins can only write into its own, detached one.
  const view = h('div', { class: 'view' });
  root.replaceChildren(view);
  try {
    const m = path.match(/^\/sessions\/([\w-]+)$/);
    if (m) keep(await player(view, m[1], site, go));
    else if (path === '/heatmap') await heatmap(view, site, new URLSearchParams(location.search).get('url') || '');
    else if (path === '/heatmaps') await pages(view, site, go);
    else keep(await list(view, go));
  } catch (e) {
    if (mine !== navigation) return;
    if (e instanceof Unauthorized) {
      setToken(null);
      askToken('That token was not accepted. Paste the read token again.');
    } else view.replaceChildren(h('p', { class: 'error' }, String(e)));
  }
}

window.addEventListener('popstate', () => void route());
void route();
