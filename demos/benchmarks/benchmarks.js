// The benchmarks page: plots the figures of a live run of live.py (see demos/server.py) as they come,
// one chart per op with a line per backend, time against size on logarithmic axes, and a table.
import {Chart, fmt, showBackend, startDemo} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);

let run = null; // what the current run has reported so far: its ops, their charts and the figures

function reset() {
  run = {ops: [], charts: {}, points: [], total: 0};
  $("charts").replaceChildren();
  $("rows").replaceChildren();
  $("points-now").textContent = "0";
  $("points-total").textContent = "…";
  $("last-now").textContent = "—";
  $("elapsed-now").textContent = "—";
}

/** One chart per op: the x axis is log2(n), its ticks relabelled as the sizes themselves. */
function makeCharts(ops) {
  for (const op of ops) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.op = op.name;
    box.innerHTML = `<h3>${op.name} <small>(${op.kind})</small></h3><p><code>${op.code}</code></p>` +
      `<svg id="chart-${op.name}" viewBox="0 0 480 300" role="img" aria-label="${op.name}: time against size"></svg>`;
    $("charts").append(box);
    run.charts[op.name] = new Chart(box.querySelector("svg"), {xLabel: "size n", yLabel: "µs per call", logY: true,
      integerX: true});
  }
}

function drawChart(op) {
  const chart = run.charts[op];
  const points = run.points.filter((p) => p.op === op);
  const sizes = run.sizes.map(Math.log2);
  const times = points.flatMap((p) => [p.us_min, p.us_max]);
  chart.setDomain([Math.min(...sizes) - 0.4, Math.max(...sizes) + 0.4],
    times.length ? [Math.min(...times) / 1.5, Math.max(...times) * 1.5] : [1, 1000]);
  const layers = [];
  for (const backend of run.backends) {
    const mine = points.filter((p) => p.backend === backend);
    for (const p of mine) {
      layers.push({kind: "line", className: `spread ${backend}`, points: [[Math.log2(p.n), p.us_min], [Math.log2(p.n), p.us_max]]});
    }
    layers.push({kind: "line", className: `line ${backend}`, points: mine.map((p) => [Math.log2(p.n), p.us])});
    layers.push({kind: "dots", className: `point ${backend}`, r: 3.5, points: mine.map((p) => [Math.log2(p.n), p.us,
      {"data-op": p.op, "data-n": p.n, "data-backend": p.backend, "data-us": p.us}])});
  }
  chart.draw(layers);
  // The x ticks sit at whole powers of two: label them with the size, not its logarithm.
  for (const tick of chart.svg.querySelectorAll("text.tick[text-anchor='middle']")) {
    tick.textContent = fmt(2 ** Number(tick.textContent));
  }
}

function addRow(p) {
  const row = document.createElement("tr");
  Object.assign(row.dataset, {op: p.op, n: p.n, backend: p.backend, us: p.us});
  const cells = [
    ["text", p.op], ["", p.n], ["text shape", p.shape], ["text", p.backend], ["", fmt(p.us)],
    ["", `${fmt(p.us_min)} – ${fmt(p.us_max)}`], ["", `${fmt(p.spread_pct, 2)} %`], ["", `${fmt(p.rate, 3)} ${p.unit}`],
  ];
  for (const [className, text] of cells) {
    const cell = document.createElement("td");
    if (className) cell.className = className;
    cell.textContent = String(text);
    row.append(cell);
  }
  $("rows").append(row);
}

const handlers = {
  start({ops, sizes, backends, points, target_ms: targetMs}) {
    run.ops = ops;
    run.sizes = sizes;
    run.backends = backends.map((b) => b.name);
    run.total = points;
    $("points-total").textContent = points;
    $("target-ms").textContent = fmt(targetMs);
    for (const item of $("legend").children) item.hidden = !run.backends.includes(item.dataset.backend);
    makeCharts(ops);
    for (const op of ops) drawChart(op.name);
  },
  backend: showBackend,
  point(p) {
    run.points.push(p);
    $("points-now").textContent = run.points.length;
    $("last-now").textContent = `${p.op} at n = ${p.n} on ${p.backend}: ${fmt(p.us)} µs`;
    addRow(p);
    drawChart(p.op);
  },
  done({points, seconds}) {
    $("points-now").textContent = points;
    $("elapsed-now").textContent = `${fmt(seconds, 2)} s`;
  },
};

startDemo({onReset: reset, handlers});
