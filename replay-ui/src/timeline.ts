// Timeline math: real session time <-> playback time, with inactivity skipped.
//
// Gaps longer than `gap` ms between activity are compressed to `compressed` ms of playback,
// so a session with a ten-minute pause plays without the wait; the skipped stretches are
// kept as segments so the timeline can show them. Pure functions, unit-tested.

export interface Segment {
  /** Real time (epoch ms) the segment starts and ends. */
  start: number;
  end: number;
  /** Playback offset (ms) at the segment's start. */
  at: number;
  /** Playback length of the segment (ms). */
  length: number;
  skipped: boolean;
}

export class Timeline {
  readonly segments: Segment[];
  readonly start: number;
  readonly end: number;

  /** `times`: activity times (epoch ms), sorted. */
  constructor(times: number[], skip: boolean, gap = 3000, compressed = 500) {
    this.start = times.length ? times[0] : 0;
    this.end = times.length ? times[times.length - 1] : 0;
    const segs: Segment[] = [];
    let at = 0;
    let from = this.start;
    const push = (start: number, end: number, skipped: boolean) => {
      const length = skipped ? compressed : end - start;
      segs.push({ start, end, at, length, skipped });
      at += length;
    };
    if (skip) {
      for (let i = 1; i < times.length; i++) {
        if (times[i] - times[i - 1] > gap) {
          push(from, times[i - 1], false);
          push(times[i - 1], times[i], true);
          from = times[i];
        }
      }
    }
    push(from, this.end, false);
    this.segments = segs;
  }

  /** Total playback length (ms). */
  get duration(): number {
    const last = this.segments[this.segments.length - 1];
    return last.at + last.length;
  }

  private find<K extends 'start' | 'at'>(key: K, v: number): Segment {
    const s = this.segments;
    let lo = 0;
    let hi = s.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid][key] <= v) lo = mid;
      else hi = mid - 1;
    }
    return s[lo];
  }

  /** Playback offset of a real time (clamped to the session). */
  toPlay(real: number): number {
    const r = Math.min(Math.max(real, this.start), this.end);
    const s = this.find('start', r);
    if (s.skipped) return s.at + ((r - s.start) / Math.max(1, s.end - s.start)) * s.length;
    return s.at + (r - s.start);
  }

  /** Real time at a playback offset (clamped). */
  toReal(play: number): number {
    const p = Math.min(Math.max(play, 0), this.duration);
    const s = this.find('at', p);
    if (s.skipped) return s.start + ((p - s.at) / Math.max(1, s.length)) * (s.end - s.start);
    return s.start + (p - s.at);
  }
}

/** Advances a playback position by a frame's wall time at a speed, stopping at the end. */
export function advance(play: number, frameMs: number, speed: number, duration: number): number {
  return Math.min(duration, play + frameMs * speed);
}

/** Formats ms as m:ss. */
export function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** Index one past the last item at or before `t` in time-ordered `arr`. */
export function upto(arr: readonly { t: number }[], t: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid].t <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
