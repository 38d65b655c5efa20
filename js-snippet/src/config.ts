// Reading the embedding tag:
// <script async src="https://spoor.example.com/spoor.js" data-key="WRITE_KEY"
//         data-endpoint="…" data-gps="on" data-respect-privacy
//         data-move-ms="50" data-move-px="4" data-flush-ms="500" data-batch-events="100">

export interface Config {
  key: string;
  endpoint: string;
  gps: boolean;
  respectPrivacy: boolean;
  moveMs: number;
  movePx: number;
  flushMs: number;
  batchEvents: number;
}

const num = (v: string | undefined, d: number): number => (v && isFinite(+v) ? +v : d);

export function readConfig(script: HTMLScriptElement | null): Config | null {
  const d = script?.dataset;
  if (!d?.key) return null;
  return {
    key: d.key,
    endpoint: d.endpoint || new URL(script!.src, location.href).origin,
    gps: d.gps === 'on',
    respectPrivacy: 'respectPrivacy' in d,
    moveMs: num(d.moveMs, 50),
    movePx: num(d.movePx, 4),
    flushMs: num(d.flushMs, 500),
    batchEvents: num(d.batchEvents, 100),
  };
}

/** Global Privacy Control or Do Not Track is on. */
export function optedOut(): boolean {
  const n = navigator as any;
  return n.globalPrivacyControl === true || n.doNotTrack === '1' || (window as any).doNotTrack === '1';
}
