// Leaflet and its cluster plugin, bundled. The plugin extends the global `L`, so Leaflet is
// put there before the plugin's module runs (imports run in order).
import * as Leaflet from 'leaflet';

(window as unknown as { L: typeof Leaflet }).L = Leaflet;

export const L = Leaflet;
