// The model-builder page: edits a list of layers (checked by live.py as it changes), and draws the
// events of a live training run of live.py (see demos/server.py): stop closes the stream, resume
// starts a run with resume=1 that goes on from the stopped one's weights.
import {Chart, DemoError, drawCostChart, fmt, showBackend, showMessage, streamRun} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);

const PRESETS = {
  convolutional: "conv2d:5:8, relu, max_pool:2:2, conv2d:5:16, relu, max_pool:2:2, flatten, dense:10",
  fully_connected: "flatten, dense:128, relu, dense:10",
};
// Each kind's arguments: [name, default]; reshape takes one text argument such as 7x7x16.
const KINDS = {
  dense: [["units", "10"]],
  relu: [],
  conv2d: [["field size", "5"], ["output depth", "8"], ["stride", "1"]],
  max_pool: [["field size", "2"], ["stride", "2"]],
  flatten: [],
  reshape: [["shape", "784"]],
};
// live.py's defaults for a batch of 64 (model_builder.DEFAULT_LEARNING_RATES).
const LEARNING_RATES = {sgd: 0.5, momentum: 0.1, rmsprop: 0.1, adagrad: 2, adadelta: 64, adam: 0.1, adamax: 0.2};
// Each data set's image shape (model_builder.DATASETS).
const SHAPES = {mnist: [28, 28, 1], mnist_full: [28, 28, 1], fashion_mnist: [28, 28, 1], cifar10: [32, 32, 3]};
const FIELDS = ["optimizer", "learning_rate", "momentum", "gamma", "beta1", "beta2", "batch_size", "batches", "seed"];

const costChart = new Chart($("cost-chart"), {xLabel: "batch", yLabel: "average cost", logY: true, integerX: true});
const accuracyChart = new Chart($("accuracy-chart"), {xLabel: "batch", yLabel: "% right", integerX: true});

let layers = [];          // [{kind, args: [text, ...]}]
let shapes = null;        // the layers' output shapes as the last check gave them (null: not checked yet)
let checkTimer = null;
let checkController = null;
let runController = null;
let run = null;           // what the runs since the last "train from scratch" have reported
let stoppedKey = null;    // the layers and seed of the run that was stopped (what resume can go on from)

// ---------------------------------------------------------------------------------------------
// The layers
// ---------------------------------------------------------------------------------------------

function parseLayers(text) {
  return text.split(",").map((part) => {
    const [kind, ...args] = part.trim().split(":");
    return {kind, args: KINDS[kind] ? KINDS[kind].map(([, d], j) => args[j] ?? d) : args};
  });
}

function layersText() {
  return layers.map(({kind, args}) => [kind, ...args.map((a) => a.trim())].join(":")).join(", ");
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderLayers() {
  const body = $("layer-rows");
  body.replaceChildren();
  const input = el("tr", {class: "input-row"});
  input.append(el("td", {}, "0"), el("td", {}, "input image"), el("td", {class: "shape"}, `[${(SHAPES[$("dataset").value] || SHAPES.mnist).join(", ")}]`), el("td"));
  body.append(input);
  const busy = document.body.dataset.state === "running";
  layers.forEach((layer, i) => {
    const row = el("tr", {class: "layer", "data-index": String(i)});
    const cell = el("td");
    const box = el("div", {class: "layer-row"});
    const kind = el("select", {class: "kind", "aria-label": `layer ${i + 1} kind`});
    for (const k of Object.keys(KINDS)) {
      const option = el("option", {value: k}, k);
      if (k === layer.kind) option.selected = true;
      kind.append(option);
    }
    kind.disabled = busy;
    kind.addEventListener("change", () => {
      layers[i] = {kind: kind.value, args: KINDS[kind.value].map(([, d]) => d)};
      changed();
    });
    box.append(kind);
    (KINDS[layer.kind] || []).forEach(([name], j) => {
      const label = el("label", {}, name);
      const field = el("input", {class: `arg${layer.kind === "reshape" ? " shape-arg" : ""}`, "data-arg": String(j),
        spellcheck: "false"});
      field.value = layer.args[j] ?? "";
      field.disabled = busy;
      field.addEventListener("input", () => {
        layers[i].args[j] = field.value;
        scheduleCheck();
      });
      label.append(field);
      box.append(label);
    });
    cell.append(box);
    const buttons = el("td");
    for (const [label, title, action] of [["↑", "move up", () => move(i, -1)], ["↓", "move down", () => move(i, 1)],
      ["✕", "remove", () => { layers.splice(i, 1); changed(); }]]) {
      const b = el("button", {type: "button", class: `small ${title.replace(" ", "-")}`, title}, label);
      b.disabled = busy;
      b.addEventListener("click", action);
      buttons.append(b);
    }
    row.append(el("td", {}, String(i + 1)), cell, el("td", {class: "shape"}, shapes ? shapes[i] : "…"), buttons);
    body.append(row);
  });
}

function move(i, by) {
  const j = i + by;
  if (j < 0 || j >= layers.length) return;
  [layers[i], layers[j]] = [layers[j], layers[i]];
  changed();
}

function changed() {
  renderLayers();
  scheduleCheck();
}

function scheduleCheck() {
  clearTimeout(checkTimer);
  shapes = null;
  for (const cell of document.querySelectorAll("#layer-rows tr.layer .shape")) cell.textContent = "…";
  $("layers").dataset.valid = "";
  checkTimer = setTimeout(check, 250);
  updateButtons();
}

/** Asks live.py for every layer's output shape (check=1); marks the bad layer when there is one. */
async function check() {
  if (checkController) checkController.abort();
  const mine = (checkController = new AbortController());
  const query = new URLSearchParams({check: "1", dataset: $("dataset").value, layers: layersText()});
  const rows = [...document.querySelectorAll("#layer-rows tr.layer")];
  try {
    await streamRun(`run?${query}`, (name, data) => {
      if (name !== "model") return;
      shapes = data.layers.map((layer) => `[${layer.shape.join(", ")}]`);
      data.layers.forEach((layer, i) => {
        if (rows[i]) rows[i].querySelector(".shape").textContent = `[${layer.shape.join(", ")}]`;
        if (rows[i]) rows[i].classList.remove("bad");
      });
      $("model-error").textContent = "";
      $("model-summary").textContent = `${data.layers.length} layers, ${data.parameters.toLocaleString("en")} weights`;
      $("layers").dataset.valid = "true";
    }, mine.signal);
  } catch (e) {
    if (e.name === "AbortError" || mine.signal.aborted) return;
    const message = e instanceof DemoError ? e.message : String(e);
    $("model-error").textContent = message;
    $("model-summary").textContent = "";
    const bad = /^Layer (\d+)/.exec(message);
    const at = bad ? Number(bad[1]) - 1 : rows.length - 1;
    rows.forEach((row, i) => {
      row.classList.toggle("bad", i === at);
      row.querySelector(".shape").textContent = i < at ? row.querySelector(".shape").textContent : i === at ? "✗" : "—";
    });
    $("layers").dataset.valid = "false";
  } finally {
    if (checkController === mine) {
      checkController = null;
      document.body.dataset.checks = String(Number(document.body.dataset.checks || 0) + 1);
      updateButtons();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text;
  updateButtons();
}

function runKey() {
  return `${layersText()}|${$("seed").value.trim()}|${$("dataset").value}`;
}

function updateButtons() {
  const state = document.body.dataset.state;
  const running = state === "running";
  const valid = $("layers").dataset.valid === "true";
  $("train").disabled = running || !valid;
  $("stop").disabled = !running;
  $("resume").disabled = running || !valid || !["stopped", "done"].includes(state) || stoppedKey !== runKey();
  for (const id of ["preset", "load-preset", "new-kind", "add-layer", "dataset"]) $(id).disabled = running;
}

function resetRun() {
  run = {costs: [], accuracy: [], total: 0, grid: null, latest: 0};
  $("batch-now").textContent = "0";
  for (const id of ["cost-now", "accuracy-now", "speed-now"]) $(id).textContent = "—";
  $("grid").innerHTML = '<span class="op">waiting for a run…</span>';
  delete $("grid").dataset.batch;
  drawCharts();
}

function drawCharts() {
  const n = Math.max(run.total, run.latest, 1);
  drawCostChart(costChart, n, run.costs);
  accuracyChart.setDomain([0.5, n + 0.5], [0, 100]);
  accuracyChart.draw([
    {kind: "line", points: run.accuracy, className: "fit-curve"},
    {kind: "dots", className: "accuracy-point model-point", r: 2.5,
      points: run.accuracy.map(([b, a]) => [b, a, {"data-batch": b, "data-value": a}])},
  ]);
}

function showDownload({dataset, file, done, size, all_done: allDone, total}) {
  const mb = (n) => (n / 1e6).toLocaleString("en", {maximumFractionDigits: 1});
  $("download").hidden = false;
  $("download-bar").max = total;
  $("download-bar").value = allDone;
  $("download-text").textContent = `${dataset.split(":")[0]}: ${file} ${mb(done)} / ${mb(size)} MB `
    + `(all files: ${mb(allDone)} / ${mb(total)} MB)`;
  $("download").dataset.done = String(allDone);
  $("download").dataset.total = String(total);
  setState("running", allDone < total ? "Downloading the data set…" : "Training…");
}

let classNames = null;

function showGrid({grid_pixels: b64, grid_labels: labels, image_size: size, channels = 1, classes}) {
  classNames = classes && classes.some((c, i) => c !== String(i)) ? classes : null;
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const grid = $("grid");
  grid.replaceChildren();
  labels.forEach((label, i) => {
    const box = el("div", {class: "digit", "data-label": String(label)});
    const name = classNames ? classNames[label] : String(label);
    const canvas = el("canvas", {width: String(size), height: String(size), "aria-label": `a ${name}`});
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(size, size);
    for (let p = 0; p < size * size; p++) {
      const at = (i * size * size + p) * channels;
      if (channels === 3) {
        image.data.set([bytes[at], bytes[at + 1], bytes[at + 2], 255], p * 4);   // a color photo as it is
      } else {
        const v = 255 - bytes[at];   // dark ink on white
        image.data.set([v, v, v, 255], p * 4);
      }
    }
    ctx.putImageData(image, 0, 0);
    box.append(canvas, el("span", {}, "guess "), el("b", {}, "?"));
    grid.append(box);
  });
}

function showPredictions(predictions, batch) {
  [...$("grid").children].forEach((box, i) => {
    const guess = predictions[i];
    const right = String(guess) === box.dataset.label;
    box.dataset.predicted = String(guess);
    box.className = `digit ${right ? "right" : "wrong"}`;
    box.querySelector("b").textContent = classNames ? classNames[guess] : String(guess);
  });
  $("grid").dataset.batch = String(batch);
  $("grid").dataset.right = String($("grid").querySelectorAll(".digit.right").length);
}

const handlers = {
  start({params, resumed, batches_before: before}) {
    if (!resumed) resetRun();
    run.total = before + params.batches;
    if (!$("seed").value.trim()) $("seed").placeholder = `random (this run: ${params.seed})`;
    run.seed = params.seed;
    drawCharts();
  },
  backend: showBackend,
  model() {},
  download: showDownload,
  data(data) {
    if (!$("download").hidden) setState("running", "Training…");
    showGrid(data);
  },
  progress({batch, cost, examples_per_sec: speed}) {
    run.latest = batch;
    run.costs.push([batch, cost]);
    $("batch-now").textContent = String(batch);
    $("cost-now").textContent = fmt(cost);
    if (speed !== null) $("speed-now").textContent = Math.round(speed).toLocaleString("en");
    drawCharts();
  },
  accuracy({batch, accuracy, predictions}) {
    run.latest = Math.max(run.latest, batch);
    run.accuracy.push([batch, accuracy]);
    $("accuracy-now").textContent = `${fmt(accuracy, 3)} %`;
    showPredictions(predictions, batch);
    drawCharts();
  },
  done({batch, accuracy, predictions}) {
    run.latest = batch;
    $("batch-now").textContent = String(batch);
    $("accuracy-now").textContent = `${fmt(accuracy, 3)} %`;
    $("accuracy-now").dataset.value = String(accuracy);
    showPredictions(predictions, batch);
    drawCharts();
  },
};

async function startRun(resume) {
  if (runController) runController.abort();
  const mine = (runController = new AbortController());
  const query = new URLSearchParams({dataset: $("dataset").value, layers: layersText()});
  for (const name of FIELDS) query.set(name, $(name).value.trim());
  if (resume) {
    query.set("resume", "1");
    if (!query.get("seed") && run.seed !== undefined) query.set("seed", String(run.seed));  // the seed the server picked
  }
  const shareable = new URLSearchParams(query);   // the page's address names the model and the settings
  shareable.delete("resume");
  history.replaceState(null, "", `?${shareable}`);
  showMessage($("message"), "");
  $("download").hidden = true;
  document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
  if (!resume) resetRun();
  const key = runKey();
  setState("running", resume ? "Resumed…" : "Training…");
  renderLayers();
  let failed = false;
  try {
    await streamRun(`run?${query}`, (name, data) => {
      if (mine.signal.aborted) return;
      if (name === "error") {
        failed = true;
        showMessage($("message"), data.message);
        setState("error", "Stopped by an error.");
      } else if (name === "warning") {
        showMessage($("message"), data.message, "warning");
      } else if (name === "end") {
        if (!failed) {
          stoppedKey = key;   // a finished run can be resumed for more batches, too
          setState("done", "Finished this run's batches: resume for more, or change and resume.");
        }
      } else if (handlers[name]) {
        handlers[name](data);
      }
    }, mine.signal);
  } catch (e) {
    if (e.name === "AbortError" || mine.signal.aborted) return;
    showMessage($("message"), e.message || String(e));
    setState("error", "Not started: see the message above.");
  } finally {
    if (runController === mine) runController = null;
    if (document.body.dataset.state !== "running") renderLayers();   // the layers can be edited again
  }
}

function stopRun() {
  if (!runController) return;
  runController.abort();
  runController = null;
  stoppedKey = runKey();
  setState("stopped", "Stopped: change the optimizer, its settings or the batch size, and resume.");
}

// ---------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------

function showOptimizerFields() {
  const name = $("optimizer").value;
  for (const label of document.querySelectorAll("#controls label[data-for]")) {
    label.hidden = !label.dataset.for.split(" ").includes(name);
  }
}

$("optimizer").addEventListener("change", () => {
  $("learning_rate").value = String(LEARNING_RATES[$("optimizer").value]);
  if ($("optimizer").value === "adadelta") $("gamma").value = "0.95";
  showOptimizerFields();
});
$("load-preset").addEventListener("click", () => {
  layers = parseLayers(PRESETS[$("preset").value]);
  changed();
});
$("add-layer").addEventListener("click", () => {
  const kind = $("new-kind").value;
  layers.push({kind, args: KINDS[kind].map(([, d]) => d)});
  changed();
});
$("seed").addEventListener("input", updateButtons);
$("dataset").addEventListener("change", () => {   // another image shape: the layers are checked again
  renderLayers();
  scheduleCheck();
});
$("controls").addEventListener("submit", (e) => e.preventDefault());
$("train").addEventListener("click", () => startRun(false));
$("stop").addEventListener("click", stopRun);
$("resume").addEventListener("click", () => startRun(true));

// The page's own query may set the layers and the fields (so a model can be shared as a link).
const own = new URLSearchParams(window.location.search);
for (const name of FIELDS) if (own.has(name)) $(name).value = own.get(name);
if (own.has("dataset") && SHAPES[own.get("dataset")]) $("dataset").value = own.get("dataset");
layers = parseLayers(own.get("layers") || PRESETS.convolutional);
showOptimizerFields();
resetRun();
renderLayers();
scheduleCheck();
if (own.get("autostart") === "1") {
  const wait = setInterval(() => {
    if ($("layers").dataset.valid === "true") { clearInterval(wait); startRun(false); }
    else if ($("layers").dataset.valid === "false") clearInterval(wait);
  }, 50);
}
