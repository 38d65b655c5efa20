// Opt-in GPS (`data-gps="on"`): watchPosition fixes as kind-8 events in SI units. A denied
// permission or an error is reported once as a custom event and recording goes on.

import { safe, Teardown } from '../safe';
import { Emit } from './types';
import { Kind } from '../protocol';

export function gps(emit: Emit): Teardown {
  const geo = navigator.geolocation;
  if (!geo) return () => {};
  const id = geo.watchPosition(
    safe((p: GeolocationPosition) => {
      const c = p.coords;
      emit(Kind.Gps, c.latitude, c.longitude, c.accuracy, c.altitude, c.speed, c.heading);
    }),
    safe((e: GeolocationPositionError) => emit(Kind.Custom, 'spoor_gps_error', { code: e.code })),
    { enableHighAccuracy: true, maximumAge: 10_000 },
  );
  return () => geo.clearWatch(id);
}
