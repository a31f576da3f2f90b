// The complementary color prediction page: draws the events of a live run of live.py (see demos/server.py).
import {
  Chart, drawCostChart, fmt, resetProgress, resetResult, showBackend, showBatch, showResult, showStart, startDemo,
} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);

const costChart = new Chart($("cost-chart"), {xLabel: "batch", yLabel: "average cost", logY: true, integerX: true});

let run = null; // what the current run has reported so far

const css = (color) => `rgb(${color.join(", ")})`;

/** A swatch of `color` and its numbers; an empty, hatched swatch while there is no color yet. */
function swatch(color, kind) {
  if (!color) return `<span class="swatch none ${kind}"></span><code>…</code>`;
  return `<span class="swatch ${kind}" style="background:${css(color)}" data-rgb="${color.join(",")}"></span>` +
    `<code>${color.join(", ")}</code>`;
}

/** How far apart two colors are: the average difference per channel. */
const offBy = (a, b) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;

function reset() {
  run = {batches: 0, costs: [], colors: null, complements: null};
  resetProgress();
  resetResult();
  $("lr-now").textContent = "—";
  $("error-now").textContent = "—";
  $("swatch-rows").innerHTML = '<tr><td colspan="4" class="op">waiting…</td></tr>';
  delete $("swatches").dataset.batch;
  drawCost();
}

function drawCost() {
  drawCostChart(costChart, run.batches, run.costs);
}

function showColors({colors, complements}) {
  run.colors = colors;
  run.complements = complements;
  $("swatch-rows").innerHTML = colors.map((color, i) =>
    `<tr><td>${swatch(color, "input")}</td><td class="predicted">${swatch(null, "predicted")}</td>` +
    `<td>${swatch(complements[i], "truth")}</td><td class="diff">—</td></tr>`).join("");
}

function showPredictions(predictions, batch) {
  const rows = $("swatch-rows").rows;
  predictions.forEach((color, i) => {
    rows[i].cells[1].innerHTML = swatch(color, "predicted");
    rows[i].cells[3].textContent = fmt(offBy(color, run.complements[i]), 3);
  });
  $("swatches").dataset.batch = String(batch);
}

const handlers = {
  start({params}) {
    run.batches = params.batches;
    showStart(params);
    drawCost();
  },
  backend: showBackend,
  data: showColors,
  batch(b) {
    run.costs.push([b.batch, b.cost]);
    showBatch(b.batch, b.cost);
    $("lr-now").textContent = fmt(b.learning_rate);
    $("error-now").textContent = fmt(b.error, 3);
    showPredictions(b.predictions, b.batch);
    drawCost();
  },
  done(d) {
    showPredictions(d.predictions, run.batches);
    showResult(d.error, d.expected, d.good_error, {
      close: "the guesses are close to the true complements: the network learned the rule.",
      far: "still far off: try more batches, or another learning rate.",
    });
  },
};

startDemo({onReset: reset, handlers});
