// Train and eval loss curves as a PNG, drawn into an RGBA buffer (pngjs encodes it): no plotting library.
// Axes carry the step range and the loss range in a 3x5 pixel font.
import * as fs from 'fs';
import { PNG } from 'pngjs';

export interface Series {
  points: Array<[number, number]>;
  rgb: [number, number, number];
}

const W = 640, H = 400, LEFT = 56, RIGHT = 16, TOP = 16, BOTTOM = 28;

// 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left column)
const FONT: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 1, 1], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], 'e': [0, 7, 7, 4, 7], '+': [0, 2, 7, 2, 0],
};

class Canvas {
  readonly png = new PNG({ width: W, height: H });

  constructor() {
    this.png.data.fill(255);
  }

  dot(x: number, y: number, [r, g, b]: [number, number, number], size = 1): void {
    for (let dy = 0; dy < size; dy++) {
      for (let dx = 0; dx < size; dx++) {
        const px = Math.round(x) + dx, py = Math.round(y) + dy;
        if (px < 0 || py < 0 || px >= W || py >= H) continue;
        const i = (py * W + px) * 4;
        this.png.data[i] = r;
        this.png.data[i + 1] = g;
        this.png.data[i + 2] = b;
        this.png.data[i + 3] = 255;
      }
    }
  }

  line(x0: number, y0: number, x1: number, y1: number, rgb: [number, number, number], size = 2): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.dot(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, rgb, size);
  }

  text(x: number, y: number, s: string, rgb: [number, number, number] = [60, 60, 60], scale = 2): void {
    [...s].forEach((ch, k) => {
      const rows = FONT[ch] ?? [0, 0, 0, 0, 0];
      rows.forEach((bits, r) => {
        for (let c = 0; c < 3; c++) if (bits & (4 >> c)) this.dot(x + (k * 4 + c) * scale, y + r * scale, rgb, scale);
      });
    });
  }
}

const label = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(3)));

/** Draws the series on shared axes (x = step, y = loss) and writes `file` atomically. */
export function writeLossPlot(file: string, series: Series[]): void {
  const c = new Canvas();
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const grey: [number, number, number] = [160, 160, 160];
  c.line(LEFT, TOP, LEFT, H - BOTTOM, grey, 1);
  c.line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, grey, 1);
  if (pts.length) {
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y1 - y0 < 1e-12) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    const px = (x: number) => LEFT + ((x - x0) / Math.max(x1 - x0, 1)) * (W - LEFT - RIGHT);
    const py = (y: number) => H - BOTTOM - ((y - y0) / (y1 - y0)) * (H - TOP - BOTTOM);
    for (const s of series) {
      const ok = s.points.filter(([, y]) => Number.isFinite(y));
      ok.forEach(([x, y], i) => {
        if (i > 0) c.line(px(ok[i - 1]![0]), py(ok[i - 1]![1]), px(x), py(y), s.rgb);
        else c.dot(px(x) - 1, py(y) - 1, s.rgb, 3);
      });
      if (ok.length && ok.length <= 50) ok.forEach(([x, y]) => c.dot(px(x) - 2, py(y) - 2, s.rgb, 4));
    }
    c.text(4, TOP, label(y1));
    c.text(4, H - BOTTOM - 10, label(y0));
    c.text(LEFT, H - BOTTOM + 8, label(x0));
    const last = label(x1);
    c.text(W - RIGHT - last.length * 8, H - BOTTOM + 8, last);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, PNG.sync.write(c.png));
  fs.renameSync(tmp, file);
}
