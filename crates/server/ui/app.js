// netcost web UI: reads its state (view, window, aggregate, filter) from the URL, asks the API,
// and draws what the API answered. Three views: allocation (cost table and chart), cross-zone
// edges (with recommendations) and live (agents and top talkers). No framework and no build step, so the page works offline and
// stays readable; every number shown comes from the API unchanged (formatting only).
"use strict";

const GIB = 1073741824;
const CLASSES = [
  { key: "in_zone", label: "in-zone" },
  { key: "cross_zone", label: "cross-zone" },
  { key: "cross_region", label: "cross-region" },
  { key: "internet", label: "internet" },
];
const WINDOWS = ["1h", "24h", "7d", "today", "month"];
const AGGREGATES = ["namespace", "workload", "pod", "node"];
const VIEWS = ["allocation", "edges", "live"];
// The live view refreshes itself this often.
const LIVE_REFRESH_MS = 10000;

const params = new URLSearchParams(window.location.search);
const state = {
  view: VIEWS.includes(params.get("view")) ? params.get("view") : "allocation",
  window: params.get("window") || (params.get("view") === "edges" ? "7d" : "24h"),
  aggregate: params.get("aggregate") || "namespace",
  filter: params.get("filter") || "",
  sortKey: params.get("sort") || "total_cost",
  // Names sort A→Z by default, figures largest first.
  ascending: params.get("order") === "asc",
  result: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function query(extra) {
  const q = new URLSearchParams({ window: state.window, aggregate: state.aggregate });
  if (state.filter) q.set("filter", state.filter);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// Fetches JSON; a failure carries the API's own error message, or says the server is gone.
async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new ApiError(
      `Cannot reach the netcost server at ${window.location.origin} (${e.message}).`,
      "server_unreachable", 0);
  }
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { /* reported below */ }
  if (!response.ok) {
    const err = body && body.error;
    throw new ApiError(
      err ? err.message : `${path} answered HTTP ${response.status}: ${text.slice(0, 200)}`,
      err ? err.code : "http_" + response.status, response.status);
  }
  if (body === null) throw new ApiError(`${path} did not answer JSON`, "bad_answer", response.status);
  return body;
}

function hint(err) {
  switch (err.code) {
    case "backend_unreachable":
      return "Start Prometheus, or point netcost serve at it with --prometheus URL (or PROMETHEUS_URL).";
    case "backend_query_failed":
      return "Prometheus refused the query: check that it is Prometheus-compatible and not overloaded (see its logs).";
    case "store_failed":
      return "The embedded store failed: see netcost's log.";
    case "server_unreachable":
      return "Is netcost serve (or netcost demo) still running? Restart it and reload this page.";
    case "bad_filter":
      return "A filter is key:value terms separated by commas, e.g. namespace:shop,node:node-a.";
    case "bad_window":
      return "Pick a window from the list.";
    case "no_agents":
      return "Check that Prometheus scrapes the netcost agents on port 3001 (the chart's ServiceMonitor or PodMonitor, or a scrape job): netcost_agent_info should have a series per node.";
    default:
      return err.status >= 500 ? "See netcost's log for details." : "Check the address of this page.";
  }
}

function setStatus(kind, message, hintText) {
  const box = $("status");
  box.className = "status " + kind;
  box.textContent = message;
  if (hintText) box.appendChild(el("span", { class: "hint" }, hintText));
  document.body.dataset.state = kind;
}

const money = (v) => "$" + v.toFixed(2);
const gib = (c) => ((c.egress_bytes + c.ingress_bytes) / GIB).toFixed(3);

const COLUMNS = [
  { key: "name", label: null, value: (r) => r.name, text: (r) => r.name },
  ...CLASSES.flatMap((c) => {
    const cols = [{
      key: c.key + "_gib", label: c.label + " GiB",
      value: (r) => r[c.key].egress_bytes + r[c.key].ingress_bytes, text: (r) => gib(r[c.key]),
    }];
    // In-zone traffic is free on every provider: a cost column would only hold zeros.
    if (c.key !== "in_zone") {
      cols.push({ key: c.key + "_cost", label: c.label + " $", value: (r) => r[c.key].cost, text: (r) => money(r[c.key].cost), cost: true });
    }
    return cols;
  }),
  { key: "total_cost", label: "total $", value: (r) => r.total_cost, text: (r) => money(r.total_cost), cost: true },
  { key: "share", label: "share", value: (r) => r.share, text: (r) => (r.share * 100).toFixed(1) + "%" },
  { key: "monthly_rate", label: "$ / month", value: (r) => r.monthly_rate, text: (r) => money(r.monthly_rate) },
];

function renderHeader() {
  const row = $("header-row");
  row.replaceChildren();
  for (const col of COLUMNS) {
    const th = el("th", { "data-key": col.key, title: "sort" }, col.label || state.aggregate);
    if (col.key === state.sortKey) th.className = "sorted" + (state.ascending ? " asc" : "");
    th.addEventListener("click", () => {
      if (state.sortKey === col.key) state.ascending = !state.ascending;
      else { state.sortKey = col.key; state.ascending = col.key === "name"; }
      renderHeader();
      renderRows();
    });
    row.appendChild(th);
  }
}

function cells(tr, row) {
  for (const col of COLUMNS) {
    const td = el("td", {}, col.text(row));
    const cls = [];
    if (col.cost) cls.push("cost");
    if (col.key !== "name" && col.value(row) === 0) cls.push("zero");
    if (cls.length) td.className = cls.join(" ");
    tr.appendChild(td);
  }
}

function renderRows() {
  const result = state.result;
  const body = $("rows");
  body.replaceChildren();
  if (!result) return;
  const col = COLUMNS.find((c) => c.key === state.sortKey) || COLUMNS[COLUMNS.length - 3];
  const rows = result.allocations.slice();
  rows.sort((a, b) => {
    const x = col.value(a), y = col.value(b);
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return state.ascending ? order : -order;
  });
  for (const row of rows) {
    // data-* carry the API's exact figures, for scripts and tests that read the page.
    const tr = el("tr", { "data-name": row.name, "data-cost": String(row.total_cost) });
    cells(tr, row);
    body.appendChild(tr);
  }
  const foot = $("totals");
  foot.replaceChildren();
  const total = el("tr", { id: "total-row", "data-cost": String(result.total.total_cost) });
  cells(total, { ...result.total, name: `Total (${rows.length} ${state.aggregate}${rows.length === 1 ? "" : "s"})` });
  foot.appendChild(total);
}

function shortTime(iso, stepSeconds) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const date = `${d.getMonth() + 1}/${d.getDate()}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return stepSeconds >= 86400 ? date : stepSeconds >= 10800 ? `${date} ${time}` : time;
}

// A stacked bar per step, one colour per priced class; in-zone is free and so never a bar.
function renderChart(series) {
  const box = $("chart");
  box.replaceChildren();
  const priced = CLASSES.filter((c) => c.key !== "in_zone");
  const steps = series.steps;
  const W = 1200, H = 240, left = 56, right = 8, top = 10, bottom = 26;
  const max = Math.max(...steps.map((s) => priced.reduce((sum, c) => sum + s[c.key].cost, 0)), 0);
  $("chart-note").textContent = `· ${steps.length} steps of ${humanStep(series.step_seconds)}, USD, prices per ${series.unit}`;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "cost by class over time" });
  if (max <= 0) {
    chart.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no billed traffic in this window"));
    box.appendChild(chart);
    return;
  }
  const plotH = H - top - bottom, plotW = W - left - right;
  const y = (v) => top + plotH - (v / max) * plotH;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    chart.appendChild(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: "#e6e9ee" }));
    chart.appendChild(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, "$" + v.toFixed(max < 0.1 ? 3 : 2)));
  }
  const slot = plotW / steps.length;
  const barW = Math.max(1, slot * 0.8);
  const labelEvery = Math.ceil(steps.length / 8);
  steps.forEach((s, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let base = 0;
    for (const c of priced) {
      const cost = s[c.key].cost;
      if (cost <= 0) continue;
      const rect = svg("rect", {
        x: x, width: barW, y: y(base + cost), height: y(base) - y(base + cost),
        fill: `var(--${c.key.replace("_", "-")})`, "data-class": c.key, "data-step": i,
      });
      rect.appendChild(svg("title", {}, `${shortTime(s.start, series.step_seconds)}: ${c.label} ${money(cost)}`));
      chart.appendChild(rect);
      base += cost;
    }
    if (i % labelEvery === 0) {
      chart.appendChild(svg("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle" }, shortTime(s.start, series.step_seconds)));
    }
  });
  box.appendChild(chart);
  const legend = el("div", { class: "legend" });
  for (const c of priced) {
    const item = el("span");
    item.appendChild(el("span", { class: "swatch", style: `background: var(--${c.key.replace("_", "-")})` }));
    item.appendChild(document.createTextNode(c.label));
    legend.appendChild(item);
  }
  legend.appendChild(el("span", {}, "in-zone traffic is free"));
  box.appendChild(legend);
}

function humanStep(s) {
  if (s % 86400 === 0) return s / 86400 + " d";
  if (s % 3600 === 0) return s / 3600 + " h";
  return s / 60 + " min";
}

const bytesRate = (v) => {
  const units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
};

const workloadName = (w) => w.kind === "__other__" ? "other pairs (over the agents' --max-workload-pairs)" :
  (w.namespace ? `${w.namespace}/${w.name}` : w.name) +
  (w.kind && w.kind !== "External" && w.kind !== "Node" ? ` (${w.kind})` : "");

function renderEdges(result) {
  const body = $("edge-rows");
  body.replaceChildren();
  $("edges-note").textContent = `· ${result.start} to ${result.end} · prices: ${result.provider}, per ${result.unit}`;
  const summary = $("edges-summary");
  summary.replaceChildren();
  if (result.edges_total > 0) {
    summary.appendChild(document.createTextNode(`${result.edges_total} edge${result.edges_total === 1 ? "" : "s"} cost `));
    summary.appendChild(el("strong", { id: "edges-monthly" }, money(result.total_monthly_cost) + " a month"));
    summary.appendChild(document.createTextNode(" at this window's rate; the recommendations below could save up to "));
    summary.appendChild(el("strong", { id: "edges-saving" }, money(result.total_monthly_saving) + " a month"));
    summary.appendChild(document.createTextNode(result.edges.length < result.edges_total ? ` (showing the costliest ${result.edges.length}).` : "."));
  }
  for (const e of result.edges) {
    const tr = el("tr", {
      "data-client": workloadName(e.client), "data-server": workloadName(e.server),
      "data-class": e.class, "data-bytes": String(e.bytes), "data-monthly": String(e.monthly_cost),
    });
    tr.appendChild(el("td", {}, `${workloadName(e.client)} → ${workloadName(e.server)}`));
    const cls = el("td");
    cls.appendChild(el("span", { class: "class-tag " + e.class }, e.class));
    tr.appendChild(cls);
    tr.appendChild(el("td", { class: "zones", title: e.zones.join(", ") },
      e.zones.slice(0, 3).join(", ") + (e.zones.length > 3 ? ", …" : "")));
    tr.appendChild(el("td", {}, (e.bytes / GIB).toFixed(3)));
    tr.appendChild(el("td", { class: "cost" }, money(e.cost)));
    tr.appendChild(el("td", { class: "cost" }, money(e.monthly_cost)));
    const advice = el("td", { class: "advice" });
    if (e.recommendation) {
      advice.dataset.kind = e.recommendation.kind;
      advice.appendChild(document.createTextNode(e.recommendation.text));
      advice.appendChild(el("span", { class: "saving" }, `saves up to ${money(e.recommendation.monthly_saving)} a month`));
    } else {
      advice.textContent = "—";
    }
    tr.appendChild(advice);
    body.appendChild(tr);
  }
}

async function loadEdges() {
  let result;
  try {
    result = await getJson("/api/v1/edges?" + new URLSearchParams({ window: state.window, limit: "50" }));
  } catch (err) {
    setStatus("error", err.message, hint(err));
    return;
  }
  renderEdges(result);
  if (!result.has_pair_data) {
    setStatus("empty", `No workload pair data from ${result.start} to ${result.end}.`,
      "The agents export netcost_workload_traffic_bytes_total; if they have run for longer than this window, check that Prometheus scrapes them, or pick a longer window.");
  } else if (result.edges_total === 0) {
    setStatus("empty", "No workload traffic crossed a zone or a region in this window: nothing to move.", "");
  } else {
    setStatus("ready", "");
  }
}

function renderLive(live) {
  const agents = $("agent-rows");
  agents.replaceChildren();
  $("live-note").textContent = `· refreshed ${new Date().toLocaleTimeString()}, every ${LIVE_REFRESH_MS / 1000} s`;
  for (const a of live.agents) {
    const tr = el("tr", { "data-node": a.node, "data-entries": String(a.entries) });
    tr.appendChild(el("td", { title: a.instance }, a.node || a.instance));
    const stale = a.last_cycle_age_seconds === null || a.last_cycle_age_seconds > 120;
    tr.appendChild(el("td", { class: a.up && !stale ? "state-up" : "state-down" },
      !a.up ? "down" : stale ? "stalled" : "up"));
    tr.appendChild(el("td", {}, a.last_cycle_age_seconds === null ? "never" : `${a.last_cycle_age_seconds.toFixed(0)} s ago`));
    tr.appendChild(el("td", {}, a.cycle_ms.toFixed(1)));
    tr.appendChild(el("td", {}, a.entries.toLocaleString("en-US")));
    for (const n of [a.cycle_failures, a.malformed_entries, a.events_lost]) {
      tr.appendChild(el("td", n > 0 ? { class: "bad" } : {}, String(n)));
    }
    tr.appendChild(el("td", {}, String(a.workload_pairs)));
    agents.appendChild(tr);
  }
  const talkers = $("talker-rows");
  talkers.replaceChildren();
  $("talkers-note").textContent = `· average over the last ${live.rate_seconds / 60} minutes, both directions`;
  for (const t of live.talkers) {
    const name = t.namespace ? `${t.namespace}/${t.pod}` : t.pod;
    const tr = el("tr", { "data-pod": name, "data-rate": String(t.bytes_per_second) });
    tr.appendChild(el("td", {}, name));
    tr.appendChild(el("td", { class: "cost" }, bytesRate(t.bytes_per_second)));
    for (const c of CLASSES) {
      const v = t.by_class[c.label] || 0;
      tr.appendChild(el("td", v === 0 ? { class: "zero" } : {}, bytesRate(v)));
    }
    talkers.appendChild(tr);
  }
}

async function loadLive() {
  try {
    const live = await getJson("/api/v1/live");
    renderLive(live);
    if (live.agents.length === 0) {
      const err = new ApiError("No agents scraped: the backend has no netcost agent yet.", "no_agents", 200);
      setStatus("empty", err.message, hint(err));
    } else if (live.talkers.length === 0) {
      setStatus("empty", `No traffic in the last ${live.rate_seconds / 60} minutes.`,
        "The agents run but count no bytes: see their netcost_unattributed_bytes_total and logs.");
    } else {
      setStatus("ready", "");
    }
  } catch (err) {
    setStatus("error", err.message, hint(err));
  }
  setTimeout(loadLive, LIVE_REFRESH_MS);
}

function showView() {
  for (const v of VIEWS) {
    $("view-" + v).hidden = v !== state.view;
    const link = $("nav-" + v);
    link.classList.toggle("current", v === state.view);
    if (v !== "live") link.href = "/?" + new URLSearchParams({ view: v, window: state.window });
  }
  for (const node of document.querySelectorAll(".allocation-only")) node.hidden = state.view !== "allocation";
  $("controls").hidden = state.view === "live";
  $("view").value = state.view;
  document.title = `netcost · ${{ allocation: "network cost", edges: "cross-zone edges", live: "live" }[state.view]}`;
}

async function load() {
  showView();
  getJson("/api/v1/info").then((info) => {
    $("source").textContent = `data: ${info.backend} · prices: ${info.provider}, per ${info.unit}`;
  }).catch(() => { /* each view's request reports the problem */ });
  $("window").value = WINDOWS.includes(state.window) ? state.window : "24h";
  if (!WINDOWS.includes(state.window)) {
    // A window typed into the address (e.g. START,END) still works; show it in the picker.
    $("window").appendChild(el("option", { value: state.window }, state.window));
    $("window").value = state.window;
  }
  if (state.view === "edges") return loadEdges();
  if (state.view === "live") return loadLive();
  return loadAllocation();
}

async function loadAllocation() {
  if (!AGGREGATES.includes(state.aggregate)) {
    $("aggregate").appendChild(el("option", { value: state.aggregate }, state.aggregate));
  }
  $("aggregate").value = state.aggregate;
  $("filter").value = state.filter;
  $("csv").href = "/api/v1/allocation.csv?" + query();
  $("table-title").textContent = `Cost by ${state.aggregate}`;
  renderHeader();

  const series = getJson("/api/v1/allocation/timeseries?" + new URLSearchParams(
    Object.fromEntries([["window", state.window], ...(state.filter ? [["filter", state.filter]] : [])])));
  let result;
  try {
    result = await getJson("/api/v1/allocation?" + query());
  } catch (err) {
    $("chart-section").hidden = true;
    setStatus("error", err.message, hint(err));
    return;
  }
  state.result = result;
  renderRows();
  $("period").textContent = `${result.start} to ${result.end} · prices: ${result.provider} (${result.pricing_source}), per ${result.unit}`;
  $("pricing-notes").replaceChildren(...(result.notes || []).map((note) => el("li", {}, note)));
  try {
    renderChart(await series);
  } catch (err) {
    $("chart").replaceChildren(el("p", { class: "status error" }, "Chart: " + err.message));
  }
  if (result.allocations.length === 0) {
    setStatus("empty",
      `No traffic in this window (${result.start} to ${result.end})` + (state.filter ? ` matching ${state.filter}.` : "."),
      state.filter
        ? "Clear the filter or pick a longer window."
        : "Pick a longer window. If the agents have run for longer than that, check that Prometheus scrapes them: kubecost_pod_network_egress_bytes_total should have series.");
    return;
  }
  setStatus("ready", "");
}

for (const id of ["window", "aggregate"]) {
  $(id).addEventListener("change", () => $("controls").requestSubmit());
}
load();
