// An offline basemap: country borders and coastlines from Natural Earth (npm `world-atlas`,
// 1:50m), served by spoor itself as /ui/world.json and drawn beneath tracks and markers. With
// no tile server reachable the map still shows where things are; when tiles load (they sit
// in a pane above this one) they cover it.

import { feature, mesh } from 'topojson-client';
import type { GeometryCollection, Topology } from 'topojson-specification';
import { L } from './leaflet';

export const TILE_PANE = 'tiles';

/** Makes the panes (grid < basemap < tiles < tracks) and draws the basemap once loaded. */
export async function addBasemap(map: L.Map): Promise<void> {
  map.createPane('basemap').style.zIndex = '250';
  map.createPane(TILE_PANE).style.zIndex = '300';
  const r = await fetch('/ui/world.json');
  if (!r.ok) return;
  const world = (await r.json()) as Topology<{ countries: GeometryCollection; land: GeometryCollection }>;
  const renderer = L.canvas({ pane: 'basemap' });
  L.geoJSON(feature(world, world.objects.land), {
    pane: 'basemap',
    renderer,
    interactive: false,
    style: { color: '#8a97a3', weight: 1, fillColor: '#fbfaf5', fillOpacity: 0.6 }, // the grid shows through: scale and motion at any zoom
  } as L.GeoJSONOptions).addTo(map);
  L.geoJSON(mesh(world, world.objects.countries, (a, b) => a !== b), {
    pane: 'basemap',
    renderer,
    interactive: false,
    style: { color: '#a3aeb8', weight: 1, dashArray: '4 3', fill: false },
  } as L.GeoJSONOptions).addTo(map);
}
