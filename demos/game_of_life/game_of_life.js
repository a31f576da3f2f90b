// The Game of Life page: draws the events of a live run of live.py (see demos/server.py).
import {
  Chart, drawCostChart, fmt, resetProgress, resetResult, showBackend, showBatch, showResult, showStart, startDemo,
} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const CELL = 10; // a cell's side in the board's own units

const costChart = new Chart($("cost-chart"), {xLabel: "batch", yLabel: "average cost", logY: true, integerX: true});
const accuracyChart = new Chart($("accuracy-chart"), {xLabel: "batch", yLabel: "% right", integerX: true});

let run = null; // what the current run has reported so far

function rect(attrs) {
  const el = document.createElementNS(SVG, "rect");
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * Draws a board into an <svg>: `cells` are rows of 0 and 1, or, with `truth`, the network's chances
 * that each cell is alive, drawn as shades, the cells it gets wrong outlined. Returns how many it
 * gets wrong (0 without `truth`).
 */
function drawBoard(svg, cells, truth) {
  const n = cells.length;
  svg.setAttribute("viewBox", `0 0 ${n * CELL} ${n * CELL}`);
  svg.replaceChildren();
  let wrong = 0;
  cells.forEach((row, r) => row.forEach((value, c) => {
    const at = {x: c * CELL, y: r * CELL, width: CELL, height: CELL};
    if (!truth) {
      svg.append(rect({...at, class: `cell ${value ? "alive" : "dead"}`}));
      return;
    }
    svg.append(rect({...at, class: "cell dead"}));
    svg.append(rect({...at, class: "cell chance", "fill-opacity": value.toFixed(3)}));
    if ((value > 0.5) !== (truth[r][c] === 1)) {
      wrong += 1;
      svg.append(rect({x: at.x + 1, y: at.y + 1, width: CELL - 2, height: CELL - 2, class: "wrong"}));
    }
  }));
  svg.dataset.wrong = String(wrong);
  return wrong;
}

function figure(kind, caption) {
  return `<figure><svg class="board ${kind}" role="img" aria-label="${caption}"></svg>` +
    `<figcaption>${caption}</figcaption></figure>`;
}

function reset() {
  run = {batches: 0, costs: [], cells: [], boards: [], data: null};
  resetProgress();
  resetResult();
  $("cells-now").textContent = "—";
  $("boards-now").textContent = "—";
  $("boards").innerHTML = '<span class="op">waiting…</span>';
  delete $("boards").dataset.batch;
  drawCharts();
}

function drawCharts() {
  drawCostChart(costChart, run.batches, run.costs);
  accuracyChart.setDomain([0.5, Math.max(run.batches, 1) + 0.5], [0, 100]);
  const dots = (points, className) => ({kind: "dots", className, r: 2,
    points: points.map(([batch, v]) => [batch, v, {"data-batch": batch, "data-value": v}])});
  accuracyChart.draw([
    {kind: "line", points: run.cells, className: "cost-line"},
    {kind: "line", points: run.boards, className: "fit-curve"},
    dots(run.cells, "cells-point cost-point"),
    dots(run.boards, "boards-point model-point"),
  ]);
}

function showBoards({boards, next}) {
  run.data = {boards, next};
  $("boards").innerHTML = boards.map((_, i) => `<div class="example" data-index="${i}">` +
    `${figure("start", "a board")}<span class="arrow">→</span>${figure("truth", "next generation")}` +
    `${figure("prediction", "the network's guess")}</div>`).join("");
  for (const [i, example] of [...$("boards").children].entries()) {
    drawBoard(example.querySelector(".start"), boards[i]);
    drawBoard(example.querySelector(".truth"), next[i]);
    drawBoard(example.querySelector(".prediction"), boards[i].map((row) => row.map(() => 0)));
  }
}

function showPredictions(predictions, batch) {
  for (const [i, example] of [...$("boards").children].entries()) {
    drawBoard(example.querySelector(".prediction"), predictions[i], run.data.next[i]);
  }
  $("boards").dataset.batch = String(batch);
}

const handlers = {
  start({params}) {
    run.batches = params.batches;
    showStart(params);
    drawCharts();
  },
  backend: showBackend,
  data: showBoards,
  batch(b) {
    run.costs.push([b.batch, b.cost]);
    run.cells.push([b.batch, b.cells_right]);
    run.boards.push([b.batch, b.boards_right]);
    showBatch(b.batch, b.cost);
    $("cells-now").textContent = `${fmt(b.cells_right, 3)} %`;
    $("boards-now").textContent = `${fmt(b.boards_right, 3)} %`;
    showPredictions(b.predictions, b.batch);
    drawCharts();
  },
  done(d) {
    showPredictions(d.predictions, run.batches);
    showResult(d.boards_right, d.expected, 5, {
      close: "the network learned the rule: it predicts whole boards right.",
      far: "not yet: try more batches, another learning rate or another seed.",
    });
  },
};

startDemo({onReset: reset, handlers});
