// A small SVG line chart: enough for loss curves, drawn into a fixed viewBox so the page
// does not move as points arrive.

const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 220;
const PAD = { left: 52, right: 12, top: 22, bottom: 30 };

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceStep is a round step (1, 2 or 5 times a power of ten) near span/n.
function niceStep(span, n) {
  const raw = span / n;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function label(v) {
  if (v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

// lineChart draws series ({name, cls, points: [[x, y], ...], dots}) into svg, replacing
// what it held; each polyline carries data-n, its number of points.
export function lineChart(svg, series, { title = '', xLabel = 'step' } = {}) {
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren();
  svg.append(svgEl('text', { x: PAD.left, y: 14, class: 'chart-title' }, title));
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!pts.length) {
    svg.append(svgEl('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'no data yet'));
    return;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const ys = niceStep(y1 - y0, 4);
  y0 = Math.floor(y0 / ys) * ys;
  y1 = Math.ceil(y1 / ys) * ys;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);

  const grid = svgEl('g', { class: 'chart-grid' });
  for (let y = y0; y <= y1 + ys / 2; y += ys) {
    grid.append(svgEl('line', { x1: PAD.left, x2: W - PAD.right, y1: sy(y), y2: sy(y) }));
    grid.append(svgEl('text', { x: PAD.left - 6, y: sy(y) + 4, 'text-anchor': 'end' }, label(y)));
  }
  const xs = Math.max(1, niceStep(x1 - x0, 5));
  for (let x = Math.ceil(x0 / xs) * xs; x <= x1; x += xs) {
    grid.append(svgEl('line', { x1: sx(x), x2: sx(x), y1: H - PAD.bottom, y2: H - PAD.bottom + 4 }));
    grid.append(svgEl('text', { x: sx(x), y: H - PAD.bottom + 16, 'text-anchor': 'middle' }, label(x)));
  }
  grid.append(svgEl('text', { x: W - PAD.right, y: H - 2, 'text-anchor': 'end' }, xLabel));
  svg.append(grid);

  let lx = W - PAD.right;
  for (const s of [...series].reverse()) {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const line = svgEl('polyline', { class: `series ${s.cls}`, 'data-n': p.length, points: p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ') });
    svg.append(line);
    if (s.dots || p.length === 1) {
      const g = svgEl('g', { class: `dots ${s.cls}` });
      for (const [x, y] of p) g.append(svgEl('circle', { cx: sx(x), cy: sy(y), r: 2.5 }));
      svg.append(g);
    }
    const t = svgEl('text', { x: lx, y: 14, 'text-anchor': 'end', class: `legend ${s.cls}` }, `— ${s.name}`);
    svg.append(t);
    lx -= 14 + 7 * (s.name.length + 2);
  }
}
