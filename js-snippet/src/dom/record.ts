// spoor-dom.js: full-page recording with rrweb, loaded by spoor.js only when the page asks for
// it (data-replay="dom") and the site allows it. Masked by default:
// - every text node becomes same-length asterisks (whitespace kept, so the layout holds),
//   unless it is inside an element marked `data-spoor-unmask`;
// - text-bearing attributes (alt, title, placeholder, aria-*) are masked the same way;
// - images, video, canvas, iframes, embeds and `data-spoor-block` elements are recorded as
//   empty placeholders of their size;
// - input values are masked, and input events are not sent at all: nothing typed, and no
//   keystroke timing, leaves the page;
// - scripts, comments and head metadata are left out (rrweb's slim DOM), and the page URL
//   loses its query and fragment.
// Each rrweb event is sent as one kind-11 row `[11, DT, data, part?, parts?]`: the event's
// JSON, zlib-compressed, base64. An event longer than PART characters is sent in parts.

import { record } from '@rrweb/record';
import { strToU8, zlibSync } from 'fflate';

import { Kind } from '../protocol';

type Emit = (kind: number, ...fields: unknown[]) => void;
type Node = { type: number; id: number; attributes?: Record<string, unknown>; childNodes?: Node[] };

/** Characters of one row at most (the server takes 256 KiB). */
export const PART = 200_000;
/** Row characters after which the batch is flushed at once. */
const FLUSH_AFTER = 100_000;
const TEXT_ATTRS = /^(alt|title|placeholder|label|summary|aria-label|aria-description|aria-valuetext|aria-placeholder|aria-roledescription)$/;
const BLOCKED = 'img,picture,video,audio,canvas,iframe,object,embed,svg image,[data-spoor-block]';
/** rrweb's event types and incremental sources this file looks at. */
const FULL_SNAPSHOT = 2;
const INCREMENTAL = 3;
const META = 4;
const MUTATION = 0;
const INPUT = 5;

export const mask = (s: string): string => s.replace(/\S/g, '*');

function unmasked(el: Element | null): boolean {
  return !!el?.closest?.('[data-spoor-unmask]');
}

/** Base64 of bytes, in slices (String.fromCharCode takes a bounded number of arguments). */
function b64(u8: Uint8Array): string {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, Array.from(u8.subarray(i, i + 0x8000)));
  return btoa(s);
}

/** The page's URL without query and fragment (they hold searches, tokens, ids). */
const bare = (href: string): string => href.split(/[?#]/)[0];

export function encodeEvent(e: unknown): string {
  return b64(zlibSync(strToU8(JSON.stringify(e)), { level: 6 }));
}

/** Masks text attributes in a serialized node tree, unless its element is unmasked. */
function maskTree(n: Node | undefined, nodeOf: (id: number) => Node | null): void {
  if (!n) return;
  if (n.attributes && !unmasked(nodeOf(n.id) as unknown as Element)) maskAttrs(n.attributes);
  n.childNodes?.forEach((c) => maskTree(c, nodeOf));
}

function maskAttrs(a: Record<string, unknown>): void {
  for (const k in a) if (TEXT_ATTRS.test(k) && typeof a[k] === 'string') a[k] = mask(a[k] as string);
}

/** Makes an rrweb event safe to send; `null` for one that is never sent. */
export function scrub(e: any, nodeOf: (id: number) => Node | null): any {
  if (e.type === META && e.data?.href) e.data.href = bare(e.data.href);
  if (e.type === FULL_SNAPSHOT) maskTree(e.data.node, nodeOf);
  if (e.type === INCREMENTAL) {
    if (e.data.source === INPUT) return null;
    if (e.data.source === MUTATION) {
      for (const add of e.data.adds || []) maskTree(add.node, nodeOf);
      for (const m of e.data.attributes || []) if (!unmasked(nodeOf(m.id) as unknown as Element)) maskAttrs(m.attributes);
    }
  }
  return e;
}

/** Starts recording into `emit`; returns the function that stops it. */
export function start(emit: Emit, flush: () => void): () => void {
  let pending = 0;
  const nodeOf = (id: number) => record.mirror.getNode(id) as unknown as Node | null;
  const stop = record({
    emit(event: unknown) {
      const e = scrub(event, nodeOf);
      if (!e) return;
      const data = encodeEvent(e);
      const parts = Math.ceil(data.length / PART);
      for (let i = 0; i < parts; i++) {
        const slice = data.slice(i * PART, (i + 1) * PART);
        if (parts > 1) emit(Kind.Dom, slice, i, parts);
        else emit(Kind.Dom, slice);
        if ((pending += slice.length) > FLUSH_AFTER) {
          pending = 0;
          flush();
        }
      }
    },
    maskAllInputs: true,
    maskInputFn: (text: string) => mask(text),
    maskTextSelector: '*',
    maskTextFn: (text: string, el: HTMLElement | null) => (unmasked(el) ? text : mask(text)),
    blockSelector: BLOCKED,
    slimDOMOptions: 'all',
    inlineImages: false,
    recordCanvas: false,
    collectFonts: false,
    recordCrossOriginIframes: false,
    sampling: { mousemove: 50, scroll: 150, input: 'last' },
  });
  return () => stop?.();
}

const w = window as any;
w.__spoorDom = start;
w.__spoorDomReady?.();
