// Drawing a layout snapshot (kind 10 boxes: [role, x, y, w, h, colour?] in document px) as a
// wireframe: blocks, heading and text bars, image and media placeholders, buttons, links,
// inputs. Shared by the player and the heatmap.

const STYLE: Record<number, [fill: string | null, stroke: string | null]> = {
  0: [null, '#d3dae2'], // block
  1: ['#9aa6b2', null], // heading
  2: ['#dfe4ea', null], // text
  3: ['#d4e6f8', '#a9c6e6'], // image
  4: ['#c5d9f2', '#6f92bd'], // button
  5: ['#e6eefb', null], // link
  6: ['#ffffff', '#9aa6b2'], // input
  7: ['#eef1f5', '#d3dae2'], // nav
  8: ['#3f4a56', null], // media
};

export function drawWireframe(
  g: CanvasRenderingContext2D,
  boxes: unknown[][],
  X: (x: number) => number,
  Y: (y: number) => number,
  scale: number,
): void {
  g.lineWidth = 1;
  for (const b of boxes) {
    const [role, x, y, w, h, colour] = b as [number, number, number, number, number, string?];
    const [fill, stroke] = STYLE[role] ?? STYLE[0];
    const px = X(x);
    const py = Y(y);
    const pw = w * scale;
    const ph = h * scale;
    const bg = typeof colour === 'string' && /^#[0-9a-f]{3}$/i.test(colour) ? colour : fill;
    if (bg) {
      g.globalAlpha = role === 0 ? 0.35 : 1;
      g.fillStyle = bg;
      g.fillRect(px, py, pw, ph);
      g.globalAlpha = 1;
    }
    if (stroke) {
      g.strokeStyle = stroke;
      g.strokeRect(px + 0.5, py + 0.5, pw - 1, ph - 1);
    }
    if (role === 5) {
      g.fillStyle = '#4a7bd0';
      g.fillRect(px, py + ph - Math.max(1, scale), pw, Math.max(1, scale));
    }
  }
}
