// The live page of meshdemo's loadtest: reads /events (one JSON object per second)
// and draws it. No library: SVG charts written here, colours from the Okabe-Ito
// palette, every number also in the table at the bottom for screen readers.
"use strict";

const WINDOW = 120; // seconds the charts show
const SVGNS = "http://www.w3.org/2000/svg";
// Okabe-Ito, in the order versions get them (yellow last: weak on white).
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
const DASHES = ["", "8 4", "2 3", "12 3 2 3", "4 4", "1 2"];

let points = [];   // {t, snap} of the current run, oldest first
let last = null;   // latest event
let versionColour = new Map();
let pending = false;

const $ = (id) => document.getElementById(id);

function colourOf(version) {
  if (!versionColour.has(version)) {
    versionColour.set(version, PALETTE[versionColour.size % PALETTE.length]);
  }
  return versionColour.get(version);
}

function statusColour(code) {
  if (code === "errors") return "#000000";
  const c = Number(code);
  if (c === 429) return "#E69F00";
  if (c === 503) return "#D55E00";
  if (c === 504) return "#CC79A7";
  if (c >= 200 && c < 300) return "#009E73";
  if (c >= 500) return "#0072B2";
  return "#56B4E9";
}

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }
function pct(n, d) { return d > 0 ? (100 * n / d).toFixed(1) + " %" : "–"; }
function sortedKeys(obj) { return Object.keys(obj || {}).sort((a, b) => a.localeCompare(b, "en", { numeric: true })); }
function fmtMS(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }

// lineChart draws series [{name, colour, dash, values: [[t, v]...]}] over the window,
// with labelled axes. stacked: areas stacked to 100 (shares).
function lineChart(series, opts) {
  const W = 480, H = 270, L = 86, R = 14, T = 14, B = 66;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label });
  let tMax = 0;
  for (const p of points) tMax = Math.max(tMax, p.t);
  const tMin = Math.max(0, tMax - WINDOW);
  const span = Math.max(1, tMax - tMin);
  let yMax = opts.yMax || 0;
  if (!opts.yMax) {
    for (const s of series) for (const [, v] of s.values) yMax = Math.max(yMax, v);
    yMax = niceCeil(yMax || 1);
  }
  const x = (t) => L + (W - L - R) * (t - tMin) / span;
  const y = (v) => T + (H - T - B) * (1 - v / yMax);
  // grid and y ticks
  for (let i = 0; i <= 4; i++) {
    const v = yMax * i / 4;
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#ddd", "stroke-width": 1 }));
    svg.append(el("svg:text", { x: L - 8, y: y(v) + 8, "text-anchor": "end", "font-size": 22 }, fmtTick(v)));
  }
  // x ticks
  const step = niceStep(span / 4);
  for (let t = Math.ceil(tMin / step) * step; t <= tMax + 1e-9; t += step) {
    svg.append(el("svg:text", { x: x(t), y: H - B + 26, "text-anchor": "middle", "font-size": 22 }, String(Math.round(t))));
  }
  svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#222", "stroke-width": 2 }));
  svg.append(el("svg:line", { x1: L, x2: L, y1: T, y2: y(0), stroke: "#222", "stroke-width": 2 }));
  svg.append(el("svg:text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 22 }, "seconds of the run"));
  svg.append(el("svg:text", { x: 18, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 22, transform: `rotate(-90 18 ${(T + H - B) / 2})` }, opts.yLabel));
  if (opts.stacked) {
    let base = points.filter((p) => p.t >= tMin).map((p) => [p.t, 0]);
    for (const s of series) {
      const top = base.map(([t, b], i) => [t, b + (s.values[i] ? s.values[i][1] : 0)]);
      if (top.length > 0) {
        const d = top.map(([t, v]) => `${x(t)},${y(v)}`).concat(base.slice().reverse().map(([t, v]) => `${x(t)},${y(v)}`));
        svg.append(el("svg:polygon", { points: d.join(" "), fill: s.colour, "fill-opacity": 0.85, stroke: "#fff", "stroke-width": 1, "data-series": s.name }));
      }
      base = top;
    }
  } else {
    for (const s of series) {
      const vals = s.values.filter(([t]) => t >= tMin);
      if (vals.length === 0) continue;
      svg.append(el("svg:polyline", {
        points: vals.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), fill: "none", stroke: s.colour,
        "stroke-width": 3.5, "stroke-dasharray": s.dash || "", "stroke-linejoin": "round", "data-series": s.name,
      }));
    }
  }
  return svg;
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function niceStep(v) { return v <= 1 ? 1 : niceCeil(v); }
function fmtTick(v) { return v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(+v.toFixed(2)); }

// legend: a swatch (colour, and a white stripe for dashed lines), a label and, big,
// the current value.
function legend(items) {
  const ul = el("ul", { class: "legend" });
  for (const it of items) {
    const li = el("li", { "data-series": it.name });
    const sw = el("svg:svg", { width: "1.6em", height: "0.9em", viewBox: "0 0 16 9", "aria-hidden": "true" });
    sw.append(el("svg:rect", { x: 0.5, y: 0.5, width: 15, height: 8, fill: it.colour, stroke: "#333" }));
    if (it.dash) sw.append(el("svg:line", { x1: 0, x2: 16, y1: 4.5, y2: 4.5, stroke: "#fff", "stroke-width": 2, "stroke-dasharray": "3 2" }));
    li.append(sw, document.createTextNode(" " + it.label));
    if (it.big) li.append(el("span", { class: "big" }, " " + it.big));
    ul.append(li);
  }
  return ul;
}

// hopCharts: per service, the share of each version per second, stacked to 100 %.
function drawHops() {
  const box = $("hop-charts");
  box.replaceChildren();
  const snap = last && last.snapshot;
  if (!snap) { box.append(el("p", {}, "Waiting for the first second of a run.")); return; }
  const services = sortedKeys(snap.totals.hops);
  if (services.length === 0) { box.append(el("p", {}, "No response carried the X-Meshdemo-Path header yet.")); return; }
  for (const svc of services) {
    const versions = sortedKeys(snap.totals.hops[svc]);
    versions.forEach(colourOf);
    const series = versions.map((v) => ({
      name: svc + "/" + v, colour: colourOf(v),
      values: points.map((p) => {
        const per = (p.snap.last.hops || {})[svc] || {};
        const n = sum(per);
        return [p.t, n > 0 ? 100 * (per[v] || 0) / n : 0];
      }),
    }));
    const div = el("div", { class: "hop", "data-service": svc });
    div.append(el("h3", {}, svc));
    const lastPer = (snap.last.hops || {})[svc] || {};
    const lastN = sum(lastPer);
    div.append(legend(versions.map((v) => ({ name: svc + "/" + v, colour: colourOf(v), label: v, big: pct(lastPer[v] || 0, lastN) }))));
    div.append(lineChart(series, { stacked: true, yMax: 100, yLabel: "share (%)", label: `${svc}: share of each version per second` }));
    const inst = snap.totals.instances[svc] || {};
    div.append(el("p", { class: "instances" }, "Instances seen: " + sortedKeys(inst).map((i) => `${i} (${inst[i]})`).join(", ")));
    box.append(div);
  }
}

function drawStatus() {
  const snap = last.snapshot;
  const codes = sortedKeys(snap.totals.status);
  const hasErr = sum(snap.totals.errors) > 0;
  const names = hasErr ? codes.concat(["errors"]) : codes;
  const series = names.map((c, i) => ({
    name: c, colour: statusColour(c), dash: DASHES[i % DASHES.length],
    values: points.map((p) => [p.t, (c === "errors" ? sum(p.snap.last.errors) : (p.snap.last.status[c] || 0)) / (p.snap.last_seconds || 1)]),
  }));
  const box = $("chart-status");
  box.replaceChildren(legend(series.map((s) => ({ name: s.name, colour: s.colour, dash: s.dash, label: s.name === "errors" ? "no response" : s.name }))),
    lineChart(series, { yLabel: "responses/s", label: "status codes, responses per second" }));
}

function drawLatency() {
  const keys = [["p50_ms", "p50", "#009E73", ""], ["p90_ms", "p90", "#E69F00", "8 4"], ["p99_ms", "p99", "#D55E00", "2 3"]];
  const series = keys.map(([k, name, colour, dash]) => ({
    name, colour, dash, values: points.filter((p) => p.snap.last.requests > 0).map((p) => [p.t, p.snap.last_latency[k]]),
  }));
  const ll = last.snapshot.last_latency;
  $("chart-latency").replaceChildren(
    legend(keys.map(([k, name, colour, dash]) => ({ name, colour, dash, label: name, big: fmtMS(ll[k]) + " ms" }))),
    lineChart(series, { yLabel: "milliseconds", label: "latency percentiles per second" }));
}

function drawRetry() {
  const series = [{
    name: "retried", colour: "#CC79A7",
    values: points.map((p) => [p.t, p.snap.last.requests > 0 ? 100 * p.snap.last.retried / p.snap.last.requests : 0]),
  }];
  const s = last.snapshot;
  $("chart-retry").replaceChildren(
    legend([{ name: "retried", colour: "#CC79A7", label: "attempt ≥ 2 on some hop", big: pct(s.last.retried, s.last.requests) }]),
    lineChart(series, { yLabel: "% of responses", label: "share of responses that needed a retry, per second" }));
}

function drawChecks() {
  const ul = $("checks");
  ul.replaceChildren();
  const checks = (last && last.checks) || [];
  if (checks.length === 0) { ul.append(el("li", { class: "none" }, "No checks: give expectations to see live verdicts.")); return; }
  for (const c of checks) {
    const li = el("li", { class: c.ok ? "pass" : "fail", "data-kind": c.kind, "data-subject": c.subject });
    li.append(el("span", { class: "verdict" }, c.ok ? "PASS" : "FAIL"));
    li.append(document.createTextNode(`${c.kind} ${c.subject}: expected ${c.expected}, observed ${c.observed}`));
    if (c.p_value !== undefined && c.p_value !== null) {
      li.append(document.createTextNode(", "), el("span", { class: "pvalue" }, "p = " + c.p_value.toPrecision(3)));
    }
    li.append(el("span", { class: "msg" }, c.message));
    ul.append(li);
  }
}

function drawTable() {
  const tb = document.querySelector("#numbers tbody");
  tb.replaceChildren();
  const s = last.snapshot;
  const row = (key, label, a, aShare, b, bShare) => {
    const tr = el("tr", { "data-key": key });
    tr.append(el("th", { scope: "row" }, label), el("td", { class: "last" }, a), el("td", { class: "last-share" }, aShare),
      el("td", { class: "total" }, b), el("td", { class: "total-share" }, bShare));
    tb.append(tr);
  };
  row("requests", "Requests", String(s.last.requests), "", String(s.totals.requests), "");
  for (const c of sortedKeys(s.totals.status)) {
    row("status:" + c, "Status " + c, String(s.last.status[c] || 0), pct(s.last.status[c] || 0, s.last.requests),
      String(s.totals.status[c]), pct(s.totals.status[c], s.totals.requests));
  }
  for (const k of sortedKeys(s.totals.errors)) {
    row("error:" + k, "No response: " + k, String(s.last.errors[k] || 0), pct(s.last.errors[k] || 0, s.last.requests),
      String(s.totals.errors[k]), pct(s.totals.errors[k], s.totals.requests));
  }
  for (const svc of sortedKeys(s.totals.hops)) {
    const lastPer = (s.last.hops || {})[svc] || {};
    const tot = s.totals.hops[svc];
    for (const v of sortedKeys(tot)) {
      row("version:" + svc + "/" + v, `${svc} ${v}`, String(lastPer[v] || 0), pct(lastPer[v] || 0, sum(lastPer)), String(tot[v]), pct(tot[v], sum(tot)));
    }
  }
  row("retried", "Retried", String(s.last.retried), pct(s.last.retried, s.last.requests), String(s.totals.retried), pct(s.totals.retried, s.totals.requests));
  if (s.totals.path_missing > 0) row("path-missing", "No path header", String(s.last.path_missing), "", String(s.totals.path_missing), "");
  for (const k of ["p50_ms", "p90_ms", "p99_ms"]) {
    row(k, k.replace("_ms", "") + " latency (ms)", fmtMS(s.last_latency[k]), "", fmtMS(s.latency[k]), "");
  }
}

function drawHeadline() {
  const st = $("state");
  const state = last ? last.state : "connecting";
  st.textContent = state;
  st.className = "badge " + state;
  let text = "";
  if (last && last.run) {
    text = `${last.run.url}` + (last.run.host ? ` (Host ${last.run.host})` : "") + (last.run.rate ? `, ${last.run.rate} req/s` : "");
  }
  if (last && last.snapshot) {
    const s = last.snapshot;
    text += ` · ${Math.round(s.elapsed_seconds)} s · ${s.totals.requests} requests`;
    if (last.throughput_rps) text += ` · ${last.throughput_rps.toFixed(1)} req/s overall`;
  }
  if (last && last.error) text += " · " + last.error;
  $("headline").textContent = text;
  $("stop").disabled = state !== "running";
}

function draw() {
  pending = false;
  drawHeadline();
  drawChecks();
  if (!last || !last.snapshot) { drawHops(); return; }
  drawHops();
  drawStatus();
  drawLatency();
  drawRetry();
  drawTable();
}

function onEvent(ev) {
  if (ev.state === "running" && !ev.snapshot) { points = []; versionColour = new Map(); } // a new run
  if (ev.snapshot && ev.state === "running") points.push({ t: ev.snapshot.elapsed_seconds, snap: ev.snapshot });
  while (points.length > WINDOW + 1) points.shift();
  last = ev;
  document.body.dataset.seq = String(ev.seq);
  if (!pending) { pending = true; requestAnimationFrame(draw); }
}

function lines(v) { return v.split("\n").map((s) => s.trim()).filter((s) => s !== ""); }

async function post(path, body) {
  const msg = $("message");
  msg.textContent = "";
  msg.className = "";
  let resp;
  try {
    resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: body === undefined ? "{}" : JSON.stringify(body) });
  } catch (e) {
    msg.textContent = "loadtest is not reachable: " + e.message;
    return;
  }
  if (resp.ok) return;
  let detail = resp.status + " " + resp.statusText;
  try { const p = await resp.json(); if (p.detail) detail = p.detail; } catch (e) { /* not JSON */ }
  msg.textContent = detail;
  msg.dataset.status = String(resp.status);
}

function startRun(e) {
  e.preventDefault();
  const rate = Number($("f-rate").value.trim());
  post("/api/run", {
    url: $("f-url").value, host: $("f-host").value, rate: Number.isFinite(rate) ? rate : -1,
    duration: $("f-duration").value, headers: lines($("f-headers").value),
    expect: lines($("f-expect").value), expect_status: lines($("f-expect-status").value.replaceAll(";", "\n")),
  });
}

async function init() {
  $("runform").addEventListener("submit", startRun);
  $("stop").addEventListener("click", () => post("/api/stop"));
  try {
    const st = await (await fetch("/api/run")).json();
    const f = st.form;
    $("f-url").value = f.url || "";
    $("f-host").value = f.host || "";
    $("f-rate").value = f.rate ? String(f.rate) : "50";
    $("f-duration").value = f.duration || "";
    $("f-headers").value = (f.headers || []).join("\n");
    $("f-expect").value = (f.expect || []).join("\n");
    $("f-expect-status").value = (f.expect_status || []).join(";");
  } catch (e) { $("message").textContent = "could not read the run settings: " + e.message; }
  const es = new EventSource("/events");
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
  es.onerror = () => { $("state").textContent = "reconnecting"; $("state").className = "badge"; };
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
