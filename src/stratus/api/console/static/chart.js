// Stacked bar charts as inline SVG: one bar per day, one segment per model.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#3b6fd4", "#e0803a", "#3aa676", "#c0504d", "#8064a2", "#4bacc6",
                 "#9bbb59", "#d4a017"];

export function colorOf(index) {
  return PALETTE[index % PALETTE.length];
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

// A round upper bound for the axis, and its step: 1, 2 or 5 times a power of ten.
function scale(max) {
  if (max <= 0) return { top: 1, step: 0.25 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return { top: step * Math.ceil(max / step), step };
}

// labels: one per bar; series: [{name, color, values}] stacked in order; format: an axis
// label and a tooltip value.
export function stackedBars({ labels, series, format, title }) {
  const width = 760;
  const height = 240;
  const pad = { left: 64, right: 12, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
  const { top, step } = scale(Math.max(0, ...totals));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
                            "aria-label": title });
  root.append(svg("title", {}, title));
  for (let value = 0; value <= top + step / 2; value += step) {
    const y = pad.top + plotH - (value / top) * plotH;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y,
                              class: "gridline" }),
                svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" },
                    format(value)));
  }
  const slot = plotW / labels.length;
  const barW = Math.max(2, slot * 0.7);
  const every = Math.ceil(labels.length / 10);
  labels.forEach((label, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let base = pad.top + plotH;
    for (const s of series) {
      const value = s.values[i];
      if (!value) continue;
      const barH = (value / top) * plotH;
      base -= barH;
      const rect = svg("rect", { x, y: base, width: barW, height: Math.max(barH, 1),
                                 fill: s.color, "data-model": s.name, "data-date": label });
      rect.append(svg("title", {}, `${label} · ${s.name}: ${format(value)}`));
      root.append(rect);
    }
    if (i % every === 0 || i === labels.length - 1) {
      root.append(svg("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle",
                                class: "axis" }, label.slice(5)));
    }
  });
  return root;
}
