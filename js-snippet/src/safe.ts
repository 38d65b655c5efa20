// Nothing spoor does may throw into the host page: every handler goes through `safe`.

export const safe =
  <A extends unknown[]>(f: (...a: A) => void) =>
  (...a: A): void => {
    try {
      f(...a);
    } catch {
      // Swallowed on purpose: a recorder error must never break the page.
    }
  };

export type Teardown = () => void;

/** Adds a passive, capturing, error-safe listener; returns its teardown. */
export function on(target: EventTarget, type: string, f: (e: any) => void, capture = true): Teardown {
  const h = safe(f);
  const opts = { capture, passive: true };
  target.addEventListener(type, h, opts);
  return () => target.removeEventListener(type, h, opts);
}

export const now = (): number => Date.now();
