// page_test.js — the page of `digits serve` in headless Chromium, driven
// over the DevTools protocol on a pipe (--remote-debugging-pipe: no port,
// no npm package, nothing downloaded). Run by tests/e2e/browser.sh against a
// server started with --delay-ms (every prediction answers late):
//
//   node tests/browser/page_test.js URL DELAY_MS SCREENSHOT.png
//
// Checks, in order:
//   1. draw a 7, wait: the answer shows a digit (the control: answers do
//      reach the page through the delay);
//   2. draw a 7 and press Clear while its prediction is in flight, wait
//      past the delay: no digit, no bars, no error, the "Draw a digit" hint
//      is back; the screenshot is taken here;
//   3. a 50 MB body posted from the page (a browser never waits for
//      "100 Continue"): the 413 and its JSON error arrive, no reset;
//   4. a document from another origin (localhost vs 127.0.0.1) can POST
//      JSON to the API, preflight included (the server runs --cors).
// Prints one line per check; exits 1 on the first failure, with the reason.
// Leaves out on purpose: touch and pen input (pointer events from the
// mouse take the same code path), layout checks.
"use strict";

const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [url, delayArg, shotPath] = process.argv.slice(2);
if (!url || !delayArg || !shotPath) {
  console.error("usage: node page_test.js URL DELAY_MS SCREENSHOT.png");
  process.exit(2);
}
const DELAY = Number(delayArg);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- Chromium and the protocol -------------------------------------------------

// Starts Chromium with a fresh profile; the protocol runs over fds 3 (to
// the browser) and 4 (from it), one JSON message per NUL-terminated frame.
function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "digits-chromium-"));
  const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--hide-scrollbars", `--user-data-dir=${profile}`, "--remote-debugging-pipe",
    "about:blank"];
  // its own process group: the helpers (renderer, zygote) go with it
  const proc = spawn(CHROMIUM, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const browser = { proc, profile, next: 1, waiting: new Map(), listeners: [], exited: null };
  proc.on("exit", (code, sig) => {
    browser.exited = `chromium exited (${code ?? sig}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`;
    for (const { reject } of browser.waiting.values()) reject(new Error(browser.exited));
  });
  proc.on("error", (err) => { browser.exited = `cannot start ${CHROMIUM}: ${err.message}`; });
  let buf = Buffer.alloc(0);
  proc.stdio[4].on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    let end;
    while ((end = buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(buf.subarray(0, end).toString("utf8"));
      buf = buf.subarray(end + 1);
      if (msg.id && browser.waiting.has(msg.id)) {
        const { resolve, reject } = browser.waiting.get(msg.id);
        browser.waiting.delete(msg.id);
        if (msg.error) reject(new Error(`${msg.error.message} (${JSON.stringify(msg.error.data || "")})`));
        else resolve(msg.result);
      } else if (msg.method) {
        browser.listeners.forEach((fn) => fn(msg));
      }
    }
  });
  return browser;
}

// One protocol command; resolves with its result (sessionId: a page's).
function send(browser, method, params = {}, sessionId) {
  if (browser.exited) return Promise.reject(new Error(browser.exited));
  const id = browser.next++;
  const msg = { id, method, params };
  if (sessionId) msg.sessionId = sessionId;
  return new Promise((resolve, reject) => {
    browser.waiting.set(id, { resolve, reject });
    browser.proc.stdio[3].write(JSON.stringify(msg) + "\0");
  });
}

// Resolves with the first event `method` for which pred(params) holds.
function waitEvent(browser, method, pred = () => true, ms = 20000) {
  return new Promise((resolve, reject) => {
    const fn = (msg) => {
      if (msg.method !== method || !pred(msg.params)) return;
      browser.listeners = browser.listeners.filter((f) => f !== fn);
      clearTimeout(t);
      resolve(msg.params);
    };
    const t = setTimeout(() => {
      browser.listeners = browser.listeners.filter((f) => f !== fn);
      reject(new Error(`no ${method} within ${ms} ms`));
    }, ms);
    browser.listeners.push(fn);
  });
}

// ---- the page ----------------------------------------------------------------------

// A tab at `address`, loaded; returns { browser, target } (target: the id of its DevTools attachment).
async function openPage(browser, address) {
  const { targetId } = await send(browser, "Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send(browser, "Target.attachToTarget", { targetId, flatten: true });
  const page = { browser, target: sessionId };
  await cmd(page, "Page.enable");
  await cmd(page, "Runtime.enable");
  await cmd(page, "Network.enable");
  await cmd(page, "Emulation.setDeviceMetricsOverride",
    { width: 900, height: 600, deviceScaleFactor: 1, mobile: false });
  const loaded = waitEvent(browser, "Page.loadEventFired", (p) => true);
  await cmd(page, "Page.navigate", { url: address });
  await loaded;
  return page;
}

const cmd = (page, method, params) => send(page.browser, method, params, page.target);

// The value of a JavaScript expression in the page (promises awaited).
async function evaluate(page, expression) {
  const r = await cmd(page, "Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
  return r.result.value;
}

// The centre of an element, in CSS pixels of the viewport.
async function centre(page, selector) {
  return evaluate(page, `(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect();
    return { x: r.left + r.width / 2, y: r.top + r.height / 2, left: r.left, top: r.top, w: r.width, h: r.height }; })()`);
}

const mouse = (page, type, x, y) =>
  cmd(page, "Input.dispatchMouseEvent", { type, x, y, button: "left", buttons: type === "mouseReleased" ? 0 : 1, clickCount: 1 });

// Draws a 7 on the pad with the mouse (two strokes: the bar, the stem).
async function drawSeven(page) {
  const pad = await centre(page, "#pad");
  const at = (fx, fy) => [pad.left + fx * pad.w, pad.top + fy * pad.h];
  for (const stroke of [[[0.25, 0.22], [0.5, 0.22], [0.75, 0.22]], [[0.75, 0.22], [0.62, 0.5], [0.5, 0.8]]]) {
    const [x0, y0] = at(...stroke[0]);
    await mouse(page, "mousePressed", x0, y0);
    for (let i = 1; i < stroke.length; i++) {
      const [xa, ya] = at(...stroke[i - 1]), [xb, yb] = at(...stroke[i]);
      for (let k = 1; k <= 8; k++) await mouse(page, "mouseMoved", xa + (xb - xa) * k / 8, ya + (yb - ya) * k / 8);
    }
    const [x1, y1] = at(...stroke[stroke.length - 1]);
    await mouse(page, "mouseReleased", x1, y1);
  }
}

async function click(page, selector) {
  const { x, y } = await centre(page, selector);
  await mouse(page, "mousePressed", x, y);
  await mouse(page, "mouseReleased", x, y);
}

// What the result area shows: digit, hint line, error, bars marked best.
const resultState = (page) => evaluate(page, `({
  digit: document.getElementById("digit").textContent,
  confidence: document.getElementById("confidence").textContent,
  error: document.getElementById("error").textContent,
  best: document.querySelectorAll("#bars li.best").length })`);

// Closes the browser (politely, then its whole process group) and removes
// its profile; a leftover file is not a failure (the profile lives in the
// caller's temporary folder).
async function close(browser) {
  const gone = new Promise((r) => (browser.exited ? r() : browser.proc.on("exit", r)));
  send(browser, "Browser.close").catch(() => {});
  if (await Promise.race([gone.then(() => true), sleep(3000).then(() => false)]) === false) {
    try { process.kill(-browser.proc.pid, "SIGKILL"); } catch (err) { /* already gone */ }
    await Promise.race([gone, sleep(3000)]);
  }
  try {
    fs.rmSync(browser.profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  } catch (err) {
    console.error(`note: ${browser.profile} not removed: ${err.message}`);
  }
}

// ---- the checks ---------------------------------------------------------------------

function check(ok, what, state) {
  if (!ok) throw new Error(`${what}: the page shows ${JSON.stringify(state)}`);
  console.log(`ok: ${what}`);
}

async function main() {
  const browser = launch();
  const timer = setTimeout(() => { console.error("FAIL: timed out after 90 s"); process.exit(1); }, 90000);
  try {
    await send(browser, "Browser.getVersion").then((v) => console.log(`browser: ${v.product}`));
    // the predictions on their way: sent, not yet answered or failed
    const inFlight = new Set();
    browser.listeners.push((msg) => {
      if (msg.method === "Network.requestWillBeSent" && msg.params.request.url.endsWith("/api/predict"))
        inFlight.add(msg.params.requestId);
      else if (msg.method === "Network.loadingFinished" || msg.method === "Network.loadingFailed")
        inFlight.delete(msg.params.requestId);
    });
    const page = await openPage(browser, url);
    const predicts = () => waitEvent(browser, "Network.requestWillBeSent", (p) => p.request.url.endsWith("/api/predict"));

    // 1. the control: a drawing gets its answer, however late
    let sent = predicts();
    await drawSeven(page);
    await sent;
    await sleep(DELAY + 1500);
    let s = await resultState(page);
    check(/^[0-9]$/.test(s.digit) && s.best === 1 && /% sure/.test(s.confidence), "an answer arrives after the delay", s);

    // 2. Clear while the prediction is in flight
    await click(page, "#clear");
    sent = predicts();
    await drawSeven(page);
    await sent;
    check(inFlight.size > 0, "a prediction is in flight when Clear is pressed", { inFlight: inFlight.size });
    await click(page, "#clear");
    await sleep(DELAY + 1500);
    s = await resultState(page);
    check(s.digit === "?" && s.best === 0 && s.error === "" && s.confidence === "Draw a digit",
      "Clear during a slow prediction: no digit, the hint is back", s);
    const shot = await cmd(page, "Page.captureScreenshot", { format: "png" });
    fs.writeFileSync(shotPath, Buffer.from(shot.data, "base64"));
    console.log(`screenshot: ${shotPath}`);

    // 3. a 50 MB upload: the 413 and its JSON come back
    const big = await evaluate(page, `(async () => {
      const body = new Blob([new Uint8Array(50 * 1000 * 1000)], { type: "image/png" });
      try {
        const res = await fetch("api/predict", { method: "POST", body, headers: { "Content-Type": "image/png" } });
        return { status: res.status, text: await res.text() };
      } catch (err) { return { status: 0, text: String(err) }; } })()`);
    check(big.status === 413 && /"error":".*over the .*limit/.test(big.text), "50 MB upload: 413 with its JSON error", big);


    // 4. CORS: a page on another origin calls the API (JSON: a preflight first)
    // (from /healthz: the page's own Content-Security-Policy allows no other origin)
    const other = url.replace("//127.0.0.1:", "//localhost:").replace(/\/?$/, "/healthz");
    const page2 = await openPage(browser, other);
    const cors = await evaluate(page2, `(async () => {
      try {
        const res = await fetch(${JSON.stringify(url.replace(/\/?$/, "/api/predict"))}, { method: "POST",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pixels: new Array(784).fill(0) }) });
        return { status: res.status, text: await res.text() };
      } catch (err) { return { status: 0, text: String(err) }; } })()`);
    check(cors.status === 422 && /no digit/.test(cors.text), `${other} calls the API of ${url} (CORS)`, cors);
  } finally {
    clearTimeout(timer);
    await close(browser);
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`FAIL: ${err.message}`);
  process.exit(1);
});
