// netcost web UI: reads its state (view, window, aggregate, filter, workload, pod) from the URL,
// asks the API, and draws what the API answered. Views: the overview (the month, what to change
// first, cost by class and namespace, the zone × zone matrix), allocation (cost table and chart,
// with drill-down namespace → workloads → pods), peers (a workload's edges, priced), cross-zone
// edges (with recommendations) and live (agents and top talkers). No framework and no build
// step, so the page works offline and stays readable; every number shown comes from the API
// unchanged (formatting, a class's share of the total, and ranking the changes by their saving,
// only).
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
const VIEWS = ["overview", "allocation", "edges", "peers", "live"];
// How many changes the overview leads with.
const TOP_CHANGES = 5;
// The live view refreshes itself this often.
const LIVE_REFRESH_MS = 10000;

const params = new URLSearchParams(window.location.search);
const state = {
  view: VIEWS.includes(params.get("view")) ? params.get("view") : "overview",
  window: params.get("window") || (params.get("view") === "edges" ? "7d" : "24h"),
  // The peers view: a workload (`namespace/Kind/name`) and, when reached from a pod, the pod.
  workload: params.get("workload") || "",
  pod: params.get("pod") || "",
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
// RFC 3339 from the API, shortened for a sentence: `2026-12-01 13:31 UTC`.
const when = (iso) => iso.slice(0, 16).replace("T", " ") + " UTC";
const period = (r) => `${when(r.start)} to ${when(r.end)}`;
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

// Sorting is by buttons in the header cells, so that a keyboard can sort too; aria-sort says
// which column the rows are in order of.
function renderHeader() {
  const row = $("header-row");
  row.replaceChildren();
  for (const col of COLUMNS) {
    const th = el("th", { scope: "col", "data-key": col.key });
    const button = el("button", { type: "button", class: "sort", "data-key": col.key }, col.label || state.aggregate);
    if (col.key === state.sortKey) {
      th.className = "sorted" + (state.ascending ? " asc" : "");
      th.setAttribute("aria-sort", state.ascending ? "ascending" : "descending");
    }
    button.addEventListener("click", () => {
      if (state.sortKey === col.key) state.ascending = !state.ascending;
      else { state.sortKey = col.key; state.ascending = col.key === "name"; }
      renderHeader();
      renderRows();
      row.querySelector(`button[data-key="${col.key}"]`).focus();
    });
    th.appendChild(button);
    row.appendChild(th);
  }
}

// The terms of the allocation filter, by key (`namespace`, `workload`, …).
function filterTerms() {
  const terms = {};
  for (const term of state.filter.split(",")) {
    const at = term.indexOf(":");
    if (at > 0) terms[term.slice(0, at).trim()] = term.slice(at + 1).trim();
  }
  return terms;
}

const pageHref = (q) => "/?" + new URLSearchParams({ window: state.window, ...q });
const workloadsHref = (namespace) => pageHref({ view: "allocation", aggregate: "workload", filter: `namespace:${namespace}` });
const podsHref = (namespace, kindName) => pageHref({ view: "allocation", aggregate: "pod", filter: `namespace:${namespace},workload:${kindName}` });
const peersHref = (workload, pod) => pageHref({ view: "peers", workload, ...(pod ? { pod } : {}) });

// Where a row of the allocation table leads: a namespace to its workloads, a workload to its
// pods, a pod (when its workload is known from the filter) to its workload's peers.
function rowHref(name) {
  if (name.startsWith("__")) return null;
  const parts = name.split("/");
  if (state.aggregate === "namespace") return workloadsHref(name);
  // A pod of no workload is its own workload (`ns/Pod/name`) to the pair counters.
  if (state.aggregate === "workload" && parts[1] === "Pod") return peersHref(name, parts.slice(2).join("/"));
  if (state.aggregate === "workload" && parts.length >= 3) return podsHref(parts[0], parts.slice(1).join("/"));
  const terms = filterTerms();
  if (state.aggregate === "pod" && terms.workload && parts.length === 2) {
    return peersHref(`${parts[0]}/${terms.workload}`, parts[1]);
  }
  return null;
}

// Breadcrumbs from what the URL narrows to: all namespaces › namespace › workload › pod.
function renderBreadcrumbs() {
  const crumbs = [];
  let namespace = "", kindName = "", pod = "";
  if (state.view === "allocation") {
    const terms = filterTerms();
    namespace = terms.namespace || "";
    kindName = terms.workload || "";
  } else if (state.view === "peers") {
    const parts = state.workload.split("/");
    namespace = parts[0] || "";
    kindName = parts.slice(1).join("/");
    pod = state.pod;
  }
  if (!namespace) { $("breadcrumbs").hidden = true; return; }
  crumbs.push(["All namespaces", pageHref({ view: "allocation", aggregate: "namespace" })]);
  crumbs.push([namespace, workloadsHref(namespace)]);
  if (kindName) crumbs.push([kindName, podsHref(namespace, kindName)]);
  if (pod) crumbs.push([pod, null]);
  if (state.view === "peers") crumbs.push(["peers", null]);
  const list = $("crumbs");
  list.replaceChildren();
  crumbs.forEach(([text, href], i) => {
    const li = el("li");
    const last = i === crumbs.length - 1;
    if (href && !last) li.appendChild(el("a", { href }, text));
    else li.appendChild(el("span", last ? { "aria-current": "page" } : {}, text));
    list.appendChild(li);
  });
  $("breadcrumbs").hidden = false;
}

function cells(tr, row) {
  for (const col of COLUMNS) {
    const td = el(col.key === "name" ? "th" : "td", col.key === "name" ? { scope: "row" } : {});
    const href = col.key === "name" && row.name !== undefined && !row.total ? rowHref(row.name) : null;
    if (href) td.appendChild(el("a", { href, class: "drill" }, col.text(row)));
    else td.textContent = col.text(row);
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
  cells(total, { ...result.total, total: true, name: `Total (${rows.length} ${state.aggregate}${rows.length === 1 ? "" : "s"})` });
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
        fill: classFill(c.key), stroke: "#fff", "stroke-width": 0.5, "data-class": c.key, "data-step": i,
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
    item.appendChild(classSwatch(c.key));
    item.appendChild(document.createTextNode(c.label));
    legend.appendChild(item);
  }
  legend.appendChild(el("span", {}, "in-zone traffic is free"));
  box.appendChild(legend);
}

// Each class has a colour and a pattern (defined once in index.html), so that the class can be
// told without seeing colour; the pictures also carry the class's name in text.
const classFill = (key) => `url(#pattern-${key.replace("_", "-")})`;

function classSwatch(key) {
  const box = svg("svg", { class: "swatch", viewBox: "0 0 12 12", "aria-hidden": "true" });
  box.appendChild(svg("rect", { width: 12, height: 12, fill: classFill(key), stroke: "#5d6776", "stroke-width": 0.5 }));
  return box;
}

const classKey = (label) => label.replace("-", "_");

function classTag(cls) {
  const tag = el("span", { class: "class-tag " + cls });
  tag.appendChild(classSwatch(classKey(cls)));
  tag.appendChild(document.createTextNode(cls));
  return tag;
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

const isPods = (w) => !["Node", "External", "__other__"].includes(w.kind);
const workloadId = (w) => `${w.namespace}/${w.kind}/${w.name}`;

// A workload's name, as a link to its peers where it is a workload of pods.
function workloadLink(w) {
  if (!isPods(w) || !w.namespace) return document.createTextNode(workloadName(w));
  return el("a", { href: peersHref(workloadId(w)), class: "drill" }, workloadName(w));
}

function edgeCells(tr, e, withAdvice) {
  const name = el("th", { scope: "row" });
  name.append(workloadLink(e.client), " → ", workloadLink(e.server));
  tr.appendChild(name);
  const cls = el("td");
  cls.appendChild(classTag(e.class));
  tr.appendChild(cls);
  tr.appendChild(el("td", { class: "zones", title: e.zones.join(", ") },
    e.zones.slice(0, 3).join(", ") + (e.zones.length > 3 ? ", …" : "")));
  tr.appendChild(el("td", {}, (e.bytes / GIB).toFixed(3)));
  tr.appendChild(el("td", { class: "cost" }, money(e.cost)));
  tr.appendChild(el("td", { class: "cost" }, money(e.monthly_cost)));
  if (!withAdvice) return;
  const advice = el("td", { class: "advice" });
  if (e.recommendation) {
    advice.dataset.kind = e.recommendation.kind;
    advice.appendChild(document.createTextNode(e.recommendation.text));
    advice.appendChild(el("span", { class: "saving" }, `saves up to ${money(e.recommendation.monthly_saving)} a month`));
  } else {
    advice.textContent = "—";
  }
  tr.appendChild(advice);
}

function edgeRow(e) {
  return el("tr", {
    "data-client": workloadName(e.client), "data-server": workloadName(e.server),
    "data-class": e.class, "data-bytes": String(e.bytes), "data-monthly": String(e.monthly_cost),
  });
}

// Workload → workload edges lead, those with advice first (largest saving first); edges with a
// node, an outside end or `__other__` have nothing to move and are grouped apart, folded.
function renderEdges(result) {
  const body = $("edge-rows");
  body.replaceChildren();
  $("edges-note").textContent = `· ${period(result)} · prices: ${result.provider}, per ${result.unit}`;
  const summary = $("edges-summary");
  summary.replaceChildren();
  if (result.edges_total > 0) {
    summary.appendChild(document.createTextNode(`${result.edges_total} edge${result.edges_total === 1 ? "" : "s"} cost `));
    summary.appendChild(el("strong", { id: "edges-monthly" }, money(result.total_monthly_cost) + " a month"));
    summary.appendChild(document.createTextNode(" at this window's rate; the recommendations below could save up to "));
    summary.appendChild(el("strong", { id: "edges-saving" }, money(result.total_monthly_saving) + " a month"));
    summary.appendChild(document.createTextNode(result.edges.length < result.edges_total ? ` (showing the costliest ${result.edges.length}).` : "."));
  }
  const workloads = result.edges.filter((e) => isPods(e.client) && isPods(e.server));
  const others = result.edges.filter((e) => !(isPods(e.client) && isPods(e.server)));
  const saving = (e) => (e.recommendation ? e.recommendation.monthly_saving : -1);
  workloads.sort((a, b) => saving(b) - saving(a) || b.monthly_cost - a.monthly_cost);
  for (const e of workloads) {
    const tr = edgeRow(e);
    edgeCells(tr, e, true);
    body.appendChild(tr);
  }
  const otherBody = $("other-edge-rows");
  otherBody.replaceChildren();
  for (const e of others) {
    const tr = edgeRow(e);
    tr.dataset.group = "other";
    edgeCells(tr, e, false);
    otherBody.appendChild(tr);
  }
  $("other-edges-section").hidden = others.length === 0;
  const otherMonthly = others.reduce((sum, e) => sum + e.monthly_cost, 0);
  $("other-edges-summary").textContent =
    `${others.length} edge${others.length === 1 ? "" : "s"} with a node or an outside end, ${money(otherMonthly)} a month`;
}

async function loadEdges() {
  let result;
  try {
    result = await getJson("/api/v1/edges?" + new URLSearchParams({ window: state.window, limit: "200" }));
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

// The peers view: every edge of one workload, any class. The counters are per workload pair,
// so a pod's own peers cannot be had: the page says that it shows the pod's workload's edges.
async function loadPeers() {
  const parts = state.workload.split("/");
  const title = $("peers-title");
  const workload = { namespace: parts[0], kind: parts[1], name: parts.slice(2).join("/") };
  title.textContent = state.pod
    ? `Peers of pod ${state.pod} (${workloadName(workload)})`
    : `Peers of ${workloadName(workload)}`;
  let result;
  try {
    result = await getJson("/api/v1/peers?" + new URLSearchParams({ window: state.window, workload: state.workload }));
  } catch (err) {
    setStatus("error", err.message, err.code === "bad_workload" ? "Pick a workload from the allocation table." : hint(err));
    return;
  }
  const note = $("peers-note");
  note.replaceChildren();
  if (state.pod) {
    note.appendChild(el("strong", {}, `These are the edges of ${workloadName(workload)}, the workload pod ${state.pod} belongs to, not of the pod alone. `));
  }
  note.appendChild(document.createTextNode(result.note + ` ${period(result)} · prices: ${result.provider}, per ${result.unit}.`));
  const body = $("peer-rows");
  body.replaceChildren();
  const self = workloadId(workload);
  for (const e of result.edges) {
    const asClient = workloadId(e.client) === self;
    const peer = asClient ? e.server : e.client;
    const tr = el("tr", {
      "data-peer": workloadName(peer), "data-role": asClient ? "client" : "server",
      "data-class": e.class, "data-bytes": String(e.bytes), "data-cost": String(e.cost),
      "data-monthly": String(e.monthly_cost),
    });
    const name = el("th", { scope: "row" });
    name.appendChild(workloadLink(peer));
    tr.appendChild(name);
    tr.appendChild(el("td", {}, asClient && workloadId(e.server) === self ? "calls itself" : asClient ? "calls" : "called by"));
    const cls = el("td");
    cls.appendChild(classTag(e.class));
    tr.appendChild(cls);
    tr.appendChild(el("td", { class: "zones", title: e.zones.join(", ") }, e.zones.slice(0, 3).join(", ") + (e.zones.length > 3 ? ", …" : "")));
    tr.appendChild(el("td", {}, (e.bytes / GIB).toFixed(3)));
    tr.appendChild(el("td", { class: "cost" + (e.cost === 0 ? " zero" : "") }, money(e.cost)));
    tr.appendChild(el("td", { class: "cost" + (e.cost === 0 ? " zero" : "") }, money(e.monthly_cost)));
    const advice = el("td", { class: "advice" });
    if (e.recommendation) {
      advice.dataset.kind = e.recommendation.kind;
      advice.append(e.recommendation.text, el("span", { class: "saving" }, `saves up to ${money(e.recommendation.monthly_saving)} a month`));
    } else {
      advice.textContent = e.class === "in-zone" ? "in-zone: free" : "—";
    }
    tr.appendChild(advice);
    body.appendChild(tr);
  }
  const foot = $("peer-totals");
  foot.replaceChildren();
  const total = el("tr", { id: "peer-total", "data-cost": String(result.total_cost), "data-monthly": String(result.total_monthly_cost) });
  total.append(el("th", { scope: "row", colspan: "5" }, `Total (${result.edges.length} edge${result.edges.length === 1 ? "" : "s"})`),
    el("td", { class: "cost" }, money(result.total_cost)), el("td", { class: "cost" }, money(result.total_monthly_cost)), el("td"));
  foot.appendChild(total);
  if (!result.has_pair_data) {
    setStatus("empty", `No workload pair data from ${result.start} to ${result.end}.`,
      "The agents export netcost_workload_traffic_bytes_total; pick a longer window, or check that Prometheus scrapes them.");
  } else if (result.edges.length === 0) {
    setStatus("empty", `${workloadName(workload)} has no edges in this window.`, "Pick a longer window.");
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

// The changes the overview leads with: the edges' recommendations and the NAT and VPC endpoint
// advice, ranked together by their monthly saving.
function rankChanges(edges, advice) {
  const changes = [];
  for (const e of edges ? edges.edges : []) {
    if (!e.recommendation || e.recommendation.monthly_saving <= 0) continue;
    changes.push({
      kind: e.recommendation.kind, saving: e.recommendation.monthly_saving,
      title: `${workloadName(e.client)} → ${workloadName(e.server)} (${e.class})`,
      text: e.recommendation.text,
      href: isPods(e.client) ? peersHref(workloadId(e.client)) : null,
    });
  }
  for (const a of advice ? advice.advice : []) {
    if (!(a.saving_per_month > 0)) continue;
    const w = { namespace: a.namespace, kind: a.workload.kind, name: a.workload.name };
    changes.push({
      // `gateway`, `interface` or `service-endpoint`.
      kind: a.endpoint.endsWith("endpoint") ? a.endpoint : `${a.endpoint}-endpoint`,
      saving: a.saving_per_month,
      title: `${workloadName(w)} → ${a.service}${a.region ? " in " + a.region : ""} through a NAT gateway`,
      text: a.explanation,
      href: isPods(w) && w.namespace ? peersHref(workloadId(w)) : null,
    });
  }
  changes.sort((x, y) => y.saving - x.saving || x.title.localeCompare(y.title));
  return changes.slice(0, TOP_CHANGES);
}

const KIND_LABELS = {
  "topology-aware-routing": "topology-aware routing",
  "co-location": "co-location",
  "gateway-endpoint": "VPC gateway endpoint",
  "interface-endpoint": "VPC interface endpoint",
  "service-endpoint": "VNet service endpoint",
};

function renderChanges(changes, edges, advice) {
  const list = $("changes");
  list.replaceChildren();
  for (const c of changes) {
    const li = el("li", { class: "change", "data-kind": c.kind, "data-saving": String(c.saving) });
    const head = el("div", { class: "change-head" });
    head.appendChild(el("span", { class: "saving" }, `${money(c.saving)} a month`));
    head.appendChild(el("span", { class: "kind" }, KIND_LABELS[c.kind] || c.kind));
    head.appendChild(c.href ? el("a", { href: c.href, class: "drill" }, c.title) : el("span", {}, c.title));
    li.append(head, el("p", {}, c.text));
    list.appendChild(li);
  }
  const total = changes.reduce((sum, c) => sum + c.saving, 0);
  $("saving-total").textContent = money(total) + " a month";
  $("saving-total").dataset.saving = String(total);
  $("saving-note").textContent = changes.length
    ? `up to, from ${changes.length} change${changes.length === 1 ? "" : "s"} below`
    : "nothing found to change in this window";
  $("changes-note").textContent = `· ranked by monthly saving, at the rate of ${windowText()} · `;
  $("changes-note").appendChild(el("a", { href: pageHref({ view: "edges" }) }, "all cross-zone edges"));
  if (changes.length === 0) {
    list.appendChild(el("li", { class: "none" }, edges && !edges.has_pair_data
      ? "No workload pair data in this window: the agents export netcost_workload_traffic_bytes_total."
      : "Nothing to change: no workload traffic with advice crossed a zone or a region."));
  }
  $("advice-note").textContent = advice
    ? (advice.notes || []).join(" ")
    : "NAT gateway and VPC endpoint advice: this server does not give it (no /api/v1/endpoint-advice).";
}

const windowText = () => ({ "1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days", today: "today", month: "this month" }[state.window] ||
  (/^\d+[smhdw]$/.test(state.window) ? `the last ${state.window}` : state.window));

function renderClasses(total) {
  const body = $("class-rows");
  body.replaceChildren();
  const bar = svg("svg", { viewBox: "0 0 1000 44", preserveAspectRatio: "none", role: "img", "aria-label": "share of the cost by class" });
  let x = 0;
  for (const c of CLASSES) {
    const v = total[c.key];
    const share = total.total_cost > 0 ? v.cost / total.total_cost : 0;
    const tr = el("tr", { "data-class": c.key, "data-bytes": String(v.egress_bytes + v.ingress_bytes), "data-cost": String(v.cost) });
    const name = el("th", { scope: "row" });
    name.appendChild(classTag(c.label));
    tr.append(name, el("td", {}, gib(v)), el("td", { class: "cost" + (v.cost === 0 ? " zero" : "") }, money(v.cost)),
      el("td", {}, (share * 100).toFixed(1) + "%"));
    body.appendChild(tr);
    if (share <= 0) continue;
    const w = share * 1000;
    const rect = svg("rect", { x, y: 0, width: w, height: 28, fill: classFill(c.key), stroke: "#fff", "stroke-width": 1, "data-class": c.key });
    rect.appendChild(svg("title", {}, `${c.label}: ${money(v.cost)} (${(share * 100).toFixed(1)}%)`));
    bar.appendChild(rect);
    if (w > 90) bar.appendChild(svg("text", { x: x + 4, y: 41 }, `${c.label} ${(share * 100).toFixed(0)}%`));
    x += w;
  }
  if (total.nat_gateway.cost > 0) {
    // The gateway's processing charge is inside the class costs above: said, not added.
    const v = total.nat_gateway;
    const tr = el("tr", { "data-class": "nat_gateway", "data-bytes": String(v.egress_bytes + v.ingress_bytes), "data-cost": String(v.cost) });
    tr.append(el("th", { scope: "row" }, "of which NAT gateway processing"), el("td", {}, gib(v)),
      el("td", { class: "cost" }, money(v.cost)),
      el("td", {}, (total.total_cost > 0 ? (v.cost / total.total_cost) * 100 : 0).toFixed(1) + "%"));
    tr.className = "part";
    body.appendChild(tr);
  }
  $("class-bar").replaceChildren(bar);
}

function renderNamespaces(result) {
  const body = $("namespace-rows");
  body.replaceChildren();
  for (const row of result.allocations) {
    const tr = el("tr", { "data-name": row.name, "data-cost": String(row.total_cost) });
    const name = el("th", { scope: "row" });
    const href = rowHref(row.name);
    name.appendChild(href ? el("a", { href, class: "drill" }, row.name) : document.createTextNode(row.name));
    tr.append(name, el("td", { class: "cost" }, money(row.total_cost)),
      el("td", {}, (row.share * 100).toFixed(1) + "%"), el("td", { class: "cost" }, money(row.monthly_rate)));
    body.appendChild(tr);
  }
}

// A cell's colour deepens with its cost; in-zone cells (free) stay white. The numbers are in
// each cell, in its tooltip (hover or keyboard focus) and in the table below.
function renderZones(zones) {
  const box = $("zone-picture");
  box.replaceChildren();
  const head = $("zone-head"), rows = $("zone-rows");
  head.replaceChildren();
  rows.replaceChildren();
  $("zones-note").textContent = `· ${period(zones)}, from the workload pair counters`;
  const n = zones.zones.length;
  const left = []; const parts = [];
  if (zones.outside_bytes > 0) parts.push(`${(zones.outside_bytes / GIB).toFixed(3)} GiB to or from outside the cluster`);
  if (zones.unknown_zone_bytes > 0) parts.push(`${(zones.unknown_zone_bytes / GIB).toFixed(3)} GiB with an end of unknown zone`);
  if (parts.length) left.push(`Not in the matrix: ${parts.join(", ")}.`);
  $("zones-left-out").textContent = left.join(" ");
  if (n === 0) {
    box.appendChild(el("p", { class: "note" }, "No workload pair data in this window."));
    return;
  }
  const cell = new Map(zones.cells.map((c) => [`${c.client_zone}\u0000${c.server_zone}`, c]));
  const maxCost = Math.max(...zones.cells.map((c) => c.cost), 0);
  const size = 74, label = 120, W = label + n * size, H = label / 2 + n * size + 4;
  const pic = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "group", "aria-label": "zone to zone matrix: client zone rows, server zone columns" });
  const tip = $("zone-tip");
  zones.zones.forEach((z, j) => pic.appendChild(svg("text", { x: label + j * size + size / 2, y: label / 2 - 8, "text-anchor": "middle", class: "axis" }, z)));
  const headRow = el("tr");
  headRow.appendChild(el("th", { scope: "col" }, "client zone ↓ · server zone →"));
  for (const z of zones.zones) headRow.appendChild(el("th", { scope: "col" }, z));
  head.appendChild(headRow);
  zones.zones.forEach((from, i) => {
    pic.appendChild(svg("text", { x: label - 8, y: label / 2 + i * size + size / 2 + 4, "text-anchor": "end", class: "axis" }, from));
    const tr = el("tr");
    tr.appendChild(el("th", { scope: "row" }, from));
    zones.zones.forEach((to, j) => {
      const c = cell.get(`${from}\u0000${to}`) || { client_zone: from, server_zone: to, bytes: 0, cost: 0, monthly_cost: 0 };
      const text = `${from} → ${to}: ${(c.bytes / GIB).toFixed(3)} GiB, ${money(c.cost)} (${money(c.monthly_cost)} a month)${from === to ? ", in-zone" : ""}`;
      const td = el("td", { "data-client-zone": from, "data-server-zone": to, "data-bytes": String(c.bytes), "data-cost": String(c.cost) });
      td.append(el("span", { class: "gib" }, `${(c.bytes / GIB).toFixed(3)} GiB`), el("span", { class: "cost" }, money(c.cost)));
      if (c.bytes === 0) td.className = "zero";
      tr.appendChild(td);
      const g = svg("g", { tabindex: "0", role: "img", "aria-label": text, class: "zone-cell", "data-client-zone": from, "data-server-zone": to });
      const depth = maxCost > 0 ? c.cost / maxCost : 0;
      g.appendChild(svg("rect", {
        x: label + j * size + 1, y: label / 2 + i * size + 1, width: size - 2, height: size - 2, rx: 3,
        fill: c.cost > 0 ? `rgba(200, 85, 61, ${0.15 + 0.85 * depth})` : "#fff", stroke: "#b8c0cc",
      }));
      g.appendChild(svg("title", {}, text));
      const cx = label + j * size + size / 2, cy = label / 2 + i * size + size / 2;
      const dark = depth > 0.55;
      g.appendChild(svg("text", { x: cx, y: cy - 4, "text-anchor": "middle", class: dark ? "on-dark" : "" }, `${(c.bytes / GIB).toFixed(1)} GiB`));
      g.appendChild(svg("text", { x: cx, y: cy + 12, "text-anchor": "middle", class: dark ? "on-dark" : "" }, from === to ? "in-zone" : money(c.cost)));
      const show = () => { tip.textContent = text; tip.dataset.clientZone = from; tip.dataset.serverZone = to; };
      g.addEventListener("mouseenter", show);
      g.addEventListener("focus", show);
      pic.appendChild(g);
    });
    rows.appendChild(tr);
  });
  box.appendChild(pic);
  tip.textContent = "Hover over a cell, or move to it with Tab, for its figures.";
}

async function loadOverview() {
  $("allocation-link").href = pageHref({ view: "allocation", window: "today" });
  const optional = (path) => getJson(path).catch((err) => (err.status === 404 ? null : Promise.reject(err)));
  const edges = getJson("/api/v1/edges?" + new URLSearchParams({ window: state.window, limit: "200" })).catch(() => null);
  const advice = optional("/api/v1/endpoint-advice?" + new URLSearchParams({ window: state.window })).catch(() => null);
  const zones = getJson("/api/v1/zones?" + new URLSearchParams({ window: state.window }));
  const month = getJson("/api/v1/allocation?" + new URLSearchParams({ window: "month", aggregate: "namespace" }));
  let result;
  try {
    result = await getJson("/api/v1/allocation?" + new URLSearchParams({ window: state.window, aggregate: "namespace" }));
  } catch (err) {
    setStatus("error", err.message, hint(err));
    return;
  }
  $("rate-cost").textContent = money(result.total.monthly_rate);
  $("rate-cost").dataset.cost = String(result.total.monthly_rate);
  $("rate-note").textContent = `at the rate of ${windowText()} (${money(result.total.total_cost)} from ${period(result)}), a 730-hour month`;
  renderClasses(result.total);
  $("classes-note").textContent = `· ${windowText()} · prices: ${result.provider} (${result.pricing_source}), per ${result.unit}`;
  renderNamespaces(result);
  try {
    const m = await month;
    $("month-cost").textContent = money(m.total.total_cost);
    $("month-cost").dataset.cost = String(m.total.total_cost);
    $("month-note").textContent = `since ${when(m.start)}`;
  } catch (err) {
    $("month-cost").textContent = "—";
    $("month-note").textContent = err.message;
  }
  const [e, a] = await Promise.all([edges, advice]);
  renderChanges(rankChanges(e, a), e, a);
  try {
    renderZones(await zones);
  } catch (err) {
    $("zone-picture").replaceChildren(el("p", { class: "status error" }, "Zones: " + err.message));
  }
  if (result.allocations.length === 0) {
    setStatus("empty", `No traffic in this window (${result.start} to ${result.end}).`,
      "Pick a longer window. If the agents have run for longer than that, check that Prometheus scrapes them: kubecost_pod_network_egress_bytes_total should have series.");
    return;
  }
  setStatus("ready", "");
}

function showView() {
  for (const v of VIEWS) {
    $("view-" + v).hidden = v !== state.view;
    const link = $("nav-" + v);
    if (!link) continue;
    link.classList.toggle("current", v === state.view);
    if (v === state.view) link.setAttribute("aria-current", "page");
    if (v !== "live") link.href = "/?" + new URLSearchParams({ view: v, window: state.window });
  }
  for (const node of document.querySelectorAll(".allocation-only")) node.hidden = state.view !== "allocation";
  $("controls").hidden = state.view === "live";
  $("view").value = state.view;
  for (const id of ["workload", "pod"]) {
    $(id).disabled = state.view !== "peers" || !state[id];
    $(id).value = state[id];
  }
  document.title = `netcost · ${{ overview: "overview", allocation: "network cost", edges: "cross-zone edges", peers: "peers", live: "live" }[state.view]}`;
  renderBreadcrumbs();
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
  if (state.view === "overview") return loadOverview();
  if (state.view === "edges") return loadEdges();
  if (state.view === "peers") return loadPeers();
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
  const terms = filterTerms();
  const within = terms.workload ? ` of ${terms.namespace ? terms.namespace + "/" : ""}${terms.workload}` : terms.namespace ? ` in ${terms.namespace}` : "";
  $("table-title").textContent = `Cost by ${state.aggregate}${within}`;
  $("allocation-caption").textContent = `Cost by ${state.aggregate}${within}`;
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
