// A device's day as the server reads it from the track (`GET /api/devices/{did}/trips`):
// stays and trips in time order, a summary line for each, and a trip's summary.

import { duration, h } from '../dom';

export interface Trip {
  start: number;
  end: number;
  distance_m: number;
  moving_s: number;
  max_speed_mps: number;
  avg_speed_mps: number;
  from: { lat: number; lon: number };
  to: { lat: number; lon: number };
}

export interface Stay {
  lat: number;
  lon: number;
  arrival: number;
  departure: number;
}

export type Entry = { kind: 'trip'; at: number; trip: Trip } | { kind: 'stay'; at: number; stay: Stay };

/** Trips and stays merged in time order. */
export function entries(t: { trips: Trip[]; stays: Stay[] }): Entry[] {
  const all: Entry[] = [
    ...t.trips.map((trip) => ({ kind: 'trip' as const, at: trip.start, trip })),
    ...t.stays.map((stay) => ({ kind: 'stay' as const, at: stay.arrival, stay })),
  ];
  return all.sort((a, b) => a.at - b.at);
}

export const km = (m: number): string => (m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`);
export const kmh = (mps: number): string => `${(mps * 3.6).toFixed(0)} km/h`;
const clock = (ts: number): string => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** One line for a trip: when, how far, how long. */
export function tripLine(t: Trip): string {
  return `${clock(t.start)}–${clock(t.end)}  Trip ${km(t.distance_m)}, ${duration(t.end - t.start)}`;
}

export function stayLine(s: Stay): string {
  return `${clock(s.arrival)}–${clock(s.departure)}  Stay ${duration(s.departure - s.arrival)}`;
}

/** A picked trip, in full. */
export function tripSummary(t: Trip): string {
  return (
    `Trip ${new Date(t.start).toLocaleString()} – ${clock(t.end)}: ${km(t.distance_m)} in ${duration(t.end - t.start)} ` +
    `(moving ${duration(t.moving_s * 1000)}), average ${kmh(t.avg_speed_mps)}, top ${kmh(t.max_speed_mps)}`
  );
}

/** The timeline's list items; `pick` is called with the entry clicked. */
export function timelineItems(list: Entry[], pick: (e: Entry, li: HTMLLIElement) => void): HTMLLIElement[] {
  return list.map((e) => {
    const li = h(
      'li',
      { class: e.kind === 'trip' ? 'tl-trip' : 'tl-stay', tabindex: 0 },
      e.kind === 'trip' ? tripLine(e.trip) : stayLine(e.stay),
    ) as HTMLLIElement;
    li.addEventListener('click', () => pick(e, li));
    li.addEventListener('keydown', (k) => {
      if (k.key === 'Enter') pick(e, li);
    });
    return li;
  });
}
