// The speed chart under the route replay: speed over time for the track (or trip) shown,
// with the replay's moment marked. Drawn on a canvas, at most one point per pixel column.

import { Fix, speedSeries } from './route';

export class SpeedChart {
  readonly el: HTMLCanvasElement;
  private series: { t: number; v: number }[] = [];
  private start = 0;
  private end = 1;
  private top = 1;
  private cursor: number | null = null;

  constructor(width = 300, height = 90) {
    this.el = document.createElement('canvas');
    this.el.className = 'speed-chart';
    this.el.width = width;
    this.el.height = height;
  }

  /** Shows `track`'s speeds; an empty track clears the chart. */
  set(track: Fix[]): void {
    this.series = speedSeries(track, this.el.width);
    this.start = track[0]?.ts ?? 0;
    this.end = Math.max(this.start + 1, track[track.length - 1]?.ts ?? 1);
    this.top = Math.max(1, ...this.series.map((p) => p.v));
    this.cursor = null;
    this.draw();
  }

  /** Marks the replay's moment. */
  at(t: number): void {
    this.cursor = t;
    this.draw();
  }

  private x(t: number): number {
    return ((t - this.start) / (this.end - this.start)) * (this.el.width - 1);
  }

  private draw(): void {
    const g = this.el.getContext('2d');
    if (!g) return;
    const { width: w, height: hgt } = this.el;
    const pad = 14;
    g.clearRect(0, 0, w, hgt);
    g.fillStyle = '#f6f8fa';
    g.fillRect(0, 0, w, hgt);
    if (!this.series.length) return;
    const y = (v: number): number => hgt - 2 - (v / this.top) * (hgt - pad - 2);
    g.beginPath();
    g.moveTo(this.x(this.series[0].t), hgt - 2);
    for (const p of this.series) g.lineTo(this.x(p.t), y(p.v));
    g.lineTo(this.x(this.series[this.series.length - 1].t), hgt - 2);
    g.closePath();
    g.fillStyle = 'rgba(42, 111, 219, 0.25)';
    g.fill();
    g.strokeStyle = '#2a6fdb';
    g.lineWidth = 1.5;
    g.beginPath();
    this.series.forEach((p, i) => (i ? g.lineTo(this.x(p.t), y(p.v)) : g.moveTo(this.x(p.t), y(p.v))));
    g.stroke();
    g.fillStyle = '#4a5561';
    g.font = '10px system-ui, sans-serif';
    g.fillText(`max ${(this.top * 3.6).toFixed(0)} km/h`, 4, 10);
    if (this.cursor !== null) {
      g.strokeStyle = '#b3261e';
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(Math.round(this.x(this.cursor)) + 0.5, 0);
      g.lineTo(Math.round(this.x(this.cursor)) + 0.5, hgt);
      g.stroke();
    }
  }
}
