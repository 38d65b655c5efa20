// spoor's browser snippet. Reads its tag, honours privacy signals when asked to, restores the
// session from sessionStorage, starts the collectors and the transport, and replays calls
// queued before it loaded (`spoor('event'|'identify'|'stop', …)`).

import { gps } from './collectors/gps';
import { inputs } from './collectors/input';
import { layouts } from './collectors/layout';
import { pages } from './collectors/page';
import { pointer } from './collectors/pointer';
import { Emit } from './collectors/types';
import { viewport } from './collectors/viewport';
import { optedOut, readConfig, sampledIn } from './config';
import { Outbox, Saved } from './outbox';
import { Kind } from './protocol';
import { now, on, safe, Teardown } from './safe';
import { Transport } from './transport';
import { cleanUrl } from './url';

type Call = [string, ...unknown[]];

const w = window as any;
const script = document.currentScript as HTMLScriptElement | null;

/** 16 random characters of [A-Za-z0-9_-] (96 bits, base64url). */
function id(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(12)))).replace(/[+/]/g, (c) => (c == '+' ? '-' : '_'));
}

function load(k: string): Saved | null {
  try {
    return JSON.parse(sessionStorage.getItem(k) || 'null');
  } catch {
    return null;
  }
}

function start(): void {
  const cfg = readConfig(script);
  const queued: Call[] = (w.spoor && w.spoor.q) || [];
  if (!cfg || (cfg.respectPrivacy && optedOut()) || !sampledIn('spoor:' + cfg.key, cfg.sample)) {
    w.spoor = () => {};
    return;
  }
  const store = 'spoor:' + cfg.key;
  const saved = load(store);
  let did: string | undefined;
  try {
    did = localStorage.getItem('spoor:did') || undefined;
  } catch {
    // Storage can be blocked; a session without a device id is fine.
  }
  const box = new Outbox(saved?.sid || id(), saved?.seq, saved?.unacked);
  const persist = safe(() => sessionStorage.setItem(store, JSON.stringify(box.save())));
  const hello = () => ({
    sid: box.sid,
    did,
    url: cleanUrl(location.href, cfg.keep),
    ref: cleanUrl(document.referrer, cfg.keep),
    title: document.title,
    vw: innerWidth,
    vh: innerHeight,
    dpr: devicePixelRatio,
    tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
    lang: navigator.language,
  });
  const t = new Transport(cfg.endpoint, cfg.key, hello, box, persist);
  let layout: ReturnType<typeof layouts> | undefined;
  const emit: Emit = (kind, ...fields) => {
    box.add(kind, fields, now());
    if (kind === Kind.Page) layout?.page();
    if (box.pending >= cfg.batchEvents) t.flush(now());
  };
  layout = layouts(emit);
  const hide = (): void => {
    t.beacon(now());
    persist();
  };
  const offs: Teardown[] = [
    layout.stop,
    pages(emit, cfg.keep),
    pointer(emit, cfg),
    viewport(emit, 100),
    inputs(emit),
    on(window, 'pagehide', hide),
    on(document, 'visibilitychange', () => document.hidden && hide()),
  ];
  if (cfg.gps) offs.push(gps(emit));
  // Full-page replay: asked for by the page (data-replay="dom"), allowed by the site (else
  // the server answers dom_disabled), and consented to (`spoor('consent', false)` stops it).
  // The recorder is a second script, loaded only here.
  let consent = true;
  let refused = false;
  let stopDom: Teardown | undefined;
  const dom = (): void => {
    if (!cfg.dom || !consent || refused || stopDom) return;
    if (!w.__spoorDom) {
      if (!w.__spoorDomReady) document.head.append(Object.assign(document.createElement('script'), { src: cfg.endpoint + '/spoor-dom.js' }));
      w.__spoorDomReady = safe(dom);
      return;
    }
    // The recorder emits kind-11 rows itself, and flushes after large ones so that a batch
    // stays well under the frame limit.
    stopDom = w.__spoorDom(emit, () => t.flush(now()));
  };
  const undom = (): void => {
    stopDom?.();
    stopDom = undefined;
  };
  t.domRefused = () => {
    refused = true;
    undom();
    box.strip(Kind.Dom);
  };
  offs.push(undom);
  const timer = setInterval(safe(() => t.flush(now())), cfg.flushMs);
  t.flush(now());

  w.spoor = safe((cmd: string, a?: unknown, b?: unknown) => {
    if (cmd === 'event' && typeof a === 'string') emit(Kind.Custom, a, b ?? null);
    else if (cmd === 'identify' && typeof a === 'string' && /^[\w-]{1,64}$/.test(a)) {
      did = a;
      try {
        localStorage.setItem('spoor:did', a);
      } catch {
        // Not persisted; this page still uses it.
      }
      emit(Kind.Custom, 'identify', { did: a });
    } else if (cmd === 'consent') {
      consent = a !== false;
      consent ? dom() : undom();
    } else if (cmd === 'stop') {
      t.flush(now());
      t.beacon(now());
      clearInterval(timer);
      offs.forEach((f) => f());
      setTimeout(() => t.stop(), 2000);
    }
  });
  queued.forEach((c) => w.spoor(...c));
  // After the queued calls: a consent refused before this script loaded is already known.
  dom();
}

safe(start)();
