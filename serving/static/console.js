// SFAI console: sign-in, the planner (Gantt, pins, what-if), the factory dashboard and administration.
// Same origin as the API; every call carries "Authorization: Bearer <key>" from sessionStorage.
"use strict";

const MODULES = ["quality", "maintenance", "energy", "scheduling"];
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US", { maximumFractionDigits: d }));

const S = { tenant: null, problem: null, result: null, copy: null, selected: null, samples: null, busy: false, lastPinUndo: null };

// ------------------------------------------------------------------------------------------------ plumbing
function say(msg, error = false) {
  const el = $("status");
  el.textContent = msg;
  el.classList.toggle("error", error);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: "Bearer " + (sessionStorage.getItem("sfai_key") || "") };
  if (body !== undefined) headers["content-type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, t("err.network"));
  }
  if (raw && r.ok) return r;
  const isJson = (r.headers.get("content-type") || "").includes("json");
  const data = isJson ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, data?.error?.message || (typeof data === "string" && data) || r.statusText);
  return data;
}

function download(name, blob) {
  const a = document.createElement("a");
  a.href = typeof blob === "string" ? blob : URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ------------------------------------------------------------------------------------------------ sign-in
async function signIn(key) {
  if (key) sessionStorage.setItem("sfai_key", key);
  if (!sessionStorage.getItem("sfai_key")) return;
  try {
    S.tenant = await api("/v1/tenant");
  } catch (e) {
    sessionStorage.removeItem("sfai_key");
    say(t("signin.bad", { msg: e.message }), true);
    $("api-key").focus();
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout-btn").hidden = false;
  const badge = $("tenant-badge");
  badge.hidden = false;
  badge.textContent = `${S.tenant.display_name} (${S.tenant.name}) · KSIC ${S.tenant.ksic_code} · ${t("tenant.role")} ${S.tenant.caller_role}`;
  $("planner-nosub").hidden = S.tenant.modules.includes("scheduling");
  say(t("signin.ok", { tenant: S.tenant.display_name || S.tenant.name, role: S.tenant.caller_role }));
  if (key) $("tab-planner").focus();
  if (!S.problem) await loadSample(false);
}

function signOut() {
  sessionStorage.removeItem("sfai_key");
  Object.assign(S, { tenant: null, problem: null, result: null, copy: null, selected: null, samples: null });
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout-btn").hidden = true;
  $("tenant-badge").hidden = true;
  $("new-key").hidden = true;
  say(t("signout.done"));
  $("api-key").focus();
}

// ------------------------------------------------------------------------------------------------ tabs
const TABS = ["planner", "dashboard", "admin"];
function showTab(name, focus = false) {
  for (const n of TABS) {
    const tab = $("tab-" + n);
    const on = n === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $("panel-" + n).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === "dashboard") loadDashboard();
  if (name === "admin") loadAdmin();
  if (name === "planner" && S.result) gantt.render(S.problem, S.result, { keepView: true });
}

function wireTabs() {
  TABS.forEach((n, i) => {
    const tab = $("tab-" + n);
    tab.addEventListener("click", () => showTab(n));
    tab.addEventListener("keydown", (e) => {
      let j = null;
      if (e.key === "ArrowRight") j = (i + 1) % TABS.length;
      if (e.key === "ArrowLeft") j = (i + TABS.length - 1) % TABS.length;
      if (e.key === "Home") j = 0;
      if (e.key === "End") j = TABS.length - 1;
      if (j !== null) { e.preventDefault(); showTab(TABS[j], true); }
    });
  });
}

// ------------------------------------------------------------------------------------------------ planner: input
async function loadSample(announce = true) {
  const r = await fetch("/static/sample-plan.json");
  setProblem(await r.json(), announce);
}

function setProblem(problem, announce = true) {
  S.problem = problem;
  S.result = null;
  S.selected = null;
  renderOrders();
  renderPins();
  renderDetails();
  renderSummary();
  $("gantt").innerHTML = "";
  if (announce) {
    const ops = problem.jobs.reduce((n, j) => n + j.operations.length, 0);
    say(t("planner.loaded", { jobs: problem.jobs.length, ops, machines: problem.machines.length }));
  }
}

// CSV orders: one operation per line; columns job, operation, machines ("M1:30|M2:36"), due, release, weight,
// family, power_kw (only job and machines are required). Lines of one job are its routing, in order.
function parseCsv(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() && !l.trim().startsWith("#"));
  if (lines.length < 2) throw new Error("need a header line and at least one operation");
  const split = (l) => l.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
  const head = split(lines[0]).map((h) => h.toLowerCase());
  for (const need of ["job", "machines"]) if (!head.includes(need)) throw new Error(`missing column '${need}'`);
  const col = (cells, name) => { const i = head.indexOf(name); return i < 0 ? "" : cells[i] ?? ""; };
  const jobs = new Map();
  const machines = [];
  lines.slice(1).forEach((line, n) => {
    const c = split(line);
    const jid = col(c, "job");
    if (!jid) throw new Error(`line ${n + 2}: empty job`);
    const durs = {};
    for (const part of col(c, "machines").split("|")) {
      const [m, d] = part.split(":").map((s) => s.trim());
      const dur = Number(d);
      if (!m || !Number.isInteger(dur) || dur < 0) throw new Error(`line ${n + 2}: machines must look like M1:30|M2:36`);
      durs[m] = dur;
      if (!machines.includes(m)) machines.push(m);
    }
    if (!jobs.has(jid)) jobs.set(jid, { id: jid, operations: [] });
    const job = jobs.get(jid);
    for (const [k, key] of [["due", "due"], ["release", "release"]]) {
      const v = col(c, k);
      if (v !== "") { if (!Number.isInteger(Number(v))) throw new Error(`line ${n + 2}: ${k} must be an integer`); job[key] = Number(v); }
    }
    if (col(c, "weight") !== "") job.weight = Number(col(c, "weight"));
    const op = { id: col(c, "operation") || String(job.operations.length), machines: durs };
    if (col(c, "family")) op.family = col(c, "family");
    if (col(c, "power_kw") !== "") op.power_kw = Number(col(c, "power_kw"));
    job.operations.push(op);
  });
  return { name: "uploaded-orders", machines, jobs: [...jobs.values()] };
}

async function onFile(e) {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const text = await file.text();
    let problem;
    if (/\.csv$/i.test(file.name) || file.type === "text/csv") problem = parseCsv(text);
    else {
      const doc = JSON.parse(text);
      problem = doc.problem || doc;
      if (!Array.isArray(problem.jobs) || !Array.isArray(problem.machines)) throw new Error("expected 'jobs' and 'machines'");
    }
    setProblem(problem);
  } catch (err) {
    say(t("planner.badFile", { msg: err.message }), true);
  }
}

function renderOrders() {
  const tb = $("orders-table");
  if (!S.problem) { tb.innerHTML = ""; return; }
  tb.innerHTML = `<thead><tr><th>${t("col.job")}</th><th>${t("col.operations")}</th><th>${t("col.release")}</th>` +
    `<th>${t("col.due")}</th><th>${t("col.weight")}</th></tr></thead><tbody>` +
    S.problem.jobs.map((j, i) => `<tr><td>${esc(j.id)}</td><td>${j.operations.map((o, k) =>
      `${esc(o.id ?? k)} (${Object.entries(o.machines).map(([m, d]) => `${esc(m)}:${d}`).join(" / ")})`).join(" → ")}</td>` +
      `<td>${esc(j.release ?? 0)}</td>` +
      `<td><input type="number" min="0" step="1" data-job="${i}" data-field="due" value="${esc(j.due ?? "")}" aria-label="${esc(t("col.due"))} ${esc(j.id)}" style="width:90px"></td>` +
      `<td><input type="number" min="0" step="0.5" data-job="${i}" data-field="weight" value="${esc(j.weight ?? 1)}" aria-label="${esc(t("col.weight"))} ${esc(j.id)}" style="width:70px"></td></tr>`).join("") +
    "</tbody>";
  tb.querySelectorAll("input").forEach((inp) => inp.addEventListener("change", () => {
    const job = S.problem.jobs[Number(inp.dataset.job)];
    if (inp.value === "") delete job[inp.dataset.field];
    else job[inp.dataset.field] = inp.dataset.field === "due" ? Math.round(Number(inp.value)) : Number(inp.value);
  }));
}

// ------------------------------------------------------------------------------------------------ planner: solve
async function solve() {
  if (!S.problem) { say(t("planner.noProblem"), true); return false; }
  if (S.busy) return false;
  S.busy = true;
  $("solve-btn").disabled = true;
  say(t("planner.solving"));
  const body = { problem: S.problem, time_limit_s: Math.min(30, Math.max(1, Number($("time-limit").value) || 5)) };
  if ($("objective").value) body.objective = $("objective").value;
  try {
    const res = await api("/v1/scheduling/solve", { method: "POST", body });
    if (!res.gantt || !res.gantt.length || res.status === "INFEASIBLE" || res.status === "MODEL_INVALID") {
      if (S.lastPinUndo) S.lastPinUndo();
      say(t("planner.infeasible", { status: res.status }), true);
      renderPins();
      return false;
    }
    S.result = res;
    S.lastPinUndo = null;
    gantt.render(S.problem, S.result, { keepView: !!$("gantt").querySelector("svg") });
    renderSummary();
    renderPins();
    renderCompare();
    if (S.selected) renderDetails(S.selected);
    say(t("planner.solved", { status: res.status, makespan: res.makespan, late: res.objective_values?.late_jobs ?? 0 }));
    return true;
  } catch (e) {
    if (S.lastPinUndo) { S.lastPinUndo(); renderPins(); }
    say(e.message, true);
    return false;
  } finally {
    S.lastPinUndo = null;
    S.busy = false;
    $("solve-btn").disabled = false;
  }
}

function findOp(job, opId) {
  const j = S.problem.jobs.find((x) => String(x.id) === String(job));
  if (!j) return null;
  return j.operations.find((o, i) => String(o.id ?? i) === String(opId)) || null;
}

async function pinOp(row, machine, start) {
  const op = findOp(row.job, row.operation);
  if (!op || S.busy) return;
  if (!(machine in op.machines)) {
    say(t("planner.notEligible", { op: `${row.job}/${row.operation}`, machine, list: Object.keys(op.machines).join(", ") }), true);
    return;
  }
  const before = op.pinned;
  op.pinned = { machine, start: Math.max(0, Math.round(start)) };
  S.lastPinUndo = () => { if (before) op.pinned = before; else delete op.pinned; };
  S.selected = { job: row.job, operation: row.operation };
  say(t("planner.pinned", { job: row.job, op: row.operation, machine, start: op.pinned.start }));
  await solve();
}

async function unpin(job, opId) {
  const op = findOp(job, opId);
  if (!op) return;
  delete op.pinned;
  say(t("planner.unpinned", { job, op: opId }));
  renderPins();
  if (S.result) await solve();
}

function metricsOf(res) {
  const v = res?.objective_values || {};
  return [
    ["m.makespan", v.makespan ?? res?.makespan, 0, "lower"],
    ["m.totalTardiness", v.total_tardiness, 0, "lower"],
    ["m.weightedTardiness", v.weighted_tardiness, 1, "lower"],
    ["m.lateJobs", v.late_jobs, 0, "lower"],
    ["m.energyCost", v.energy_cost, 0, "lower"],
    ["m.peak", v.peak_kw, 1, "lower"],
  ];
}

function renderSummary() {
  const el = $("plan-summary");
  if (!S.result) { el.innerHTML = `<p class="muted">${esc(t("planner.noProblem"))}</p>`; return; }
  const m = metricsOf(S.result);
  el.innerHTML = `<div class="metrics">` +
    `<div class="metric"><span>${t("m.status")}</span><b id="sum-status">${esc(S.result.status)}</b></div>` +
    m.map(([k, v, d]) => `<div class="metric"><span>${t(k)}</span><b data-metric="${k}">${fmt(v, d)}</b></div>`).join("") +
    `<div class="metric"><span>${t("m.wall")}</span><b>${fmt(S.result.wall_s, 2)}</b></div></div>` +
    (S.result.linked?.ignored?.length ? `<p class="muted">${esc(S.result.linked.ignored.join("; "))}</p>` : "");
}

function renderPins() {
  const ul = $("pins");
  const pins = [];
  for (const j of S.problem?.jobs || []) j.operations.forEach((o, i) => { if (o.pinned) pins.push([j.id, o.id ?? String(i), o.pinned]); });
  if (!pins.length) { ul.innerHTML = `<li class="muted">${esc(t("planner.noPins"))}</li>`; return; }
  ul.innerHTML = pins.map(([j, o, p]) => `<li data-pin="${esc(j)}/${esc(o)}">${esc(j)} / ${esc(o)} → ${esc(p.machine)} @ ${esc(p.start)} ` +
    `<button type="button" class="secondary" data-unpin-job="${esc(j)}" data-unpin-op="${esc(o)}">${esc(t("planner.unpin"))} ${esc(j)}/${esc(o)}</button></li>`).join("");
  ul.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => unpin(b.dataset.unpinJob, b.dataset.unpinOp)));
}

function why(r) {
  const vars = { ...r, lag: r.lag ? ` + ${r.lag}` : "", kind: r.kind ? t("kind." + r.kind) : r.kind };
  return t("why." + r.type, vars);
}

function renderDetails(sel) {
  const el = $("details-body");
  if (sel) S.selected = sel;
  const s = S.selected;
  if (!s || !S.result) { el.innerHTML = `<p class="muted">${esc(t("details.none"))}</p>`; return; }
  const row = S.result.gantt.find((r) => String(r.job) === String(s.job) && String(r.operation) === String(s.operation));
  const op = findOp(s.job, s.operation);
  if (!row || !op) { el.innerHTML = `<p class="muted">${esc(t("details.none"))}</p>`; return; }
  const late = (S.result.late_jobs || []).find((l) => String(l.job) === String(s.job));
  let html = `<p><b>${esc(row.job)} / ${esc(row.operation)}</b> · ${esc(row.machine)} · ${row.start}–${row.end}` +
    (row.setup ? ` · ${t("col.setup")} ${row.setup}` : "") + (op.pinned ? ` · <b class="pinned-tag">${esc(t("legend.pinned"))}</b>` : "") + `</p>`;
  if (late) {
    html += `<div id="late-explanation"><h3 class="late-tag">${esc(t("details.whyLate", { job: late.job }))}</h3>` +
      `<p>${esc(t("details.lateSummary", { due: late.due, end: late.end, tardiness: late.tardiness, weight: late.weight, bottleneck: late.bottleneck_machine }))}</p>` +
      `<h3>${esc(t("details.chain"))}</h3><ol class="chain">` +
      late.critical_chain.map((c) => `<li><b>${esc(c.job)}/${esc(c.operation)}</b> ${esc(c.machine)} ${c.start}–${c.end}: ` +
        `${c.binding.map((b) => esc(why(b))).join("; ")}</li>`).join("") + `</ol>` +
      (late.blocking_operations.length ? `<p>${esc(t("details.blocking"))}: ${late.blocking_operations.map((b) => esc(`${b.job}/${b.operation}`)).join(", ")}</p>` : "") +
      `</div>`;
  } else {
    html += `<p class="muted">${esc(t("details.notLate"))}</p>`;
  }
  html += `<form id="pin-form" class="toolbar"><label for="pin-machine">${esc(t("details.pinMachine"))}</label>` +
    `<select id="pin-machine">${Object.keys(op.machines).map((m) => `<option${m === row.machine ? " selected" : ""}>${esc(m)}</option>`).join("")}</select>` +
    `<label for="pin-start">${esc(t("details.pinStart"))}</label><input id="pin-start" type="number" min="0" step="1" value="${row.start}" style="width:90px">` +
    `<button type="submit" id="pin-submit">${esc(t("details.pinHere"))}</button>` +
    (op.pinned ? `<button type="button" class="secondary" id="pin-clear">${esc(t("planner.unpin"))}</button>` : "") + `</form>`;
  el.innerHTML = html;
  $("pin-form").addEventListener("submit", (e) => { e.preventDefault(); pinOp(row, $("pin-machine").value, Number($("pin-start").value)); });
  if (op.pinned) $("pin-clear").addEventListener("click", () => unpin(row.job, row.operation));
}

// ------------------------------------------------------------------------------------------------ what-if, export
function keepCopy() {
  if (!S.result) { say(t("planner.noProblem"), true); return; }
  S.copy = { problem: JSON.parse(JSON.stringify(S.problem)), result: JSON.parse(JSON.stringify(S.result)) };
  $("clear-copy").hidden = false;
  renderCompare();
  say(t("planner.copyKept"));
}

function renderCompare() {
  const body = $("compare-body");
  if (!S.copy || !S.result) {
    body.innerHTML = `<p class="muted">${esc(t("compare.none"))}</p>`;
    $("compare-gantts").hidden = true;
    return;
  }
  const a = metricsOf(S.copy.result);
  const b = metricsOf(S.result);
  body.innerHTML = `<table id="compare-table"><thead><tr><th></th><th class="num">${t("compare.copy")}</th>` +
    `<th class="num">${t("compare.current")}</th><th class="num">${t("compare.delta")}</th></tr></thead><tbody>` +
    a.map(([k, va, d], i) => {
      const vb = b[i][1];
      const delta = va == null || vb == null ? null : vb - va;
      const cls = delta == null || Math.abs(delta) < 1e-9 ? "" : delta < 0 ? "better" : "worse";
      return `<tr data-metric="${k}"><th>${t(k)}</th><td class="num">${fmt(va, d)}</td><td class="num">${fmt(vb, d)}</td>` +
        `<td class="num ${cls}">${delta == null ? "–" : (delta > 0 ? "+" : "") + fmt(delta, d)}</td></tr>`;
    }).join("") + "</tbody></table>";
  $("compare-gantts").hidden = false;
  copyGantt.render(S.copy.problem, S.copy.result);
  currentGantt.render(S.problem, S.result);
}

function exportCsv() {
  if (!S.result) { say(t("planner.noProblem"), true); return; }
  const head = ["machine", "job", "operation", "start", "end", "setup", "late", "pinned"];
  const lines = [head.join(",")];
  for (const r of S.result.gantt) {
    const op = r.job == null ? null : findOp(r.job, r.operation);
    const cells = [r.machine, r.job ?? "", r.operation, r.start, r.end, r.setup, r.late, !!(op && op.pinned)];
    lines.push(cells.map((c) => (/[",\n]/.test(String(c)) ? `"${String(c).replace(/"/g, '""')}"` : String(c))).join(","));
  }
  const name = `sfai-plan-${S.problem.name || "plan"}.csv`;
  download(name, new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  say(t("planner.exported", { file: name }));
}

async function exportPng() {
  const svg = gantt.svg();
  if (!svg) { say(t("planner.noProblem"), true); return; }
  try {
    const url = await svgToPng(svg);
    const name = `sfai-gantt-${S.problem.name || "plan"}.png`;
    download(name, url);
    say(t("planner.exported", { file: name }));
  } catch (e) { say(e.message, true); }
}

function renderLegend() {
  $("legend").innerHTML =
    `<span><i style="background:repeating-linear-gradient(45deg,#9aa5b1 0 2px,#eef1f4 2px 5px)"></i>${esc(t("legend.setup"))}</span>` +
    `<span><i style="background:repeating-linear-gradient(45deg,#e07b00 0 2px,#fff1de 2px 5px)"></i>${esc(t("legend.maintenance"))}</span>` +
    `<span><i style="background:#e4e7eb"></i>${esc(t("legend.break"))}</span>` +
    `<span><i style="background:#4e79a7;border:2px solid #d92d20"></i>${esc(t("legend.late"))}</span>` +
    `<span><i style="background:#4e79a7;border-left:5px solid #14324f"></i>${esc(t("legend.pinned"))}</span>`;
}

// ------------------------------------------------------------------------------------------------ dashboard
async function loadDashboard() {
  const box = $("dash-cards");
  if (!S.tenant) return;
  box.innerHTML = `<p class="muted">${esc(t("dash.loading"))}</p>`;
  try { S.tenant = await api("/v1/tenant"); } catch (e) { say(e.message, true); }
  const subscribed = new Set(S.tenant.modules);
  if (!S.samples && [...subscribed].some((m) => m !== "scheduling")) {
    try { S.samples = (await api("/v1/console/samples")).samples; } catch (e) { say(e.message, true); }
  }
  box.innerHTML = MODULES.map((m) => `<div class="card ${subscribed.has(m) ? "" : "off"}" data-module="${m}" id="dash-${m}">` +
    `<h2>${esc(t("mod." + m))}<span class="pill ${subscribed.has(m) ? "on" : "off"}">${subscribed.has(m) ? "✓" : esc(t("dash.notSubscribed"))}</span></h2>` +
    `<div class="dash-body">${subscribed.has(m) ? `<p class="muted">${esc(t("dash.loading"))}</p>` :
      `<p><b>${esc(t("dash.wouldAdd"))}</b> ${esc(t("add." + m))}</p><p class="muted">${esc(t("dash.subscribeHint"))}</p>`}</div></div>`).join("");
  const jobs = [];
  if (subscribed.has("maintenance")) jobs.push(dashMaintenance());
  if (subscribed.has("quality")) jobs.push(dashQuality());
  if (subscribed.has("energy")) jobs.push(dashEnergy());
  if (subscribed.has("scheduling")) dashScheduling();
  await Promise.all(jobs);
}

async function predict(family) {
  const s = S.samples?.[family];
  if (!s) throw new ApiError(0, "no sample");
  const res = await api(s.endpoint, { method: "POST", body: s.body });
  return { s, res };
}

const bodyOf = (m) => document.querySelector(`#dash-${m} .dash-body`);
const noModel = (e) => `<p class="warn">${esc(t("dash.noModel", { msg: e.message }))}</p>`;
const sourceNote = (s) => `<p class="muted">${esc(t("dash.sampleSource", { source: t("dash.source." + s.source) }))} · ${esc(s.endpoint)}</p>`;
const meter = (p) => `<span class="meter"><i class="${p >= 0.5 ? "hi" : p >= 0.2 ? "mid" : ""}" style="width:${Math.round(Math.min(1, p) * 100)}%"></i></span>`;

async function dashMaintenance() {
  let html = "";
  try {
    const { s, res } = await predict("failure");
    const byId = new Map(s.body.records.map((r) => [String(r.UDI), r]));
    const ranked = [...res.predictions].sort((a, b) => b.failure_probability - a.failure_probability);
    html += `<h3>${esc(t("dash.failureRank"))}</h3><table id="failure-rank"><thead><tr><th>#</th><th>${t("dash.unit")}</th><th>${t("dash.prob")}</th>` +
      `<th>${t("dash.mode")}</th><th>${t("dash.features")}</th></tr></thead><tbody>` +
      ranked.map((p, i) => {
        const rec = byId.get(String(p.UDI)) || {};
        return `<tr><td>${i + 1}</td><td>${esc(rec["Product ID"] || "UDI " + p.UDI)}</td><td>${meter(p.failure_probability)} ${fmt(p.failure_probability * 100, 1)}%</td>` +
          `<td>${esc(p.failure_mode || "–")}</td><td class="muted">${esc((p.top_features || "").split(";").join(", "))}</td></tr>`;
      }).join("") + "</tbody></table>" + sourceNote(s);
  } catch (e) { html += noModel(e); }
  try {
    const { s, res } = await predict("rul");
    const ranked = [...res.predictions].sort((a, b) => a.rul - b.rul);
    const maxR = Math.max(...ranked.map((p) => p.rul), 1);
    html += `<h3>${esc(t("dash.rul"))}</h3><table id="rul-rank"><thead><tr><th>#</th><th>${t("dash.unit")}</th><th>RUL</th></tr></thead><tbody>` +
      ranked.map((p, i) => `<tr><td>${i + 1}</td><td>unit ${esc(p.unit)}</td><td>${meter(1 - p.rul / maxR)} ${fmt(p.rul, 0)}</td></tr>`).join("") +
      "</tbody></table>" + sourceNote(s);
  } catch (e) { html += noModel(e); }
  bodyOf("maintenance").innerHTML = html;
}

async function dashQuality() {
  let html = "";
  try {
    const { s, res } = await predict("defect");
    html += `<h3>${esc(t("dash.defects"))}</h3><table id="defect-table"><thead><tr><th>${t("dash.part")}</th><th>${t("dash.prob")}</th>` +
      `<th>${t("dash.defect")}</th><th>${t("dash.features")}</th></tr></thead><tbody>` +
      res.predictions.map((p) => `<tr><td>${esc(p.row_id)}</td><td>${meter(p.defect_probability)} ${fmt(p.defect_probability * 100, 1)}%</td>` +
        `<td>${p.defect_predicted ? `<b class="late-tag">${esc(t("yes"))}</b>` : esc(t("no"))}</td>` +
        `<td class="muted">${esc((p.top_measurements || "").split(";").slice(0, 3).join(", "))}</td></tr>`).join("") +
      "</tbody></table>" + sourceNote(s);
  } catch (e) { html += noModel(e); }
  bodyOf("quality").innerHTML = html;
}

async function dashEnergy() {
  let html = "";
  try {
    const { s, res } = await predict("energy");
    const origin = res.predictions[0]?.origin;
    const fc = res.predictions.filter((p) => p.origin === origin);
    const actual = new Map((s.actuals || []).map((a) => [a.timestamp.slice(0, 16), a.kwh]));
    const kwh = fc.reduce((n, p) => n + p.p50, 0);
    const co2 = fc.reduce((n, p) => n + (p.co2_p50 || 0), 0) * 1000;
    html += `<h3>${esc(t("dash.energy"))}</h3>` + energyChart(fc, actual) +
      `<p id="energy-totals">${esc(t("dash.energyTotals", { kwh: fmt(kwh, 1), co2: fmt(co2, 1) }))} · ${esc(origin)}</p>` + sourceNote(s);
  } catch (e) { html += noModel(e); }
  bodyOf("energy").innerHTML = html;
}

function energyChart(fc, actual) {
  const W = 540, H = 200, L = 40, B = 22, T = 8;
  if (!fc.length) return "";
  const acts = fc.map((p) => actual.get(String(p.timestamp).slice(0, 16)));
  const hi = Math.max(...fc.map((p) => p.p90), ...acts.filter((v) => v != null)) * 1.05;
  const lo = Math.min(0, ...fc.map((p) => p.p10));
  const X = (i) => L + (i / Math.max(1, fc.length - 1)) * (W - L - 8);
  const Y = (v) => T + (1 - (v - lo) / (hi - lo || 1)) * (H - T - B);
  const band = fc.map((p, i) => `${X(i)},${Y(p.p90)}`).concat(fc.map((p, i) => `${X(i)},${Y(p.p10)}`).reverse()).join(" ");
  const line = (vals) => vals.map((v, i) => (v == null ? null : `${X(i)},${Y(v)}`)).filter(Boolean).join(" ");
  let ticks = "";
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    ticks += `<line x1="${L}" x2="${W - 8}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eef1f4"/><text x="${L - 4}" y="${Y(v) + 4}" text-anchor="end" font-size="10" fill="#5f6d7b">${fmt(v, 0)}</text>`;
  }
  for (let i = 0; i < fc.length; i += Math.max(1, Math.round(fc.length / 6))) {
    ticks += `<text x="${X(i)}" y="${H - 6}" font-size="10" fill="#5f6d7b" text-anchor="middle">${esc(String(fc[i].timestamp).slice(11, 16))}</text>`;
  }
  return `<svg id="energy-chart" width="100%" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t("dash.energy"))}" font-family="system-ui, sans-serif">` +
    ticks + `<polygon points="${band}" fill="#a0cbe8" opacity="0.6"><title>${esc(t("dash.band"))}</title></polygon>` +
    `<polyline points="${line(fc.map((p) => p.p50))}" fill="none" stroke="#1f6fb2" stroke-width="2"/>` +
    `<polyline points="${line(acts)}" fill="none" stroke="#d92d20" stroke-width="1.5" stroke-dasharray="3 2"/>` +
    `<g font-size="11"><rect x="${L + 6}" y="${T + 2}" width="10" height="8" fill="#a0cbe8"/><text x="${L + 20}" y="${T + 10}">${esc(t("dash.band"))}</text>` +
    `<line x1="${L + 90}" x2="${L + 104}" y1="${T + 6}" y2="${T + 6}" stroke="#1f6fb2" stroke-width="2"/><text x="${L + 108}" y="${T + 10}">${esc(t("dash.p50"))}</text>` +
    `<line x1="${L + 190}" x2="${L + 204}" y1="${T + 6}" y2="${T + 6}" stroke="#d92d20" stroke-dasharray="3 2"/><text x="${L + 208}" y="${T + 10}">${esc(t("dash.actual"))}</text></g></svg>`;
}

function dashScheduling() {
  const v = S.result?.objective_values;
  const summary = v ? `${S.result.status}, ${t("m.makespan")} ${fmt(v.makespan)}, ${t("m.lateJobs")} ${fmt(v.late_jobs)}` : t("dash.noPlan");
  bodyOf("scheduling").innerHTML = `<p>${esc(t("dash.schedulingNow", { summary }))}</p>` +
    `<button type="button" id="dash-goto-planner" class="secondary">${esc(t("tab.planner"))}</button>`;
  $("dash-goto-planner").addEventListener("click", () => showTab("planner", true));
}

// ------------------------------------------------------------------------------------------------ admin
const day = (s) => (s ? String(s).slice(0, 19).replace("T", " ") : "–");

async function loadAdmin() {
  const admin = S.tenant?.caller_role === "admin";
  $("admin-denied").hidden = admin;
  $("admin-body").hidden = !admin;
  if (!admin) { $("admin-denied").textContent = t("admin.needAdmin", { role: S.tenant?.caller_role }); return; }
  await Promise.all([loadSubs(), loadKeys(), loadUsage()]);
}

async function loadSubs() {
  try {
    const subs = await api("/v1/subscriptions");
    $("subs-table").innerHTML = `<thead><tr><th>${t("admin.module")}</th><th>${t("admin.plan")}</th><th class="num">${t("admin.quota")}</th>` +
      `<th>${t("admin.starts")}</th><th>${t("admin.ends")}</th><th></th></tr></thead><tbody>` +
      subs.map((s) => `<tr data-module="${esc(s.module)}"><td>${esc(s.module)} <span class="muted">${esc(t("mod." + s.module))}</span></td><td>${esc(s.plan)}</td>` +
        `<td class="num">${s.request_quota == null ? "∞" : fmt(s.request_quota)}</td><td>${day(s.starts_at)}</td><td>${day(s.ends_at)}</td>` +
        `<td>${s.ends_at ? "" : `<button type="button" class="danger" data-unsub="${esc(s.module)}">${esc(t("admin.unsubscribe"))} ${esc(s.module)}</button>`}</td></tr>`).join("") +
      "</tbody>";
    $("subs-table").querySelectorAll("[data-unsub]").forEach((b) => b.addEventListener("click", async () => {
      try {
        await api("/v1/subscriptions/" + encodeURIComponent(b.dataset.unsub), { method: "DELETE" });
        say(t("admin.unsubscribed", { module: b.dataset.unsub }));
        await afterSubChange();
      } catch (e) { say(e.message, true); }
    }));
  } catch (e) { say(e.message, true); }
}

async function afterSubChange() {
  S.tenant = await api("/v1/tenant");
  $("planner-nosub").hidden = S.tenant.modules.includes("scheduling");
  await loadSubs();
}

async function loadKeys() {
  try {
    const keys = await api("/v1/apikeys");
    $("keys-table").innerHTML = `<thead><tr><th>${t("admin.keyId")}</th><th>${t("admin.keyName")}</th><th>${t("admin.role")}</th>` +
      `<th>${t("admin.created")}</th><th>${t("admin.revoked")}</th><th></th></tr></thead><tbody>` +
      keys.map((k) => `<tr data-key="${esc(k.key_id)}"><td><code>${esc(k.key_id)}</code>${k.key_id === S.tenant.caller_key_id ? " ★" : ""}</td><td>${esc(k.name)}</td>` +
        `<td>${esc(k.role)}</td><td>${day(k.created_at)}</td><td>${day(k.revoked_at)}</td>` +
        `<td>${k.revoked_at ? "" : `<button type="button" class="danger" data-revoke="${esc(k.key_id)}">${esc(t("admin.revoke"))} ${esc(k.key_id)}</button>`}</td></tr>`).join("") +
      "</tbody>";
    $("keys-table").querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
      if (!window.confirm(t("admin.revokeConfirm", { key: b.dataset.revoke }))) return;
      try {
        await api("/v1/apikeys/" + encodeURIComponent(b.dataset.revoke), { method: "DELETE" });
        say(t("admin.keyRevoked", { key: b.dataset.revoke }));
        await loadKeys();
      } catch (e) { say(e.message, true); }
    }));
  } catch (e) { say(e.message, true); }
}

function usageQuery() {
  const q = new URLSearchParams();
  if ($("usage-from").value) q.set("from", $("usage-from").value);
  if ($("usage-to").value) q.set("to", $("usage-to").value);
  return q;
}

async function loadUsage() {
  const q = usageQuery();
  if ($("usage-module").value) q.set("module", $("usage-module").value);
  q.set("limit", String(Math.min(1000, Math.max(1, Number($("usage-limit").value) || 50))));
  try {
    const u = await api("/v1/usage?" + q);
    $("usage-summary").textContent = t("admin.usageTotal", { total: u.total }) + ": " + Object.entries(u.by_module || {})
      .map(([m, c]) => `${m} ${c.calls} (${c.ok} ok, ${c.client_errors} 4xx, ${c.server_errors} 5xx)`).join(" · ");
    $("usage-table").innerHTML = `<thead><tr><th class="num">seq</th><th>${t("admin.time")}</th><th>${t("admin.module")}</th><th>${t("admin.call")}</th>` +
      `<th class="num">${t("admin.status")}</th><th class="num">${t("admin.ms")}</th><th>${t("admin.keyId")}</th></tr></thead><tbody>` +
      u.records.map((r) => `<tr><td class="num">${r.seq}</td><td>${esc(day(r.ts))}</td><td>${esc(r.module ?? "")}</td><td>${esc(r.method)} ${esc(r.endpoint)}</td>` +
        `<td class="num">${r.status}</td><td class="num">${r.latency_ms}</td><td><code>${esc(r.key_id)}</code></td></tr>`).join("") + "</tbody>";
  } catch (e) { say(e.message, true); }
}

async function exportUsage() {
  const q = usageQuery();
  q.set("format", "csv");
  try {
    const r = await api("/v1/usage/export?" + q, { raw: true });
    const name = `sfai-usage-${S.tenant.name}.csv`;
    download(name, await r.blob());
    say(t("planner.exported", { file: name }));
  } catch (e) { say(e.message, true); }
}

// ------------------------------------------------------------------------------------------------ start
const gantt = createGantt($("gantt"), {
  label: (k) => t(k),
  onSelect: (r) => renderDetails({ job: r.job, operation: r.operation }),
  onPin: (r, machine, start) => pinOp(r, machine, start),
});
const copyGantt = createGantt($("gantt-copy"), { interactive: false, rowH: 28, barH: 18, labelW: 70, label: (k) => t(k) });
const currentGantt = createGantt($("gantt-current"), { interactive: false, rowH: 28, barH: 18, labelW: 70, label: (k) => t(k) });

function rerenderLanguage() {
  applyI18n();
  renderLegend();
  renderOrders();
  renderSummary();
  renderPins();
  renderDetails();
  renderCompare();
  if (S.result && !$("panel-planner").hidden) gantt.render(S.problem, S.result, { keepView: true });
  if (S.tenant) {
    $("tenant-badge").textContent = `${S.tenant.display_name} (${S.tenant.name}) · KSIC ${S.tenant.ksic_code} · ${t("tenant.role")} ${S.tenant.caller_role}`;
    if (!$("panel-dashboard").hidden) loadDashboard();
    if (!$("panel-admin").hidden) loadAdmin();
  }
}

$("lang-select").value = LANG;
$("lang-select").addEventListener("change", (e) => { setLang(e.target.value); rerenderLanguage(); });
$("signin-form").addEventListener("submit", (e) => { e.preventDefault(); const k = $("api-key").value.trim(); $("api-key").value = ""; signIn(k); });
$("signout-btn").addEventListener("click", signOut);
$("load-sample").addEventListener("click", () => loadSample(true));
$("orders-file").addEventListener("change", onFile);
$("solve-btn").addEventListener("click", solve);
$("zoom-in").addEventListener("click", () => gantt.zoomBy(1.5));
$("zoom-out").addEventListener("click", () => gantt.zoomBy(1 / 1.5));
$("zoom-fit").addEventListener("click", () => gantt.fit());
$("keep-copy").addEventListener("click", keepCopy);
$("clear-copy").addEventListener("click", () => { S.copy = null; $("clear-copy").hidden = true; renderCompare(); });
$("export-csv").addEventListener("click", exportCsv);
$("export-png").addEventListener("click", exportPng);
$("dash-refresh").addEventListener("click", () => { S.samples = null; loadDashboard(); });
$("sub-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/v1/subscriptions", { method: "POST", body: { module: $("sub-module").value, plan: $("sub-plan").value } });
    say(t("admin.subscribed", { module: $("sub-module").value }));
    await afterSubChange();
  } catch (err) { say(err.message, true); }
});
$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { role: $("key-role").value };
  if ($("key-name").value.trim()) body.name = $("key-name").value.trim();
  try {
    const k = await api("/v1/apikeys", { method: "POST", body });
    $("new-key").hidden = false;
    $("new-key-value").value = k.api_key;
    $("key-name").value = "";
    say(t("admin.keyCreated", { key: k.key_id }));
    await loadKeys();
    $("new-key-value").focus();
    $("new-key-value").select();
  } catch (err) { say(err.message, true); }
});
$("new-key-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText($("new-key-value").value); } catch { $("new-key-value").select(); document.execCommand("copy"); }
  say(t("admin.copied"));
});
$("usage-form").addEventListener("submit", (e) => { e.preventDefault(); loadUsage(); });
$("usage-export").addEventListener("click", exportUsage);
window.addEventListener("resize", () => { if (S.result && !$("panel-planner").hidden) gantt.render(S.problem, S.result, { keepView: true }); });

wireTabs();
applyI18n();
renderLegend();
renderSummary();
renderPins();
signIn();
