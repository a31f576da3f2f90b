// The nn-art page: draws the frames of a live run of live.py (see demos/server.py) into a canvas.
// <body data-state> is "running" while frames stream, "paused", "rendering" (one frame while
// paused) or "error"; data-runs counts renders started by a change of the form and data-frames the
// frames drawn since (the browser test waits on them).
import {fillFormFromUrl, formQuery, showBackend, showMessage, streamRun} from "../_shared/demo.js";

const $ = (id) => document.getElementById(id);
const form = $("controls");
const message = $("message");
const canvas = $("art");
const context = canvas.getContext("2d");
const extra = fillFormFromUrl(form); // query parameters that are not fields (max_fps, seconds) go along
const AVERAGE_OVER = 30; // frames

let controller = null; // aborts the run in flight
let playing = true;
let t = 0; // seconds of animation so far: a new run goes on from there, so z does not jump
let lastQuery = null; // the form as last rendered
let timing = {ms: [], arrivals: []};

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text;
}

const randomSeed = () => String(Math.floor(Math.random() * 2 ** 32));
const ms = (value) => `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
const count = (value) => value.toLocaleString("en");

function showNetwork({layers, weights, pixels, multiply_adds: multiplyAdds}) {
  $("layers").textContent = [layers[0][0], ...layers.map(([, out]) => out)].join(" → ");
  $("weights").textContent = count(weights);
  $("pixels").textContent = count(pixels);
  $("multiply-adds").textContent = count(multiplyAdds);
}

function drawFrame(frame) {
  const binary = atob(frame.rgba);
  const bytes = new Uint8ClampedArray(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (canvas.width !== frame.size) {
    canvas.width = frame.size;
    canvas.height = frame.size;
  }
  context.putImageData(new ImageData(bytes, frame.size, frame.size), 0, 0);
  t = frame.t;

  timing.ms.push(frame.ms);
  timing.arrivals.push(performance.now());
  if (timing.ms.length > AVERAGE_OVER) {
    timing.ms.shift();
    timing.arrivals.shift();
  }
  const frames = Number(document.body.dataset.frames || 0) + 1;
  document.body.dataset.frames = String(frames);
  $("frame-count").textContent = count(frames);
  $("frame-ms").textContent = ms(frame.ms);
  $("frame-ms").dataset.ms = String(frame.ms);
  $("frame-ms-avg").textContent = ms(timing.ms.reduce((a, b) => a + b, 0) / timing.ms.length);
  $("frame-ms-n").textContent = timing.ms.length === 1 ? "1 frame" : `${timing.ms.length} frames`;
  const span = (timing.arrivals[timing.arrivals.length - 1] - timing.arrivals[0]) / 1000;
  $("fps").textContent = span > 0 ? (((timing.arrivals.length - 1) / span).toFixed(1)) : "—";
  $("z").textContent = `(${frame.z.map((v) => v.toFixed(3)).join(", ")})`;
  $("t").textContent = frame.t.toFixed(1);
}

/**
 * Renders with the form's values: streams frames while playing, or one frame while paused.
 * `continuing` goes on with the same picture (the next stretch of the animation, or play after pause).
 */
async function render(continuing = false) {
  if (controller) controller.abort();
  const mine = (controller = new AbortController());
  if (!$("seed").value.trim()) $("seed").value = randomSeed(); // shown, so the picture can be had again
  const query = formQuery(form, extra);
  if (!continuing) {
    lastQuery = query.toString();
    history.replaceState(null, "", `?${query}`); // the picture can be shared as a link
    showMessage(message, "");
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
    document.body.dataset.frames = "0";
    timing = {ms: [], arrivals: []};
  }
  query.set("t", t.toFixed(3));
  if (!playing) query.set("frames", "1");
  setState(playing ? "running" : "rendering", playing ? "Playing…" : "Rendering one frame…");
  let done = null;
  let failed = false;
  try {
    await streamRun(`run?${query}`, (name, data) => {
      if (mine.signal.aborted) return;
      if (name === "frame") drawFrame(data);
      else if (name === "backend") showBackend(data);
      else if (name === "network") showNetwork(data);
      else if (name === "done") done = data;
      else if (name === "error") {
        failed = true;
        showMessage(message, data.message);
        setState("error", "Stopped by an error.");
      }
    }, mine.signal);
  } catch (e) {
    if (e.name === "AbortError" || mine.signal.aborted) return;
    showMessage(message, e.message || String(e));
    setState("error", "Not rendered: see the message above.");
    return;
  }
  if (mine.signal.aborted || failed) return;
  if (playing && done && done.reason === "time") render(true); // the server's stretch ended: go on
  else if (playing) setState("done", "Finished.");
  else setState("paused", "Paused.");
}

// A changed field re-renders at once (a select on choosing, a text field on Enter or leaving it);
// the Render button does too, and retries after an error.
function renderIfChanged() {
  if (formQuery(form, extra).toString() !== lastQuery || document.body.dataset.state === "error") render();
}
form.addEventListener("change", renderIfChanged);
form.addEventListener("submit", (e) => {
  e.preventDefault();
  renderIfChanged();
});

$("new-network").addEventListener("click", () => {
  $("seed").value = randomSeed();
  render();
});

$("pause").addEventListener("click", () => {
  playing = !playing;
  $("pause").textContent = playing ? "Pause" : "Play";
  if (playing) {
    render(true);
  } else {
    if (controller) controller.abort();
    if (document.body.dataset.state !== "error") setState("paused", "Paused.");
  }
});

render();
