// What the demo pages share: reading a live run's Server-Sent Events, drawing charts as inline
// SVG, and the controls form. Plain JavaScript modules, no libraries, nothing from the network.

/** A message for the page: bad input (the server's 400) or a failed run. */
export class DemoError extends Error {}

/**
 * Starts a live run and calls onEvent(name, payload) for each Server-Sent Event as it arrives.
 * Uses fetch rather than EventSource so that a 400's message reaches the page and so that a
 * finished stream is not re-opened automatically. Resolves when the stream ends; rejects with a
 * DemoError carrying the server's message, or with an AbortError when `signal` aborts.
 */
export async function streamRun(url, onEvent, signal) {
  let response;
  try {
    response = await fetch(url, {signal, cache: "no-store", headers: {Accept: "text/event-stream"}});
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new DemoError("Cannot reach the demo server. Is ./scripts/watch-demo still running?");
  }
  if (!response.ok) {
    let message = `The server answered ${response.status} ${response.statusText}.`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new DemoError(message);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ended = false;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = parseEvent(block);
      if (!event || (signal && signal.aborted)) continue;
      if (event.name === "end") ended = true;
      onEvent(event.name, event.data);
    }
  }
  if (!ended && !(signal && signal.aborted)) {
    throw new DemoError("The connection to the demo server closed before the run finished.");
  }
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  return {name, data: JSON.parse(data.join("\n"))};
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/** A number for people: 4 significant digits, "—" for a missing or non-finite value. */
export function fmt(value, digits = 4) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value !== 0 && (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

/** A bracketed vector or matrix as HTML-free text: [1, 2, 3] or rows of a matrix. */
export function formatArray(values) {
  if (!Array.isArray(values)) return fmt(values);
  return "[" + values.map((v) => (Array.isArray(v) ? formatArray(v) : fmt(v))).join(", ") + "]";
}

// ---------------------------------------------------------------------------------------------
// Charts: inline SVG, redrawn from data (a few hundred elements at most)
// ---------------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

function linearTicks(lo, hi, count, integer = false) {
  let step = niceStep(hi - lo, count);
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  const first = Math.floor(Math.log10(lo));
  const last = Math.ceil(Math.log10(hi));
  const multiples = last - first <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil((last - first) / 6)); // at most ~6 labels, however many decades
  for (let p = first; p <= last; p += every) {
    for (const m of multiples) {
      const t = m * Math.pow(10, p);
      if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(t);
    }
  }
  return ticks;
}

/**
 * A chart with two axes in an <svg>. Call draw(layers) with
 *   {kind: "line", points: [[x, y], ...], className}
 *   {kind: "dots", points: [[x, y, attrs?], ...], className, r}
 *   {kind: "label", x, y, text, className, dx, dy}
 * after setting the domains; everything is redrawn each time.
 */
export class Chart {
  constructor(svg, {xLabel = "", yLabel = "", logY = false, integerX = false} = {}) {
    this.svg = svg;
    this.xLabel = xLabel;
    this.yLabel = yLabel;
    this.logY = logY;
    this.integerX = integerX;
    const box = svg.viewBox.baseVal;
    this.width = box && box.width ? box.width : 480;
    this.height = box && box.height ? box.height : 300;
    this.margin = {left: 56, right: 16, top: 14, bottom: 42};
    this.x = [0, 1];
    this.y = logY ? [0.1, 1] : [0, 1];
  }

  setDomain(x, y) {
    this.x = x;
    if (this.logY) y = [Math.max(y[0], 1e-12), Math.max(y[1], y[0] * 10, 1e-11)];
    else if (y[1] <= y[0]) y = [y[0] - 1, y[0] + 1];
    this.y = y;
  }

  px(x) {
    const {left, right} = this.margin;
    return left + ((x - this.x[0]) / (this.x[1] - this.x[0])) * (this.width - left - right);
  }

  py(y) {
    const {top, bottom} = this.margin;
    const h = this.height - top - bottom;
    if (this.logY) {
      const v = Math.log10(Math.max(y, this.y[0]));
      const [lo, hi] = [Math.log10(this.y[0]), Math.log10(this.y[1])];
      return top + h - ((v - lo) / (hi - lo)) * h;
    }
    return top + h - ((y - this.y[0]) / (this.y[1] - this.y[0])) * h;
  }

  draw(layers) {
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const {left, right, top, bottom} = this.margin;
    const axes = svgEl("g", {class: "axes"});
    const xTicks = linearTicks(this.x[0], this.x[1], 6, this.integerX);
    const yTicks = this.logY ? logTicks(this.y[0], this.y[1]) : linearTicks(this.y[0], this.y[1], 5);
    for (const t of yTicks) {
      const y = this.py(t);
      axes.append(svgEl("line", {x1: left, x2: this.width - right, y1: y, y2: y, class: "grid"}));
      axes.append(svgEl("text", {x: left - 6, y: y + 4, class: "tick", "text-anchor": "end"}, fmt(t, 3)));
    }
    for (const t of xTicks) {
      const x = this.px(t);
      axes.append(svgEl("line", {x1: x, x2: x, y1: top, y2: this.height - bottom, class: "grid"}));
      axes.append(svgEl("text", {x, y: this.height - bottom + 16, class: "tick", "text-anchor": "middle"},
        fmt(t, 3)));
    }
    axes.append(svgEl("rect", {x: left, y: top, width: this.width - left - right,
      height: this.height - top - bottom, class: "frame"}));
    axes.append(svgEl("text", {x: left + (this.width - left - right) / 2, y: this.height - 6,
      class: "axis-label", "text-anchor": "middle"}, this.xLabel));
    axes.append(svgEl("text", {x: 14, y: top + (this.height - top - bottom) / 2, class: "axis-label",
      "text-anchor": "middle", transform: `rotate(-90 14 ${top + (this.height - top - bottom) / 2})`},
      this.yLabel));
    svg.append(axes);

    const clip = `clip-${svg.id || "chart"}`;
    const defs = svgEl("defs");
    const clipPath = svgEl("clipPath", {id: clip});
    clipPath.append(svgEl("rect", {x: left, y: top - 6, width: this.width - left - right + 6,
      height: this.height - top - bottom + 12}));
    defs.append(clipPath);
    svg.append(defs);
    const plot = svgEl("g", {"clip-path": `url(#${clip})`});
    for (const layer of layers) {
      if (layer.kind === "line" && layer.points.length > 1) {
        const d = layer.points.map(([x, y], i) => `${i ? "L" : "M"}${this.px(x).toFixed(2)},${this.py(y).toFixed(2)}`);
        plot.append(svgEl("path", {d: d.join(" "), class: layer.className, fill: "none"}));
      } else if (layer.kind === "dots") {
        for (const [x, y, attrs] of layer.points) {
          plot.append(svgEl("circle", {cx: this.px(x).toFixed(2), cy: this.py(y).toFixed(2),
            r: layer.r || 4, class: layer.className, ...(attrs || {})}));
        }
      } else if (layer.kind === "label") {
        plot.append(svgEl("text", {x: this.px(layer.x) + (layer.dx || 0), y: this.py(layer.y) + (layer.dy || 0),
          class: layer.className, "text-anchor": layer.anchor || "start"}, layer.text));
      }
    }
    svg.append(plot);
  }
}

// ---------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------

/**
 * Fills the form's fields from the page's own query string (so a run can be shared as a link)
 * and returns the other query parameters (e.g. delay_ms) to pass on to the run.
 */
export function fillFormFromUrl(form) {
  const extra = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(window.location.search)) {
    const field = form.elements.namedItem(name);
    if (field && "value" in field) field.value = value;
    else extra.set(name, value);
  }
  return extra;
}

/** The form's fields (and `extra`) as a query string; empty fields are sent empty. */
export function formQuery(form, extra) {
  const query = new URLSearchParams();
  for (const el of form.elements) {
    if (el.name && "value" in el && el.tagName !== "BUTTON") query.set(el.name, el.value.trim());
  }
  if (extra) for (const [k, v] of extra) query.set(k, v);
  return query;
}

/** Shows `text` in the page's message box (role=alert), or hides it when text is empty. */
export function showMessage(box, text, kind = "error") {
  box.textContent = text || "";
  box.hidden = !text;
  box.dataset.kind = kind;
}

/**
 * Runs a demo: aborts the previous run, resets the page through `onReset`, streams the run and
 * keeps <body data-state> at "running", "done" or "error" (the browser test waits on it).
 */
export function makeRunner({form, message, status, onReset, onEvent, extra}) {
  let controller = null;
  const setState = (state, text) => {
    document.body.dataset.state = state;
    if (text !== undefined) status.textContent = text;
  };
  async function start() {
    if (controller) controller.abort();
    const mine = (controller = new AbortController());
    const query = formQuery(form, extra);
    showMessage(message, "");
    // Counts runs, so a test (or a curious reader) can tell this run's "done" from the last one's.
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
    onReset();
    setState("running", "Running…");
    const shareable = new URLSearchParams(query);
    history.replaceState(null, "", `?${shareable}`);
    let failed = false;
    try {
      await streamRun(`run?${query}`, (name, data) => {
        if (mine.signal.aborted) return;
        if (name === "error") {
          failed = true;
          showMessage(message, data.message);
          setState("error", "Stopped by an error.");
        } else if (name === "warning") {
          showMessage(message, data.message, "warning");
        } else if (name === "end") {
          if (!failed) setState("done", "Finished.");
        } else {
          onEvent(name, data);
        }
      }, mine.signal);
    } catch (e) {
      if (e.name === "AbortError" || mine.signal.aborted) return;
      showMessage(message, e.message || String(e));
      setState("error", "Not started: see the message above.");
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  return {start, setState};
}

// ---------------------------------------------------------------------------------------------
// The parts every training demo page has, by id: the backend box (#backend-name,
// #backend-device), the progress line (#batch-now, #batch-total, #cost-now), the seed field
// (#seed), the result (#result-value, #result-verdict), and the form (#controls, #message,
// #status).
// ---------------------------------------------------------------------------------------------

const byId = (id) => document.getElementById(id);

/** The progress line before a run: batch 0 of the form's number of batches, no cost yet. */
export function resetProgress() {
  byId("batch-now").textContent = "0";
  byId("batch-total").textContent = byId("batches").value.trim() || "…";
  byId("cost-now").textContent = "—";
}

/** The run's `start` event: its number of batches, and the seed the server picked if none was given. */
export function showStart(params) {
  byId("batch-total").textContent = params.batches;
  // A run without a seed got one from the server: show it so the run can be repeated.
  if (!byId("seed").value.trim()) byId("seed").placeholder = `random (this run: ${params.seed})`;
}

/** The run's `backend` event: where deeplearn computes. */
export function showBackend({label, device}) {
  byId("backend-name").textContent = label;
  byId("backend-device").textContent = device || "dl.ENV.math";
}

/** The progress line after a batch. */
export function showBatch(batch, cost) {
  byId("batch-now").textContent = batch;
  byId("cost-now").textContent = fmt(cost);
}

/** The result box before a run: empty. */
export function resetResult() {
  const result = byId("result-value");
  result.textContent = "—";
  result.className = "big";
  delete result.dataset.value;
  byId("result-verdict").textContent = "";
}

/** The result box after a run: `value`, marked ok within `tolerance` of `expected`, and a verdict. */
export function showResult(value, expected, tolerance, {close: closeText, far: farText}) {
  const result = byId("result-value");
  result.textContent = fmt(value, 5);
  result.dataset.value = String(value);
  const close = Number.isFinite(value) && Math.abs(value - expected) <= tolerance;
  result.className = `big ${close ? "ok" : "off"}`;
  byId("result-verdict").textContent = close ? closeText : farText;
}

/**
 * The average cost of each batch so far, [[batch, cost], ...], on a log-scale chart: a line
 * through the positive costs and a dot for each (with `zeroDots`, costs of 0 or below get a dot
 * at the bottom of the chart too). Each dot carries data-batch and data-cost.
 */
export function drawCostChart(chart, batches, costs, {zeroDots = false} = {}) {
  const n = Math.max(batches, 1);
  const positive = costs.filter(([, c]) => Number.isFinite(c) && c > 0);
  const values = positive.map(([, c]) => c);
  const lo = values.length ? Math.min(...values) / 2 : 0.01;
  const hi = values.length ? Math.max(...values) * 2 : 100;
  chart.setDomain([0.5, n + 0.5], [lo, hi]);
  const dotted = zeroDots ? costs.filter(([, c]) => Number.isFinite(c)) : positive;
  chart.draw([
    {kind: "line", points: positive, className: "cost-line"},
    {kind: "dots", className: "cost-point", r: n > 60 ? 2 : 3.5,
      points: dotted.map(([batch, c]) => [batch, Math.max(c, lo), {"data-batch": batch, "data-cost": c}])},
  ]);
}

/**
 * Wires the page's form to its live run and starts the first run: `onReset()` before each run,
 * then `handlers[name](payload)` for each event the page draws.
 */
export function startDemo({onReset, handlers}) {
  const form = byId("controls");
  const runner = makeRunner({
    form,
    message: byId("message"),
    status: byId("status"),
    extra: fillFormFromUrl(form),
    onReset,
    onEvent(name, data) {
      if (handlers[name]) handlers[name](data);
    },
  });
  runner.start();
  return runner;
}
