// Reading the embedding tag:
// <script async src="https://spoor.example.com/spoor.js" data-key="WRITE_KEY"
//         data-endpoint="…" data-gps="on" data-respect-privacy
//         data-move-ms="50" data-move-px="4" data-flush-ms="500" data-batch-events="100"
//         data-sample="0.25" data-click-text="off" data-replay="dom"
//         data-keep-query="utm_source,page">

export interface Config {
  key: string;
  endpoint: string;
  gps: boolean;
  respectPrivacy: boolean;
  moveMs: number;
  movePx: number;
  flushMs: number;
  batchEvents: number;
  /** Record the visible text of what was clicked (`data-click-text="off"`: selector only). */
  clickText: boolean;
  /** Share of sessions recorded, 0–1 (default 1: all). */
  sample: number;
  /** Full-page replay asked for (`data-replay="dom"`; the site must allow it too). */
  dom: boolean;
  /** Query parameters kept in recorded URLs (all others, and the fragment, are dropped). */
  keep: string[];
}

const num = (v: string | undefined, d: number): number => (v && isFinite(+v) ? +v : d);

export function readConfig(script: HTMLScriptElement | null): Config | null {
  const d = script?.dataset;
  if (!d?.key) return null;
  const dom = d.replay === 'dom';
  return {
    key: d.key,
    endpoint: d.endpoint || new URL(script!.src, location.href).origin,
    gps: d.gps === 'on',
    respectPrivacy: 'respectPrivacy' in d,
    moveMs: num(d.moveMs, 50),
    movePx: num(d.movePx, 4),
    flushMs: num(d.flushMs, 500),
    batchEvents: num(d.batchEvents, 100),
    // Full-page replay masks page text, so its clicks carry no text either.
    clickText: d.clickText !== 'off' && !dom,
    sample: Math.min(1, Math.max(0, num(d.sample, 1))),
    dom,
    keep: (d.keepQuery || '').split(',').map((k) => k.trim()),
  };
}

/** Global Privacy Control or Do Not Track is on. */
export function optedOut(): boolean {
  const n = navigator as any;
  return n.globalPrivacyControl === true || n.doNotTrack === '1' || (window as any).doNotTrack === '1';
}

/** Whether this tab's session is one of the sampled ones. Decided once per session and kept
 * in sessionStorage, so a session is recorded across its pages or not at all. */
export function sampledIn(key: string, rate: number, rand: () => number = Math.random): boolean {
  if (rate >= 1) return true;
  const k = key + ':sample';
  try {
    const kept = sessionStorage.getItem(k);
    if (kept) return kept === '1';
  } catch {
    // No storage: decide for this page alone.
  }
  const yes = rand() < rate;
  try {
    sessionStorage.setItem(k, yes ? '1' : '0');
  } catch {
    // Not kept.
  }
  return yes;
}
