// app.js — the digits page: a drawing pad (mouse, touch, pen through
// pointer events), prediction as you draw, file upload, and the result:
// digit, confidence, ten probability bars and the 28x28 image the model saw.
// An answer is shown only while the pad still holds what was sent: Clear
// and a new upload abort the request in flight.
//
// The pad is sent as a PNG, dark ink on white; the server does all the
// preprocessing (invert, crop, scale to 20 px, centre of mass) so the page
// and `digits predict` agree. ?demo=1 draws a digit by itself and predicts
// (for screenshots and smoke tests).
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const $ = (id) => document.getElementById(id);

// A stroke a little under a tenth of the pad: drawn at the usual size, a
// digit's strokes come out about as wide as MNIST's after scaling to 20 px.
const STROKE = pad.width / 11;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

// ---- drawing ----------------------------------------------------------------

let drawing = false;
let last = null;
let inked = false;

function padPoint(ev) {
  const r = pad.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * (pad.width / r.width), y: (ev.clientY - r.top) * (pad.height / r.height) };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function line(a, b) {
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  drawing = true;
  last = padPoint(ev);
  dot(last);
  inked = true;
  schedule();
});
pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  // coalesced events: every sample of a fast stroke, not one per frame
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of events.length ? events : [ev]) {
    const p = padPoint(e);
    line(last, p);
    last = p;
  }
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    schedule(0);
  });
}

// ---- prediction -------------------------------------------------------------------

let timer = null;
let pending = null;  // the AbortController of the request in flight, if any
let again = false;

// Predict-as-you-draw: at most one request in flight, at most one waiting.
function schedule(delay = 150) {
  if (!$("live").checked || !inked) return;
  clearTimeout(timer);
  timer = setTimeout(predictPad, delay);
}

// Forget the request in flight and any waiting one: their answers are for
// a pad that is gone (cleared, or replaced by an upload). The fetch is
// aborted, and an answer that was already on its way is ignored by send().
function forget() {
  clearTimeout(timer);
  again = false;
  if (pending) pending.abort();
  pending = null;
}

function predictPad() {
  if (!inked) {
    showError("Draw a digit first.");
    return;
  }
  if (pending) {
    again = true;
    return;
  }
  const req = new AbortController();
  pending = req;
  pad.toBlob((blob) => send(blob, { "Content-Type": "image/png" }, "", req), "image/png");
}

// POST a picture (query: the URL's, e.g. "?multi=1") and show the answer.
// `req` is the request's AbortController (predictPad's); without one the
// body is a new picture (an upload) and whatever was in flight is
// forgotten first. Once `req` is aborted nothing of its answer reaches the
// page.
async function send(body, headers, query = "", req) {
  if (!req) {
    forget();
    req = new AbortController();
    pending = req;
  }
  try {
    const res = await fetch(`api/predict${query}`, { method: "POST", headers, body, signal: req.signal });
    const json = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (req.signal.aborted) return;  // cleared while the body was read
    if (!res.ok) showError(json.error || `HTTP ${res.status}`);
    else showResult(json);
  } catch (err) {
    if (!req.signal.aborted) showError(`The server did not answer: ${err.message}`);
  } finally {
    if (pending === req) {
      pending = null;
      if (again) {
        again = false;
        predictPad();
      }
    }
  }
}

// ---- result ---------------------------------------------------------------------------

const bars = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
  $("bars").appendChild(li);
  bars.push(li);
}

// One digit: {digit, confidence, probabilities, input}; several (an upload
// with "several digits" ticked): {number, digits: [one digit...]}, the bars
// for the first, every 28x28 side by side. A "warning" (the image seems to
// hold several digits) is shown under the answer.
function showResult(r) {
  const digits = r.digits || [r];
  const first = digits[0];
  $("error").textContent = r.warning || "";
  $("digit").textContent = r.number !== undefined ? r.number : String(r.digit);
  const sure = digits.map((d) => `${(100 * d.confidence).toFixed(1)}`).join(" / ");
  $("confidence").textContent = `${sure} % sure · ${r.ms.toFixed(1)} ms`;
  first.probabilities.forEach((p, d) => {
    bars[d].classList.toggle("best", d === first.digit);
    bars[d].querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bars[d].querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
  });
  const canvas = $("input");
  canvas.width = 28 * digits.length;
  canvas.style.width = digits.length > 1 ? "auto" : "";
  const seen = canvas.getContext("2d");
  digits.forEach((d, k) => {
    const img = seen.createImageData(28, 28);
    d.input.forEach((v, i) => {
      img.data.set([v, v, v, 255], 4 * i);
    });
    seen.putImageData(img, 28 * k, 0);
  });
}

function showError(msg) {
  $("error").textContent = msg;
  $("digit").textContent = "?";
  $("confidence").textContent = "";
  bars.forEach((li) => {
    li.classList.remove("best");
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".pct").textContent = "";
  });
}

// ---- buttons and upload ----------------------------------------------------------------

// Clear: an empty pad, no answer, the hint back (as when the page opened).
$("clear").addEventListener("click", () => {
  forget();
  clearPad();
  inked = false;
  showError("");
  $("confidence").textContent = "Draw a digit";
  const seen = $("input");
  seen.width = 28;  // a number's digits side by side go too
  seen.style.width = "";
  seen.getContext("2d").clearRect(0, 0, 28, 28);
});
$("predict").addEventListener("click", predictPad);

// The file goes to the server as it is (multipart/form-data): the server
// applies a JPEG's EXIF orientation, as the browser does when it draws the
// image (CSS image-orientation: from-image, the default), so the pad shows
// what the server reads and drawing on top of it and predicting again
// sends the same upright picture. "several digits" asks for every digit.
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file, file.name);
  send(form, {}, $("multi").checked ? "?multi=1" : "");
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    clearPad();
    const k = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * k, h = img.height * k;
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    inked = true;
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url);  // e.g. PGM: the browser cannot show it, the server reads it
  img.src = url;
  $("file").value = "";
});

// ---- the model line -----------------------------------------------------------------------

async function showModel() {
  try {
    const m = await (await fetch("api/model")).json();
    const parts = [`model ${m.name}`];
    if (m.parameters) parts.push(`${(m.parameters / 1e6).toFixed(m.parameters < 1e6 ? 2 : 1)} M parameters`);
    if (m.metrics && m.metrics.test_accuracy) parts.push(`test accuracy ${(100 * m.metrics.test_accuracy).toFixed(2)} %`);
    $("model").textContent = parts.join(" · ");
  } catch (err) {
    $("model").textContent = "model information unavailable";
  }
}

// ---- demo: a handwritten-looking 3, small and up in a corner -----------------------------
// (the server crops, scales and centres it: see "what the model sees")

function demo() {
  const at = (p) => [24 + 0.62 * p[0], 14 + 0.62 * p[1]];
  const strokes = [
    [[92, 66], [118, 50], [152, 46], [178, 58], [186, 82], [176, 106], [150, 124], [126, 130]],
    [[132, 128], [164, 136], [188, 156], [192, 186], [178, 212], [150, 226], [116, 226], [88, 210]],
  ];
  for (const s of strokes.map((st) => st.map(at))) {
    // a smooth curve through the points (quadratic segments between midpoints)
    ctx.beginPath();
    ctx.moveTo(s[0][0], s[0][1]);
    for (let i = 1; i < s.length - 1; i++) {
      const mx = (s[i][0] + s[i + 1][0]) / 2, my = (s[i][1] + s[i + 1][1]) / 2;
      ctx.quadraticCurveTo(s[i][0], s[i][1], mx, my);
    }
    ctx.lineTo(s[s.length - 1][0], s[s.length - 1][1]);
    ctx.stroke();
  }
  inked = true;
  predictPad();
}

clearPad();
showModel();
if (new URLSearchParams(location.search).get("demo") === "1") demo();
