// The ml_beginners page: draws the events of a live run of live.py (see demos/server.py).
import {
  Chart, drawCostChart, fmt, resetProgress, resetResult, showBackend, showBatch, showResult, showStart, startDemo,
} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);
const X_RANGE = [-0.5, 4.5];

const costChart = new Chart($("cost-chart"), {xLabel: "batch", yLabel: "average cost", logY: true, integerX: true});
const fitChart = new Chart($("fit-chart"), {xLabel: "x", yLabel: "y"});

let run = null; // what the current run has reported so far

function reset() {
  run = {batches: 0, costs: [], data: null, start: null, now: null, yRange: null};
  for (const id of ["start-a", "start-b", "start-c", "start-inference"]) $(id).textContent = "…";
  for (const id of ["now-a", "now-b", "now-c", "final-a", "final-b", "final-c"]) $(id).textContent = "—";
  resetProgress();
  resetResult();
  $("mxv").innerHTML = '<span class="op">waiting…</span>';
  drawCost();
  drawFit();
}

function quadratic({a, b, c}) {
  const points = [];
  for (let i = 0; i <= 60; i++) {
    const x = X_RANGE[0] + ((X_RANGE[1] - X_RANGE[0]) * i) / 60;
    points.push([x, a * x * x + b * x + c]);
  }
  return points;
}

function drawCost() {
  drawCostChart(costChart, run.batches, run.costs, {zeroDots: true});
}

function drawFit() {
  const layers = [];
  const ys = [57];
  if (run.data) ys.push(...run.data.ys);
  const curve = run.now ? quadratic(run.now) : [];
  const start = run.start ? quadratic(run.start) : [];
  for (const [, y] of curve.concat(start)) if (Number.isFinite(y)) ys.push(y);
  // The y range only grows during a run, so the picture does not jump from batch to batch;
  // it is capped so that a diverging run does not squash the examples to a line.
  const lo = Math.max(Math.min(0, ...ys), -150);
  const hi = Math.min(Math.max(...ys), 250);
  run.yRange = run.yRange ? [Math.min(run.yRange[0], lo), Math.max(run.yRange[1], hi)] : [lo, hi];
  const pad = (run.yRange[1] - run.yRange[0]) * 0.06;
  fitChart.setDomain(X_RANGE, [run.yRange[0] - pad, run.yRange[1] + pad]);
  layers.push({kind: "line", points: start, className: "start-curve"});
  layers.push({kind: "line", points: curve, className: "fit-curve"});
  layers.push({kind: "dots", points: [[4, 57]], className: "target-point", r: 6});
  if (run.data) {
    layers.push({kind: "dots", className: "data-point", r: 5,
      points: run.data.xs.map((x, i) => [x, run.data.ys[i], {"data-x": x, "data-y": run.data.ys[i]}])});
  }
  if (run.now && Number.isFinite(run.now.inference)) {
    layers.push({kind: "dots", points: [[4, run.now.inference]], className: "model-point", r: 4});
    layers.push({kind: "label", x: 4, y: run.now.inference, text: `x = 4 → ${fmt(run.now.inference)}`,
      className: "note", dx: -8, dy: -10, anchor: "end"});
  }
  fitChart.draw(layers);
}

function showMatrixTimesVector({matrix, vector, result, shape}) {
  const grid = (rows) => {
    const cols = Array.isArray(rows[0]) ? rows[0].length : 1;
    const cells = rows.flatMap((r) => (Array.isArray(r) ? r : [r])).map((v) => `<span>${fmt(v)}</span>`);
    return `<span class="matrix" style="grid-template-columns:repeat(${cols},auto)">${cells.join("")}</span>`;
  };
  $("mxv").innerHTML = `${grid(matrix)}<span class="op">×</span>${grid(vector)}<span class="op">=</span>` +
    `${grid(result)}<span class="op" style="font-size:0.9rem">result shape: [${shape.join(", ")}]</span>`;
}

const handlers = {
  start({params}) {
    run.batches = params.batches;
    showStart(params);
    drawCost();
  },
  backend: showBackend,
  matrix_times_vector: showMatrixTimesVector,
  graph(g) {
    run.start = g;
    run.now = g;
    $("start-a").textContent = fmt(g.a);
    $("start-b").textContent = fmt(g.b);
    $("start-c").textContent = fmt(g.c);
    $("start-inference").textContent = fmt(g.inference);
    drawFit();
  },
  data(d) {
    run.data = d;
    drawFit();
  },
  batch(b) {
    run.costs.push([b.batch, b.cost]);
    run.now = b;
    showBatch(b.batch, b.cost);
    $("now-a").textContent = fmt(b.a);
    $("now-b").textContent = fmt(b.b);
    $("now-c").textContent = fmt(b.c);
    drawCost();
    drawFit();
  },
  done(d) {
    run.now = {...d, inference: d.result};
    $("final-a").textContent = fmt(d.a);
    $("final-b").textContent = fmt(d.b);
    $("final-c").textContent = fmt(d.c);
    showResult(d.result, d.expected, 2, {
      close: "close to 57: the model learned the curve.",
      far: "far from 57: try another learning rate or more batches.",
    });
    drawFit();
  },
};

startDemo({onReset: reset, handlers});
