// The intro page: draws the events of a live run of live.py (see demos/server.py).
import {
  Chart, drawCostChart, fmt, formatArray, resetProgress, resetResult, showBackend, showBatch, showResult, showStart,
  startDemo,
} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);

const costChart = new Chart($("cost-chart"), {xLabel: "batch", yLabel: "average cost", logY: true, integerX: true});
const answerChart = new Chart($("answer-chart"), {xLabel: "batch", yLabel: "answer for (1, 2, 3)", integerX: true});

let run = null;

function reset() {
  run = {batches: 0, costs: [], answers: []};
  for (const id of ["start-multiplier", "input-shape", "output-shape"]) $(id).textContent = "…";
  for (const id of ["now-multiplier", "final-multiplier", "final-shape"]) $(id).textContent = "—";
  resetProgress();
  $("msd").innerHTML = '<span class="op">waiting…</span>';
  resetResult();
  draw();
}

function draw() {
  const n = Math.max(run.batches, 1);
  drawCostChart(costChart, run.batches, run.costs);
  const answers = run.answers.filter(([, v]) => Number.isFinite(v));
  const ys = [0, 4, ...answers.map(([, v]) => v)];
  const yLo = Math.max(Math.min(...ys), -50);
  const yHi = Math.min(Math.max(...ys), 50);
  const pad = (yHi - yLo) * 0.08 || 1;
  answerChart.setDomain([0.5, n + 0.5], [yLo - pad, yHi + pad]);
  answerChart.draw([
    {kind: "line", points: [[0.5, 4], [n + 0.5, 4]], className: "target-line"},
    {kind: "line", points: answers, className: "fit-curve"},
    {kind: "dots", points: answers, className: "model-point", r: 3.5},
  ]);
}

function showMsd(m) {
  const step = (label, value) => `<span class="v">${label} = <b>${value}</b></span>`;
  $("msd").innerHTML = [
    step("a − b", formatArray(m.diff)),
    step("squared", formatArray(m.squared)),
    step("sum", fmt(m.sum)),
    step(`÷ size ${m.size}`, fmt(m.average)),
  ].join('<span class="sep">→</span>') +
    `<span class="v">mean squared difference: <span class="big" id="msd-value" data-value="${m.average}">` +
    `${fmt(m.average)}</span></span>`;
}

const handlers = {
  start({params}) {
    run.batches = params.batches;
    showStart(params);
    draw();
  },
  backend: showBackend,
  mean_squared_difference: showMsd,
  graph(g) {
    $("start-multiplier").textContent = formatArray([g.multiplier]);
    $("input-shape").textContent = `[${g.input_shape.join(", ")}]`;
    $("output-shape").textContent = `[${g.output_shape.join(", ")}]`;
  },
  batch(b) {
    run.costs.push([b.batch, b.cost]);
    run.answers.push([b.batch, b.answer_for_first]);
    showBatch(b.batch, b.cost);
    $("now-multiplier").textContent = formatArray([b.multiplier]);
    draw();
  },
  done(d) {
    $("final-multiplier").textContent = formatArray([d.multiplier]);
    $("final-shape").textContent = `[${d.shape.join(", ")}]`;
    showResult(d.output, d.expected, 0.05, {
      close: "close to 0.4: the graph learned the pattern.",
      far: "far from 0.4: try another learning rate or more batches.",
    });
  },
};

startDemo({onReset: reset, handlers});
