// SFAI console: sign-in, the planner (order entry, objectives, Gantt, pins, what-if, background jobs, CSV/PNG/PDF
// export), the factory dashboard and administration.
// Same origin as the API; every call carries "Authorization: Bearer <key>" from sessionStorage.
"use strict";

const MODULES = ["quality", "maintenance", "energy", "scheduling"];
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US", { maximumFractionDigits: d }));
// A count with its noun, in the singular or plural as the language has it: tn("count.orders", 1) is "1 order", 2 is
// "2 orders" (keys KEY.one and KEY.other, with {n}; Korean has one form for both).
const tn = (key, n, vars = {}) => t(key + "." + (new Intl.PluralRules(LANG === "ko" ? "ko-KR" : "en-US").select(Number(n)) === "one" ? "one" : "other"),
  { ...vars, n: fmt(n) });

// S.solved: a copy of the problem S.result was solved for; S.stale: the orders changed since (S.edits counts changes)
// S.epoch: counts sign-outs; an answer that comes back to an older epoch is for a session that has ended and is dropped.
// S.savedJob: the running background job as kept in the tab (see persist()); S.busy: the solve in progress (a token).
// S.noPlan: the last solve's answer had no plan ({ status, reasons, problem }), until the orders change or a plan comes.
const S = { tenant: null, problem: null, result: null, solved: null, stale: false, edits: 0, copy: null, selected: null, samples: null,
  samplesError: null, sampleLoad: null, links: {}, busy: false, lastPinUndo: null, job: null, jobView: null, savedJob: null, epoch: 0, saved: "all", noPlan: null };
const SYNC_LIMIT_S = 30; // POST /v1/scheduling/solve takes up to 30 s; longer limits go to POST /v1/scheduling/jobs
const MAX_LIMIT_S = 3600;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------------------------ plumbing
// The status line. `msg` is text, a function giving the text (so that a language switch re-renders it) or an
// Error. An ApiError's `detail` (the server's own words, in English) is the line's tooltip; where the console could
// not put the server's reason in words of its own (`showDetail`), it follows as a detail, set apart and marked
// as English, after the message. A function may give `{ html }` (escaped already) instead of text, and may carry a
// `detail` of its own (the tooltip).
let said = null;
function say(msg, error = false) {
  if (msg?.ended) return; // a refused key that signed the console out: signOut() has said so
  said = { msg, error };
  const el = $("status");
  const text = typeof msg === "function" ? msg() : msg instanceof Error ? msg.message : msg;
  if (typeof text?.html === "string") el.innerHTML = text.html;
  else el.textContent = text;
  el.title = msg?.detail || "";
  if (msg?.showDetail && msg.detail) {
    const d = document.createElement("span");
    d.className = "status-detail";
    const text = document.createElement("span");
    text.lang = "en";
    text.textContent = msg.detail;
    d.append(t("err.detail") + " ", text);
    el.append(" ", d);
  }
  el.classList.toggle("error", error);
}

// The status line emptied: on a tab switch, a message of the tab left is not the next tab's news. The element stays
// the page's one live region (role="status", aria-live="polite") for the next message; emptying it announces nothing,
// and a language switch brings nothing back.
function clearStatus() {
  said = null;
  const el = $("status");
  el.textContent = "";
  el.title = "";
  el.classList.remove("error");
}

// A message about the work of one tab, said only while that tab is shown: an answer that comes back after the user
// has moved to another tab (a dashboard still loading) is not put on that tab's status line.
function sayOn(tab, msg, error = false) {
  if (!$("panel-" + tab).hidden) say(msg, error);
}

// `text`: a string, or a function giving it in the current language (the message follows a language switch)
class ApiError extends Error {
  constructor(status, text, { code = null, detail = "", showDetail = false } = {}) {
    super();
    Object.assign(this, { status, code, detail, showDetail, text: typeof text === "function" ? text : () => text });
  }
  get message() { return this.text(); }
}

// API identifiers (modules, plans, roles) in words; the identifier itself stays in a data- attribute and tooltip.
const label = (kind, id) => (STRINGS.en[`${kind}.${id}`] ? t(`${kind}.${id}`) : String(id ?? ""));
const idCell = (kind, id) => `<td data-${kind === "mod" ? "module" : kind}="${esc(id)}" title="${esc(id)}">${esc(label(kind, id))}</td>`;

// Retry-After seconds in words: "5 s", "3 min", "2 h", "12 days"
function waitText(s) {
  if (!(s > 0)) return t("err.wait.soon");
  if (s < 120) return t("err.wait.s", { n: Math.ceil(s) });
  if (s < 7200) return t("err.wait.min", { n: Math.ceil(s / 60) });
  if (s < 172800) return t("err.wait.h", { n: Math.ceil(s / 3600) });
  return t("err.wait.d", { n: Math.ceil(s / 86400) });
}

// An API error answer in the chosen language. Every code the server sends (serving/errors.py, serving/handlers.py,
// serving/middleware.py) has a message of its own, with what the console can read from the server's text put into
// it (the module, roles, limits, a request id, the fields of a validation error); the server's English text is the
// tooltip. Only where the server's reason is free text that the console cannot word (a problem the solver refuses,
// an unknown code) is that text shown too, as a detail after the translated message.
const FIELD_KEYS = { time_limit_s: "planner.timeLimit", objective: "planner.objective", weights: "obj.weightsLegend",
  order: "obj.orderLegend", tardiness: "obj.tardiness", makespan: "obj.makespan", energy: "obj.energy", role: "admin.role",
  module: "admin.module", plan: "admin.plan", name: "admin.keyName", limit: "admin.limit", from: "admin.from", to: "admin.to" };
const fieldName = (loc) => (loc || []).filter((p) => p !== "body").map((p) => (FIELD_KEYS[p] ? t(FIELD_KEYS[p]) : String(p))).join(" › ");

// one of FastAPI's validation errors ({loc, msg, type}) in words: "시간 제한 (초): 30 이하여야 합니다"
function fieldError(e) {
  // the limit the message names, its first number ("Input should be less than or equal to 30", "at most 3 items ...")
  const found = String(e.msg || "").match(/-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?/i)?.[0];
  const n = found === undefined ? undefined : fmt(Number(found.replace(/,/g, "")), 6);
  const kinds = { missing: "err.field.missing", extra_forbidden: "err.field.extra", greater_than: "err.field.gt",
    greater_than_equal: "err.field.ge", less_than: "err.field.lt", less_than_equal: "err.field.le",
    literal_error: "err.field.choice", enum: "err.field.choice", finite_number: "err.field.number",
    string_too_long: "err.field.tooLong", string_too_short: "err.field.tooShort", too_long: "err.field.tooMany",
    too_short: "err.field.tooFew" };
  let key = kinds[e.type];
  if (!key && /(_parsing|_type|_from_float)$/.test(e.type || "")) key = "err.field.type";
  if (key && n === undefined && !["err.field.missing", "err.field.extra", "err.field.choice", "err.field.number", "err.field.type"].includes(key)) key = null;
  return `${fieldName(e.loc) || t("err.field.body")}: ${t(key || "err.field.invalid", { n })}`;
}

function apiError(status, path, data, retryAfter) {
  const code = data?.error?.code || null;
  const msg = data?.error?.message || (typeof data === "string" ? data.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 300) : "");
  const module = MODULES.find((m) => msg.includes(`'${m}'`)) || MODULES.find((m) => path.startsWith(`/v1/${m}/`));
  const vars = { module: label("mod", module), status, code: code || "–" };
  const wait = () => waitText(retryAfter);
  // the message in words (a key of i18n.js, with values that may be functions of the language of the moment)
  const says = (key, more = {}, opts = {}) => new ApiError(status, () => {
    const v = { ...vars, wait: wait() };
    for (const [k, x] of Object.entries(more)) v[k] = typeof x === "function" ? x() : x;
    return t(key, v);
  }, { code, detail: msg, ...opts });
  const free = (key, more = {}) => says(key, more, { showDetail: true }); // the server's free text as the detail

  switch (code) {
    case "not_subscribed": return says(msg.includes("ask your operator") ? "err.notSubscribedOperator" : "err.notSubscribed");
    case "forbidden": {
      const need = [...(msg.match(/needs a key with role (.+?);/)?.[1] || "").matchAll(/'(\w+)'/g)].map((m) => m[1]);
      if (!need.length) return says("err.forbidden");
      return says("err.forbiddenRole", { need: () => need.map((r) => label("role", r)).join(" / "), role: () => label("role", S.tenant?.caller_role) });
    }
    case "plan_needs_operator": {
      const allowed = (msg.match(/choose here: (.*)$/)?.[1] || "").split(",").map((x) => x.trim()).filter((x) => x && x !== "none");
      return says("err.planNeedsOperator", { plan: () => label("plan", msg.match(/the '(\w+)' plan/)?.[1] || ""),
        allowed: () => allowed.map((x) => label("plan", x)).join(", ") || t("obj.none") });
    }
    // the operator's terms (a quota, an end date) follow as the detail: the translation alone had dropped them
    case "managed_by_operator": return free("err.managedByOperator", { plan: () => label("plan", msg.match(/\((\w+) plan/)?.[1] || "") });
    case "last_admin_key": return says("err.lastAdminKey", { key: msg.match(/^(k\w+) /)?.[1] || "" });
    case "key_scope": { // "API key k… may call only the 'quality', 'energy' modules, not 'scheduling'; ..."
      const allowed = [...(msg.match(/may call only the (.*?) modules?, not/)?.[1] || "").matchAll(/'(\w+)'/g)].map((m) => m[1]);
      const refused = msg.match(/, not '(\w+)'/)?.[1] || "";
      return says("err.keyScope", { allowed: () => allowed.map((m) => label("mod", m)).join(", ") || t("obj.none"),
        module: () => label("mod", refused) });
    }
    case "rate_limited": return says("err.rateLimited");
    case "quota_exceeded": return says("err.quotaExceeded");
    case "too_many_jobs": return says("err.tooManyJobs");
    case "too_many_exports": return says("err.tooManyExports");
    case "too_many_failed_keys": return says("err.tooManyFailedKeys");
    case "too_many_requests": return says("err.tooMany");
    case "unavailable": case "not_ready": return says("err.unavailable");
    case "database_unavailable": return says("err.dbUnavailable");
    case "online_store_unavailable": return says("err.storeUnavailable");
    case "usage_log_unavailable": return says("err.usageLogUnavailable");
    case "model_integrity": return says("err.modelIntegrity");
    case "internal_error": return says("err.internal", { id: msg.match(/request ([^)\s]+)\)/)?.[1] || "–" });
    case "payload_too_large": {
      const limit = Number((msg.match(/limit of ([\d,]+) bytes/)?.[1] || "").replace(/,/g, ""));
      return limit ? says("err.tooLarge", { mb: () => fmt(limit / 1048576, 1) }) : says("err.tooLargeAny");
    }
    case "conflict": return says("err.conflict");
    case "method_not_allowed": return says("err.notAllowed");
    case "not_found": {
      if (msg.startsWith("no such endpoint")) return says("err.noEndpoint");
      if (path.startsWith("/v1/apikeys/")) return says("err.keyNotFound", { key: decodeURIComponent(path.slice(12)) });
      if (path.startsWith("/v1/subscriptions/")) return says("err.subNotFound", { module: () => label("mod", decodeURIComponent(path.slice(18))) });
      if (path.startsWith("/v1/scheduling/jobs/")) return says("err.jobNotFound");
      return says("err.notFoundAny");
    }
    case "invalid_request": {
      const fields = Array.isArray(data?.error?.details) ? data.error.details : [];
      if (!fields.length) return free("err.invalidRequestAny");
      const more = fields.length > 5 ? fields.length - 5 : 0;
      return says("err.invalidRequest", { fields: () => fields.slice(0, 5).map(fieldError).join("; ") + (more ? " " + t("csv.more", { count: more }) : "") });
    }
    case "invalid_input": case "bad_request": {
      const cap = msg.match(/^time_limit_s: at most ([\d.e+]+) s per (synchronous solve|background job) (?:on the (\w+) plan|here); got ([\d.e+]+)$/);
      if (cap) {
        return says(cap[3] ? "err.timeLimitPlan" : "err.timeLimit", { cap: () => fmt(Number(cap[1]), 1), got: () => fmt(Number(cap[4]), 1),
          plan: () => label("plan", cap[3]) });
      }
      if (msg.startsWith("invalid scheduling problem")) return free("err.badProblem");
      return free("err.invalidInput");
    }
    default: break;
  }
  // a code this console does not know (or no JSON answer at all): the status in words, the server's text as the detail
  if (status === 429) return says("err.tooMany");
  if (status === 503) return says("err.unavailable");
  if (status >= 500) return free("err.server");
  return free("err.refused");
}

// An API key as pasted, cleaned of what copying adds: zero-width characters (anywhere), spaces and line breaks and
// quotes around it (“…”, '…', 「…」). A key is printable ASCII; anything else left is not a key (KEY_OK).
const KEY_OK = /^[\x21-\x7E]+$/;
const KEY_QUOTES = "\"'`\u201C\u201D\u2018\u2019\u201E\u201A\u00AB\u00BB\u2039\u203A\u300C\u300D\u300E\u300F\uFF02\uFF07";
const KEY_EDGES = new RegExp(`^[\\s${KEY_QUOTES}]+|[\\s${KEY_QUOTES}]+$`, "g");
const cleanKey = (raw) => String(raw ?? "").replace(/[\u200B-\u200D\u2060\uFEFF\u00AD]/g, "").replace(KEY_EDGES, "");

// A refused key (401). While signed in with it, the console signs out at once, saying the key is no longer valid
// (the planner's work stays kept in the tab for this tenant's next sign-in); the error is then marked `ended`.
function keyRefused(code, epoch) {
  // the API's own message is English; an expired key is told apart from an invalid one
  const e = new ApiError(401, () => t(code === "api_key_expired" ? "err.keyExpired" : "err.badKey"), { code });
  if (S.tenant && epoch === S.epoch) {
    signOut(["signout.badKey"], { error: true, keepPlan: true });
    e.ended = true;
  }
  return e;
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const epoch = S.epoch;
  const key = sessionStorage.getItem("sfai_key") || "";
  // a header the browser would refuse (fetch throws, as if the server were away): the key is wrong, say so
  if (!KEY_OK.test(key)) throw keyRefused(null, epoch);
  const headers = { Authorization: "Bearer " + key };
  if (body !== undefined) headers["content-type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, () => t("err.network"));
  }
  if (raw && r.ok) return r;
  const isJson = (r.headers.get("content-type") || "").includes("json");
  const data = isJson ? await r.json() : await r.text();
  if (r.status === 401) throw keyRefused(data?.error?.code, epoch);
  if (!r.ok) throw apiError(r.status, path, data || r.statusText, Number(r.headers.get("retry-after")));
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

// Runs `fn` with `button` disabled and marked busy until it ends: a second click, or Enter in the button's form,
// cannot send the same request twice (two keys, two subscriptions) while the first is on its way.
// A disabled button loses the keyboard focus (to <body>): where it had it, it gets it back once enabled again, or,
// where the answer re-drew it away (a revoked key's row), the element `lost()` names.
async function busy(button, fn, lost = null) {
  if (button.disabled) return;
  const had = document.activeElement === button;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    if (had && focusLost()) (button.isConnected ? button : lost?.())?.focus({ preventScroll: true });
  }
}

// Whether the keyboard focus was lost (on <body>, or on an element taken off the page)
const focusLost = () => !document.activeElement || document.activeElement === document.body || !document.activeElement.isConnected;

// The control to go on from when the button at `index` among `selector`'s in `root` has gone (its row re-drawn
// without it): the one now at its place, else the last one, else `fallback`.
function nextControl(root, selector, index, fallback) {
  const all = [...$(root).querySelectorAll(selector)];
  return all[Math.min(index, all.length - 1)] || $(fallback);
}

// ------------------------------------------------------------------------------------------------ sign-in
// The sign-in's error under the key field (`msg` a function, for a language switch; null: none). `invalid`: the key
// itself was refused (aria-invalid, the field cleared); otherwise the key stays as typed.
let keyErrorText = null;
function keyFieldError(msg, invalid = false) {
  const field = $("api-key");
  const el = $("api-key-error");
  el.hidden = !msg;
  el.textContent = msg ? msg() : "";
  keyErrorText = msg;
  if (msg) field.setAttribute("aria-describedby", "api-key-error"); else field.removeAttribute("aria-describedby");
  if (msg && invalid) { field.setAttribute("aria-invalid", "true"); field.value = ""; } else field.removeAttribute("aria-invalid");
  if (msg) field.focus();
}
// `key`: the key as typed or pasted (cleaned here); none: the key this tab already holds (a reload).
async function signIn(key) {
  if (key !== undefined) {
    key = cleanKey(key);
    if (!KEY_OK.test(key)) { // not a key at all (Korean text, a stray character inside): no request is sent
      say(() => t("signin.bad", { msg: t("err.badKey") }), true);
      keyFieldError(() => t("err.badKey"), true);
      return;
    }
    sessionStorage.setItem("sfai_key", key);
  }
  if (!sessionStorage.getItem("sfai_key")) return;
  const epoch = S.epoch;
  let tenant;
  try {
    tenant = await api("/v1/tenant");
  } catch (e) {
    if (epoch !== S.epoch) return;
    sessionStorage.removeItem("sfai_key");
    say(() => t("signin.bad", { msg: e.message }), true);
    // a refused key is the field's fault (marked, and cleared); a server out of reach or failing is not: the key
    // typed stays for the next try
    keyFieldError(() => e.message, e.status === 401);
    return;
  }
  if (epoch !== S.epoch) return;
  keyFieldError(null);
  $("api-key").value = "";
  S.tenant = tenant;
  $("signin").hidden = true;
  $("app").hidden = false;
  pageTitle();
  $("signout-btn").hidden = false;
  const badge = $("tenant-badge");
  badge.hidden = false;
  renderBadge();
  $("planner-nosub").hidden = S.tenant.modules.includes("scheduling");
  const saved = savedPlan();
  const welcome = () => t("signin.ok", { tenant: tenant.display_name || tenant.name, role: label("role", tenant.caller_role) });
  say(welcome);
  if (key) $("tab-planner").focus();
  if (saved) {
    restorePlan(saved);
    const jobs = saved.problem.jobs.length;
    say(() => `${welcome()} ${t(saved.job ? "planner.restoredJob" : "planner.restored", { jobs: tn("count.orders", jobs) })}`);
  } else if (!S.problem) {
    // a Solve clicked before the sample has come waits for it (it had said "no orders" and drawn nothing)
    const loading = loadSample(false, true);
    S.sampleLoad = loading;
    try { await loading; } finally { if (S.sampleLoad === loading) S.sampleLoad = null; }
  }
}

function renderBadge() {
  const badge = $("tenant-badge");
  // a key with an expiry says when, so that whoever signed in with it sees it coming (GET /v1/tenant gives it)
  const expires = S.tenant.caller_key_expires_at;
  const until = expires ? ` · ${t("tenant.keyExpires")} ${String(expires).slice(0, 16).replace("T", " ")} UTC` : "";
  badge.textContent = `${S.tenant.display_name} (${S.tenant.name}) · KSIC ${S.tenant.ksic_code} · ${t("tenant.role")} ${label("role", S.tenant.caller_role)}${until}`;
  badge.dataset.role = S.tenant.caller_role;
}

// `message`: what the status line says (a key of i18n.js and its values), by default that the user signed out;
// `error`: said as an error; `keepPlan`: the planner's work stays kept in the tab for this tenant's next sign-in
// (a key refused mid-session), where Sign out forgets it.
function signOut(message = ["signout.done"], { error = false, keepPlan = false } = {}) {
  sessionStorage.removeItem("sfai_key");
  if (!keepPlan) sessionStorage.removeItem(PLAN_KEY);
  S.epoch += 1; // answers still on their way belong to the session that ended
  Object.assign(S, { tenant: null, problem: null, result: null, solved: null, stale: false, edits: 0, copy: null, selected: null,
    samples: null, samplesError: null, sampleLoad: null, links: {}, busy: false, lastPinUndo: null, job: null, jobView: null, savedJob: null, saved: "all", noPlan: null });
  clearPage();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout-btn").hidden = true;
  showTab("planner");
  say(() => t(...message), error);
  keyFieldError(null);
  $("api-key").focus();
}

// Everything on the page that came from the tenant or was entered for it, back as it was before any sign-in: the
// next key's tenant sees none of it (orders, plan, what-if copy, pins, details, job line, dashboard, admin tables,
// a new key's secret, the forms and the planner's settings).
// The usage log's next (older) page: the records before the oldest shown, with the same filters; null where the
// last page shown was the oldest.
let usageNext = null;
let usageShown = null; // the query (filters, rows) of the first page on screen

function clearPage() {
  fileError(null);
  $("time-limit-note").hidden = true;
  for (const g of [gantt, copyGantt, currentGantt]) g.clear();
  dashLoads += 1; // predictions still on their way fill no card
  $("dash-cards").innerHTML = "";
  renderStale();
  renderJob();
  $("job-text").textContent = "";
  $("job-progress").value = 0;
  delete $("job-line").dataset.job;
  delete $("job-line").dataset.state;
  resetOrderForm();
  renderOrders();
  renderSummary();
  renderPins();
  renderDetails();
  renderCompare();
  renderGanttEmpty();
  renderUnsaved();
  $("clear-copy").hidden = true;
  $("orders-details").open = false;
  $("order-entry").open = false;
  $("orders-file").value = "";
  applySettings(PLANNER_DEFAULTS);
  $("solve-btn").disabled = false;
  $("solve-btn").textContent = t("planner.solve");
  $("gantt").removeAttribute("aria-busy");
  $("planner-nosub").hidden = true;
  for (const id of ["subs-table", "keys-table", "usage-table"]) $(id).innerHTML = "";
  $("usage-summary").textContent = "";
  $("usage-key").replaceChildren($("usage-key").options[0]); // the last tenant's key names are not left in the page
  usageNext = null;
  usageShown = null;
  $("usage-more").hidden = true;
  for (const id of ["sub-form", "key-form", "usage-form"]) $(id).reset();
  markUsageRange(false);
  $("new-key").hidden = true;
  $("new-key-value").value = ""; // the secret shown once is not left in the page
  $("admin-denied").hidden = true;
  $("admin-denied").textContent = "";
  const badge = $("tenant-badge");
  badge.hidden = true;
  badge.textContent = "";
  delete badge.dataset.role;
}

// ------------------------------------------------------------------------------------------------ the planner's work, kept in the tab
// The planner's orders, settings, last plan (with its what-if copy) and a running background job are kept in the
// tab's sessionStorage under PLAN_KEY, marked with the tenant's name: a reload or Back/Forward restores them at
// sign-in, and the job is polled again. Only that tenant gets them back: another tenant's sign-in drops them, and so
// does Sign out. Where the browser's storage is full the plan is kept without its solved plan and copy, or not at
// all; a note above the chart says so (S.saved: "all", "orders" or null).
const PLAN_KEY = "sfai_plan";
const SETTING_IDS = ["objective", "time-limit", "w-tardiness", "w-makespan", "w-energy", "lex-1", "lex-2", "lex-3", "plan-start"];
const readSettings = () => Object.fromEntries(SETTING_IDS.map((id) => [id, $(id).value]));
// as the page writes them (not as a browser may have refilled the fields on a reload)
const defaultOf = (el) => (el.tagName === "SELECT" ? ([...el.options].find((o) => o.defaultSelected) || el.options[0])?.value ?? "" : el.defaultValue);
const PLANNER_DEFAULTS = Object.fromEntries(SETTING_IDS.map((id) => [id, defaultOf($(id))]));

function applySettings(settings) {
  for (const id of SETTING_IDS) if (typeof settings?.[id] === "string") $(id).value = settings[id];
  renderObjectiveHelp();
  planStartError(false);
}

function persist() {
  if (!S.tenant || !S.problem) return;
  const same = (a, b) => a === b || JSON.stringify(a) === JSON.stringify(b);
  // the job's problem as sent is kept only where the orders changed since (else it is the problem itself)
  // (its clock aside: the Plan start field's, added to the problem as it was sent)
  const noClock = (p) => p && { ...p, clock: undefined };
  const job = S.savedJob && { ...S.savedJob, sent: same(noClock(S.savedJob.sent), noClock(S.problem)) ? null : S.savedJob.sent };
  const orders = { v: 1, tenant: S.tenant.name, settings: readSettings(), problem: S.problem, links: S.links, job };
  const all = { ...orders, result: S.result, solved: S.result ? S.solved : null, stale: S.stale, copy: S.copy };
  const bare = { ...orders, links: {} }; // a file's meter rows can be big: the orders are kept without them first
  S.saved = null;
  for (const [doc, what] of [[all, "all"], [orders, "orders"], [bare, "orders"]]) {
    try {
      sessionStorage.setItem(PLAN_KEY, JSON.stringify(doc));
      S.saved = what;
      break;
    } catch { /* over the storage quota (or storage refused): try with less */ }
  }
  if (!S.saved) sessionStorage.removeItem(PLAN_KEY); // an older version would otherwise come back
  renderUnsaved();
}

function renderUnsaved() {
  const el = $("plan-unsaved");
  el.hidden = S.saved === "all";
  el.textContent = S.saved === "all" ? "" : t(S.saved === "orders" ? "planner.unsavedPlan" : "planner.unsaved");
}

// The plan kept in this tab for the tenant signed in, or null (another tenant's is dropped, never shown).
function savedPlan() {
  let doc = null;
  try { doc = JSON.parse(sessionStorage.getItem(PLAN_KEY) || "null"); } catch { doc = null; }
  if (doc && (doc.v !== 1 || doc.tenant !== S.tenant.name || !Array.isArray(doc.problem?.jobs) || !Array.isArray(doc.problem?.machines))) {
    sessionStorage.removeItem(PLAN_KEY);
    return null;
  }
  return doc;
}

function restorePlan(doc) {
  applySettings(doc.settings);
  setProblem(doc.problem, false, keptLinks(doc.links));
  if (doc.result?.gantt?.length && doc.solved) {
    Object.assign(S, { result: doc.result, solved: doc.solved, stale: !!doc.stale, copy: doc.copy || null });
    $("clear-copy").hidden = !S.copy;
    renderStale();
    gantt.render(S.solved, S.result);
    renderSummary();
    renderPins();
    renderCompare();
  }
  persist();
  if (doc.job?.id) resumeJob(doc.job);
}

// ------------------------------------------------------------------------------------------------ tabs
const TABS = ["planner", "dashboard", "admin"];
function showTab(name, focus = false) {
  if (TABS.find((n) => !$("panel-" + n).hidden) !== name) clearStatus(); // another tab: the last one's message goes
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
  if (name === "planner" && S.result) gantt.render(S.solved, S.result, { keepView: true });
  pageTitle();
}

// The window's title names the tab shown (signed in), then the console
function pageTitle() {
  const tab = TABS.find((n) => !$("panel-" + n).hidden);
  document.title = S.tenant && tab ? `${t("tab." + tab)} – ${t("app.title")}` : t("app.title");
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
async function loadSample(announce = true, unlessStarted = false) {
  const epoch = S.epoch;
  const r = await fetch("/static/sample-plan.json");
  const plan = await r.json();
  if (epoch !== S.epoch) return; // signed out meanwhile
  if (unlessStarted && S.problem) return; // the planner started a plan while the sample was on its way
  setProblem(plan, announce);
}

// `clockFrom`: the plan start a problem file's clock gave (said after what was loaded)
function setProblem(problem, announce = true, links = {}, fromCsv = false, clockFrom = null) {
  fileError(null);
  S.problem = problem;
  S.links = links; // a request file's partner-module fields (LINK_FIELDS), sent with each solve of these orders
  S.result = null;
  S.solved = null;
  S.stale = false;
  S.selected = null;
  S.noPlan = null;
  renderStale();
  if (!S.busy) { S.jobView = null; renderJob(); } // a running job's line stays (its answer is then not shown)
  resetOrderForm();
  renderOrders();
  renderPins();
  renderDetails();
  renderSummary();
  renderGanttEmpty();
  renderCompare();
  persist();
  if (announce) {
    const ops = problem.jobs.reduce((n, j) => n + j.operations.length, 0);
    const kept = Object.keys(links); // a request file's links: said after what was loaded
    say(() => t("planner.loaded", { jobs: tn("count.orders", problem.jobs.length), ops: tn("count.operations", ops),
      machines: tn("count.machines", problem.machines.length) })
      + (kept.length ? ` ${t("planner.linksKept", { links: kept.join(", ") })}` : "")
      // a CSV holds orders only: its families get no changeover times, and the machines no calendars or tariffs
      + (fromCsv ? ` ${t(problem.jobs.some((j) => j.operations.some((o) => o.family)) ? "planner.csvFamilies" : "planner.csvOnly")}` : "")
      + (clockFrom ? ` ${t("planner.planStartFromFile", { start: clockFrom.replace("T", " ") })}` : ""));
  }
}

// CSV records as RFC 4180 reads them, as Excel writes them: fields separated by commas, records by CRLF or LF
// (or a lone CR); a field in double quotes may hold commas, line breaks and quotes (doubled: "" is one "). Each
// record is [line, cells] with the line it starts on and its cells, trimmed as the order form trims its fields.
// A line starting with # is a comment (skipped, quotes and all): a blank record ([""]) is left in its place.
// A quote left open, or text after a closing quote, throws the translated error naming the line.
function csvRecords(text) {
  const records = [];
  let cells = [];
  let cell = "";
  let quoted = false; // the current cell was quoted
  let line = 1; // the line the parser is on
  let start = 1; // the line the current record started on
  let i = 0;
  const n = text.length;
  const endCell = () => { cells.push(quoted ? cell : cell.trim()); cell = ""; quoted = false; };
  const endRecord = () => { endCell(); records.push([start, cells]); cells = []; };
  while (i < n) {
    const c = text[i];
    if (c === "#" && !cells.length && !quoted && cell.trim() === "") {
      while (i < n && text[i] !== "\r" && text[i] !== "\n") i += 1; // a comment, to the end of its line
      cell = "";
      continue;
    }
    if (c === '"' && !quoted && cell.trim() === "") {
      // a quoted field: up to the closing quote (a doubled quote is one quote); spaces before the opening quote go
      const open = line;
      let value = "";
      i += 1;
      for (;;) {
        if (i >= n) throw new Error(t("csv.unterminated", { line: open }));
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') { value += '"'; i += 2; continue; }
          i += 1;
          break;
        }
        if (q === "\r" || q === "\n") {
          value += "\n"; // a line break inside a field (CRLF read as one)
          i += q === "\r" && text[i + 1] === "\n" ? 2 : 1;
          line += 1;
          continue;
        }
        value += q;
        i += 1;
      }
      while (i < n && (text[i] === " " || text[i] === "\t")) i += 1; // spaces before the next comma are no part of it
      if (i < n && text[i] !== "," && text[i] !== "\r" && text[i] !== "\n") {
        throw new Error(t("csv.afterQuote", { line, value: value.slice(0, 40), after: text.slice(i).match(/^[^,\r\n]{1,12}/)[0] }));
      }
      cell = value.trim();
      quoted = true;
      continue;
    }
    if (c === ",") { endCell(); i += 1; continue; }
    if (c === "\r" || c === "\n") {
      endRecord();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line += 1;
      start = line;
      continue;
    }
    cell += c; // a quote inside an unquoted field (12" pipe) is kept as it is, as Excel reads it
    i += 1;
  }
  if (cell !== "" || quoted || cells.length) endRecord();
  return records;
}

// CSV orders: one operation per line; columns job, operation, machines ("M1:30|M2:36"), due, release, weight,
// family, power_kw (only job and machines are required). Lines of one job are its routing, in order. Fields may be
// quoted as Excel quotes them ("Order 12, rush"). Blank lines and lines starting with # are skipped.
// Every problem is reported (with its line number), not only the first.
function parseCsv(text) {
  const lines = csvRecords(text.replace(/^\uFEFF/, "")).filter(([, cells]) => cells.some((c) => c !== ""));
  if (lines.length < 2) throw new Error(t("csv.tooShort"));
  const head = lines[0][1].map((h) => h.toLowerCase());
  for (const need of ["job", "machines"]) if (!head.includes(need)) throw new Error(t("csv.missingColumn", { col: need, head: lines[0][1].join(",").slice(0, 80) }));
  const col = (cells, name) => { const i = head.indexOf(name); return i < 0 ? "" : cells[i] ?? ""; };
  const jobs = new Map();
  const machines = [];
  const errs = [];
  for (const [line, c] of lines.slice(1)) {
    const jid = col(c, "job");
    if (!jid) { errs.push(t("csv.emptyJob", { line })); continue; }
    const durs = {};
    for (const part of col(c, "machines").split("|")) {
      const [m, d] = part.split(":").map((s) => s.trim());
      const dur = Number(d);
      if (!m || d === undefined || d === "" || !Number.isInteger(dur) || dur < 0) { errs.push(t("csv.machines", { line, value: col(c, "machines") })); break; }
      if (Object.hasOwn(durs, m)) { errs.push(t("csv.machineTwice", { line, machine: m })); break; } // which time would it be?
      durs[m] = dur;
      if (!machines.includes(m)) machines.push(m);
    }
    if (!jobs.has(jid)) jobs.set(jid, { id: jid, operations: [] });
    const job = jobs.get(jid);
    for (const k of ["due", "release"]) {
      const v = col(c, k);
      if (v === "") continue;
      if (!Number.isInteger(Number(v)) || Number(v) < 0) errs.push(t("csv.integer", { line, col: k, value: v }));
      else job[k] = Number(v);
    }
    const number = (k) => {
      const v = col(c, k);
      if (v === "") return undefined;
      if (!Number.isFinite(Number(v)) || Number(v) < 0) { errs.push(t("csv.number", { line, col: k, value: v })); return undefined; }
      return Number(v);
    };
    const weight = number("weight");
    if (weight !== undefined) job.weight = weight;
    const op = { id: col(c, "operation") || String(job.operations.length), machines: durs };
    if (col(c, "family")) op.family = col(c, "family");
    const power = number("power_kw");
    if (power !== undefined) op.power_kw = power;
    job.operations.push(op);
  }
  if (errs.length) throw new Error(errs.slice(0, 5).join(" ") + (errs.length > 5 ? " " + t("csv.more", { count: errs.length - 5 }) : ""));
  return { name: "uploaded-orders", machines, jobs: [...jobs.values()] };
}

// A file's text: UTF-8 (a BOM is dropped), else EUC-KR, which Korean Excel writes for "CSV (comma delimited)".
async function readText(file) {
  const bytes = await file.arrayBuffer();
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("euc-kr").decode(bytes);
  }
}

// A request file's fields that link the plan to the tenant's other modules (the maintenance model's machine records,
// the energy forecast's meter rows): kept with its orders and sent with each solve (they had been dropped unsaid)
const LINK_FIELDS = ["maintenance", "energy_forecast"];
const keptLinks = (doc) => Object.fromEntries(LINK_FIELDS.filter((k) => doc && typeof doc === "object" && !Array.isArray(doc)
  && doc[k] !== undefined && doc[k] !== null).map((k) => [k, doc[k]]));

async function onFile(e) {
  const file = e.target.files[0];
  if (!file) return;
  e.target.value = ""; // choosing the same file again, once corrected, reads it again
  const text = await readText(file);
  const parse = () => {
    if (/\.csv$/i.test(file.name) || file.type === "text/csv") return { problem: parseCsv(text), links: {}, csv: true };
    let doc;
    try { doc = JSON.parse(text); } catch (err) { throw new Error(t("file.badJson", { msg: err.message })); }
    const problem = doc?.problem || doc;
    if (!Array.isArray(problem?.jobs) || !Array.isArray(problem?.machines)) throw new Error(t("file.noJobs"));
    return { problem, links: doc?.problem ? keptLinks(doc) : {}, start: adoptFileClock(problem) };
  };
  try {
    const { problem, links, csv, start } = parse();
    fileError(null);
    if (start) { // the file's clock: its start is the plan start from now on (the field shows it, and is remembered)
      $("plan-start").value = start;
      planStartError(false);
    }
    setProblem(problem, true, links, !!csv, start);
  } catch (err) {
    // the problems are listed again in the language of the moment (a language switch re-renders the status line);
    // a binary file's control characters (quoted by the JSON parser) are left out of the words
    const problems = () => { try { parse(); return err.message; } catch (again) { return again.message; } };
    const msg = () => printable(t("planner.badFile", { msg: `${file.name}: ${problems()}` }));
    say(msg, true);
    fileError(msg);
  }
}

// Text without control characters (and the replacement character a binary file decodes into): fit to show
const printable = (s) => String(s).replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\uFFFD]+/g, "").replace(/\s+/g, " ");

// The upload's problem under the file input, tied to it (aria-invalid, aria-describedby); null: none
let fileErrorText = null;
function fileError(msg) {
  fileErrorText = msg;
  const el = $("orders-file-error");
  el.hidden = !msg;
  el.textContent = msg ? msg() : "";
  if (msg) {
    $("orders-file").setAttribute("aria-invalid", "true");
    $("orders-file").setAttribute("aria-describedby", "orders-file-error");
  } else {
    $("orders-file").removeAttribute("aria-invalid");
    $("orders-file").removeAttribute("aria-describedby");
  }
}

// Due dates and weights typed into the order table are checked as the order form checks them (a due date a whole
// number >= 0, a weight a number >= 0; empty: none, or the default weight 1). A refused value stays in its input,
// marked aria-invalid with the reason beside it, and the order keeps its last good value; tableBad holds them
// ("row:field" -> the text typed) until corrected, across a language switch (renderOrders(true)).
let tableBad = new Map();
const CELL_RULES = {
  due: { col: "col.due", err: "order.err.due", ok: (n) => Number.isInteger(n) && n >= 0 },
  weight: { col: "col.weight", err: "order.err.weight", ok: (n) => Number.isFinite(n) && n >= 0 },
};

function renderOrders(keepBad = false) {
  if (!keepBad) tableBad = new Map();
  const tb = $("orders-table");
  $("of-machine-list").innerHTML = machineIds().map((m) => `<option value="${esc(m)}"></option>`).join("");
  if (!S.problem) { tb.innerHTML = ""; return; }
  // with a plan start, a due date's and a release's time on the clock beside its minutes (the due date's input is
  // described by it)
  const clk = fieldClock();
  const cell = (i, j, field, stored, step, cls) => {
    const id = `ot-${i}-${field}`;
    const bad = tableBad.get(`${i}:${field}`);
    const hint = bad === undefined && field === "due" ? clockHint(clk, stored, `${id}-clock`) : "";
    return `<td><input id="${id}" type="number" min="0" step="${step}" data-job="${i}" data-field="${field}" value="${esc(bad ?? stored)}" ` +
      `aria-label="${esc(t(CELL_RULES[field].col))} ${esc(j.id)}" class="${cls}"` +
      (bad === undefined ? `${hint ? ` aria-describedby="${id}-clock"` : ""}>${hint}` :
        ` aria-invalid="true" aria-describedby="${id}-err"><span class="field-error" id="${id}-err">${esc(t(CELL_RULES[field].err))}</span>`) +
      "</td>";
  };
  tb.innerHTML = `<thead><tr><th>${t("col.job")}</th><th>${t("col.operations")}</th><th>${t("col.release")}</th>` +
    `<th>${t("col.due")}</th><th>${t("col.weight")}</th><th>${t("order.actions")}</th></tr></thead><tbody>` +
    S.problem.jobs.map((j, i) => `<tr data-job="${esc(j.id)}"><td>${esc(j.id)}</td><td>${j.operations.map((o, k) =>
      `${esc(o.id ?? k)} (${Object.entries(o.machines).map(([m, d]) => `${esc(m)}:${esc(d)}`).join(" / ")})`).join(" → ")}</td>` +
      `<td>${esc(j.release ?? 0)}${clockHint(clk, j.release ?? 0)}</td>` + cell(i, j, "due", j.due ?? "", 1, "w-num") + cell(i, j, "weight", j.weight ?? 1, 0.5, "w-small") +
      `<td class="actions"><button type="button" class="secondary" data-edit-job="${i}" aria-label="${esc(t("order.editLabel", { job: j.id }))}">${esc(t("order.edit"))}</button> ` +
      `<button type="button" class="danger" data-remove-job="${i}" aria-label="${esc(t("order.removeLabel", { job: j.id }))}">${esc(t("order.remove"))}</button></td></tr>`).join("") +
    "</tbody>";
  tb.querySelectorAll("input").forEach((inp) => inp.addEventListener("change", () => onOrderCell(inp)));
  tb.querySelectorAll("[data-edit-job]").forEach((b) => b.addEventListener("click", () => editOrder(Number(b.dataset.editJob))));
  tb.querySelectorAll("[data-remove-job]").forEach((b) => b.addEventListener("click", () => removeOrder(Number(b.dataset.removeJob))));
}

function onOrderCell(inp) {
  const i = Number(inp.dataset.job);
  const field = inp.dataset.field;
  const job = S.problem.jobs[i];
  const rule = CELL_RULES[field];
  const raw = inp.value.trim();
  const ok = !inp.validity.badInput && (raw === "" || rule.ok(Number(raw)));
  const errId = `${inp.id}-err`;
  $(errId)?.remove();
  $(`${inp.id}-clock`)?.remove();
  if (!ok) {
    tableBad.set(`${i}:${field}`, inp.value);
    inp.setAttribute("aria-invalid", "true");
    inp.setAttribute("aria-describedby", errId);
    const msg = document.createElement("span");
    msg.className = "field-error";
    msg.id = errId;
    msg.textContent = t(rule.err);
    inp.after(msg);
    say(() => t("orders.cellBad", { job: job.id, msg: t(rule.err) }), true);
    return;
  }
  tableBad.delete(`${i}:${field}`);
  inp.removeAttribute("aria-invalid");
  inp.removeAttribute("aria-describedby");
  if (raw === "") delete job[field];
  else job[field] = Number(raw);
  const hint = field === "due" ? clockHint(fieldClock(), job.due ?? "", `${inp.id}-clock`) : "";
  if (hint) {
    inp.insertAdjacentHTML("afterend", hint);
    inp.setAttribute("aria-describedby", `${inp.id}-clock`);
  }
  markStale();
}

// The first refused value in the order table, opened and focused with the reason said; false where there is none.
function focusBadCell() {
  const first = [...tableBad.keys()][0];
  if (first === undefined) return false;
  const [i, field] = first.split(":");
  $("orders-details").open = true;
  const inp = $(`ot-${i}-${field}`);
  say(() => t("orders.fixFirst"), true);
  if (inp) inp.focus();
  return true;
}

// ------------------------------------------------------------------------------------------------ planner: order form
// One order (job) at a time: id, due, release, weight and its operations in routing order, each with one or more
// eligible machines and the duration there. Adds a job to S.problem, or replaces the one being edited (OF.edit).
const OF = { ops: [], edit: null };
const blankOp = () => ({ id: "", family: "", power: "", alts: [{ machine: "", dur: "" }] });
const machineIds = () => (S.problem?.machines || []).map((m) => (typeof m === "string" ? m : m.id));

function readOps() {
  OF.ops = [...$("of-ops").querySelectorAll("fieldset.op-entry")].map((fs) => {
    const power = fs.querySelector(".of-op-power");
    return {
      id: fs.querySelector(".of-op-id").value.trim(),
      family: fs.querySelector(".of-op-family").value.trim(),
      power: power.value.trim(),
      powerBad: power.validity.badInput,
      alts: [...fs.querySelectorAll(".of-alt")].map((row) => {
        const dur = row.querySelector(".of-alt-dur");
        return { machine: row.querySelector(".of-alt-machine").value.trim(), dur: dur.value.trim(), durBad: dur.validity.badInput };
      }),
    };
  });
}

function renderOps() {
  const many = OF.ops.length > 1;
  $("of-ops").innerHTML = OF.ops.map((op, i) => {
    const n = i + 1;
    const opName = t("order.op", { n });
    return `<fieldset class="op-entry" data-op="${i}"><legend>${esc(opName)}</legend><div class="toolbar">` +
      `<label for="of-op-${i}-id">${esc(t("order.opId"))}</label>` +
      `<input id="of-op-${i}-id" class="of-op-id" maxlength="64" autocomplete="off" value="${esc(op.id)}">` +
      `<label for="of-op-${i}-family">${esc(t("order.family"))}</label>` +
      `<input id="of-op-${i}-family" class="of-op-family" maxlength="64" autocomplete="off" value="${esc(op.family)}">` +
      `<label for="of-op-${i}-power">${esc(t("order.power"))}</label>` +
      `<input id="of-op-${i}-power" class="of-op-power w-small" type="number" min="0" step="any" value="${esc(op.power)}">` +
      (many ? `<button type="button" class="danger" data-remove-op="${i}">${esc(t("order.removeOp", { n }))}</button>` : "") + `</div>` +
      op.alts.map((a, j) => `<div class="toolbar of-alt">` +
        `<label for="of-op-${i}-m-${j}">${esc(t("order.machine"))} ${j + 1}</label>` +
        `<input id="of-op-${i}-m-${j}" class="of-alt-machine" list="of-machine-list" maxlength="64" autocomplete="off" value="${esc(a.machine)}">` +
        `<label for="of-op-${i}-d-${j}">${esc(t("order.duration"))}</label>` +
        `<input id="of-op-${i}-d-${j}" class="of-alt-dur w-num" type="number" min="1" step="1" value="${esc(a.dur)}">` +
        (op.alts.length > 1 ? `<button type="button" class="secondary" data-remove-alt="${i}:${j}" aria-label="${esc(opName)}: ${esc(t("order.removeAlt", { k: j + 1 }))}">` +
          `${esc(t("order.removeAlt", { k: j + 1 }))}</button>` : "") + `</div>`).join("") +
      `<button type="button" class="secondary" id="of-op-${i}-add-alt" data-add-alt="${i}">${esc(t("order.addAlt", { n }))}</button></fieldset>`;
  }).join("");
}

function onOpsClick(e) {
  const b = e.target.closest("button");
  if (!b) return;
  readOps();
  if (b.dataset.addAlt !== undefined) {
    const i = Number(b.dataset.addAlt);
    OF.ops[i].alts.push({ machine: "", dur: "" });
    renderOps();
    $(`of-op-${i}-m-${OF.ops[i].alts.length - 1}`).focus();
  } else if (b.dataset.removeAlt !== undefined) {
    const [i, j] = b.dataset.removeAlt.split(":").map(Number);
    OF.ops[i].alts.splice(j, 1);
    renderOps();
    $(`of-op-${i}-add-alt`).focus();
  } else if (b.dataset.removeOp !== undefined) {
    const i = Number(b.dataset.removeOp);
    OF.ops.splice(i, 1);
    renderOps();
    $(OF.ops.length ? `of-op-${Math.max(0, i - 1)}-id` : "of-add-op").focus();
  }
}

function addOp() {
  readOps();
  OF.ops.push(blankOp());
  renderOps();
  $(`of-op-${OF.ops.length - 1}-id`).focus();
}

function renderOrderFormTitle() {
  const editing = OF.edit !== null && S.problem?.jobs[OF.edit];
  $("order-entry-summary").textContent = editing ? t("order.editing", { job: editing.id }) : t("order.add");
  $("of-submit").textContent = t(editing ? "order.submitSave" : "order.submitAdd");
}

function resetOrderForm() {
  OF.edit = null;
  OF.ops = [blankOp()];
  for (const id of ["of-job", "of-due", "of-release"]) $(id).value = "";
  $("of-weight").value = "1";
  showOrderErrors([]);
  renderOps();
  renderOrderFormTitle();
}

function editOrder(i) {
  const j = S.problem.jobs[i];
  OF.edit = i;
  $("of-job").value = j.id;
  $("of-due").value = j.due ?? "";
  $("of-release").value = j.release ?? "";
  $("of-weight").value = j.weight ?? 1;
  OF.ops = j.operations.map((o, k) => ({
    id: String(o.id ?? k), family: o.family ?? "", power: o.power_kw ?? "",
    alts: Object.entries(o.machines).map(([m, d]) => ({ machine: m, dur: String(d) })),
  }));
  showOrderErrors([]);
  renderOps();
  renderOrderFormTitle();
  $("order-entry").open = true;
  $("of-job").focus();
}

// [[field id, message], ...] for the form as it stands (OF.ops read from the page)
function orderErrors() {
  readOps();
  const errs = [];
  const id = $("of-job").value.trim();
  if (!id) errs.push(["of-job", t("order.err.jobRequired")]);
  else if ((S.problem?.jobs || []).some((j, i) => i !== OF.edit && String(j.id) === id)) errs.push(["of-job", t("order.err.jobDuplicate", { job: id })]);
  const wholeOrEmpty = (inp) => !inp.validity.badInput && (inp.value.trim() === "" || (Number.isInteger(Number(inp.value)) && Number(inp.value) >= 0));
  if (!wholeOrEmpty($("of-due"))) errs.push(["of-due", t("order.err.due")]);
  if (!wholeOrEmpty($("of-release"))) errs.push(["of-release", t("order.err.release")]);
  const w = $("of-weight");
  if (w.validity.badInput || (w.value.trim() !== "" && !(Number.isFinite(Number(w.value)) && Number(w.value) >= 0))) errs.push(["of-weight", t("order.err.weight")]);
  if (!OF.ops.length) errs.push(["of-add-op", t("order.err.noOps")]);
  OF.ops.forEach((op, i) => {
    const n = i + 1;
    if (!op.id) errs.push([`of-op-${i}-id`, t("order.err.opId", { n })]);
    else if (OF.ops.findIndex((o) => o.id === op.id) < i) errs.push([`of-op-${i}-id`, t("order.err.opDuplicate", { n, op: op.id })]);
    if (op.powerBad || (op.power !== "" && !(Number.isFinite(Number(op.power)) && Number(op.power) >= 0))) errs.push([`of-op-${i}-power`, t("order.err.power", { n })]);
    if (!op.alts.length) errs.push([`of-op-${i}-add-alt`, t("order.err.noMachine", { n })]);
    const seen = new Set();
    op.alts.forEach((a, j) => {
      if (!a.machine) errs.push([`of-op-${i}-m-${j}`, t("order.err.machine", { n, k: j + 1 })]);
      else if (seen.has(a.machine)) errs.push([`of-op-${i}-m-${j}`, t("order.err.machineDuplicate", { n, machine: a.machine })]);
      seen.add(a.machine);
      const d = Number(a.dur);
      if (a.durBad || a.dur === "" || !Number.isInteger(d) || d < 1) errs.push([`of-op-${i}-d-${j}`, t("order.err.duration", { n, machine: a.machine || j + 1 })]);
    });
  });
  return errs;
}

function showOrderErrors(errs, focus = true) {
  const box = $("order-errors");
  $("order-form").querySelectorAll("[aria-invalid]").forEach((el) => { el.removeAttribute("aria-invalid"); el.removeAttribute("aria-describedby"); });
  if (!errs.length) { box.hidden = true; box.innerHTML = ""; return; }
  box.innerHTML = `<p><b>${esc(t("order.errSummary", { count: tn("count.problems", errs.length) }))}</b></p><ul>` +
    errs.map(([, m], k) => `<li id="order-err-${k}">${esc(m)}</li>`).join("") + `</ul>`;
  box.hidden = false;
  // each field is described by its own message(s), not by the whole list
  const mine = new Map();
  errs.forEach(([id], k) => mine.set(id, [...(mine.get(id) || []), `order-err-${k}`]));
  for (const [id, refs] of mine) {
    const el = $(id);
    if (el && el.tagName === "INPUT") { el.setAttribute("aria-invalid", "true"); el.setAttribute("aria-describedby", refs.join(" ")); }
  }
  if (focus) ($(errs[0][0]) || box).focus();
}

// The job the form describes; fields the form does not show (pins that still fit, lags...) are kept from `prev`.
function jobFromForm(prev) {
  const job = { ...(prev || {}), id: $("of-job").value.trim() };
  for (const [field, id] of [["due", "of-due"], ["release", "of-release"]]) {
    if ($(id).value.trim() === "") delete job[field]; else job[field] = Number($(id).value);
  }
  job.weight = $("of-weight").value.trim() === "" ? 1 : Number($("of-weight").value);
  job.operations = OF.ops.map((op) => {
    const old = prev?.operations.find((o, k) => String(o.id ?? k) === op.id);
    const machines = Object.fromEntries(op.alts.map((a) => [a.machine, Number(a.dur)]));
    const o = { ...(old || {}), id: op.id, machines };
    if (op.family) o.family = op.family; else delete o.family;
    if (op.power !== "") o.power_kw = Number(op.power); else delete o.power_kw;
    for (const k of ["pinned", "started"]) if (o[k] && !(o[k].machine in machines)) delete o[k];
    return o;
  });
  return job;
}

// Precedences between jobs follow a renamed job and are dropped with a removed job or operation.
function fixPrecedences(oldId, job) {
  if (!Array.isArray(S.problem.precedences)) return;
  const ends = new Map(S.problem.jobs.map((j) => [String(j.id), new Set(j.operations.map((o, k) => String(o.id ?? k)))]));
  const move = (ref) => (oldId !== null && String(ref[0]) === String(oldId) && job ? [job.id, ref[1]] : ref);
  S.problem.precedences = S.problem.precedences
    .map((p) => ({ ...p, before: move(p.before), after: move(p.after) }))
    .filter((p) => [p.before, p.after].every((r) => ends.get(String(r[0]))?.has(String(r[1]))));
}

function submitOrder(e) {
  e.preventDefault();
  if (!S.problem) S.problem = { name: "orders", machines: [], jobs: [] };
  const errs = orderErrors();
  showOrderErrors(errs);
  if (errs.length) return;
  const prev = OF.edit === null ? null : S.problem.jobs[OF.edit];
  const job = jobFromForm(prev);
  for (const o of job.operations) for (const m of Object.keys(o.machines)) if (!machineIds().includes(m)) S.problem.machines.push(m);
  if (prev) {
    S.problem.jobs[OF.edit] = job;
    fixPrecedences(prev.id, job);
  } else S.problem.jobs.push(job);
  say(() => t(prev ? "order.saved" : "order.added", { job: job.id, ops: tn("count.operations", job.operations.length) }));
  markStale();
  resetOrderForm();
  renderOrders();
  renderPins();
  renderSummary();
  renderGanttEmpty();
  $("orders-details").open = true;
  $("of-job").focus();
}

function cancelOrder() {
  const editing = OF.edit;
  resetOrderForm();
  const back = editing === null ? null : $("orders-table").querySelector(`[data-edit-job="${editing}"]`);
  (back || $("of-job")).focus();
}

function removeOrder(i) {
  const job = S.problem.jobs[i];
  if (!window.confirm(t("order.removeConfirm", { job: job.id }))) return;
  S.problem.jobs.splice(i, 1);
  fixPrecedences(null, null);
  if (OF.edit === i) resetOrderForm();
  else if (OF.edit !== null && OF.edit > i) OF.edit -= 1;
  renderOrders();
  renderPins();
  renderSummary();
  renderGanttEmpty();
  markStale();
  say(() => t("order.removed", { job: job.id }));
  const next = $("orders-table").querySelector(`[data-remove-job="${Math.min(i, S.problem.jobs.length - 1)}"]`);
  (next || $("of-job")).focus();
}

function newPlan() {
  setProblem({ name: "orders", machines: [], jobs: [] }, false);
  $("order-entry").open = true;
  $("of-job").focus();
  say(() => t("planner.newPlanDone"));
}

// ------------------------------------------------------------------------------------------------ planner: plan start
// The Plan start field (a datetime-local: the plant's local time, no UTC offset): where the plan's minute 0 lies on the
// calendar. Set, each solve sends the problem with a `clock` (docs/scheduling.md) and the answer's times (`clock` on
// the answer and on each row) are shown on it: the chart's axis and bars, the table view, the details, the summary and
// the exports. Empty, the problem goes without one and times stay minutes from 0, as before there were clocks. The
// orders' due dates and releases stay minutes from the plan start; with one set, the order table shows their time
// on its clock beside them.

// The minutes of the problem's time unit: its clock's, else its energy settings' (the server takes the one from the
// other), else a minute.
function unitMinutes(problem) {
  const given = Number(problem?.clock?.minutes_per_unit);
  if (given > 0) return given;
  const hours = Number(problem?.energy?.hours_per_unit);
  if (!(hours > 0)) return 1;
  const m = hours * 60;
  const secs = Math.round(m * 60); // 0.016667 h, a minute as the docs write it, is a minute
  return secs >= 1 && Math.abs(m * 60 - secs) <= 1e-4 * secs ? secs / 60 : m;
}

// The problem as sent: with `clock` {start: the field's value, minutes_per_unit} where a plan start is set (the unit a
// file's clock gave, else a minute, unless the energy settings give it: the server takes theirs), without one where
// not (a file's own clock included: the field shows the clock that goes).
function withPlanStart(problem) {
  const start = $("plan-start").value;
  const out = { ...problem };
  delete out.clock;
  if (start) {
    out.clock = { start: start + planStartOffset };
    const given = problem.clock?.minutes_per_unit;
    if (given !== undefined && given !== null) out.clock.minutes_per_unit = given;
    else if (problem.energy?.hours_per_unit === undefined || problem.energy?.hours_per_unit === null) out.clock.minutes_per_unit = 1;
  }
  return out;
}

// A plan start that cannot be sent: half typed (the browser's value is then empty), out of the field's range, unreadable
const planStartBad = () => {
  const el = $("plan-start");
  return el.validity.badInput || el.validity.rangeOverflow || el.validity.rangeUnderflow || (el.value !== "" && !parseClockTime(el.value));
};

// The field's error beside it (aria-invalid; the field is described by its help and this message)
function planStartError(show) {
  const msg = $("plan-start-error");
  msg.hidden = !show;
  msg.textContent = show ? t("planner.planStartBad") : "";
  if (show) $("plan-start").setAttribute("aria-invalid", "true"); else $("plan-start").removeAttribute("aria-invalid");
}

// Whether the plan start can be sent; if not, said beside the field and on the status line (and the field focused)
let planStartSaid = null;
function checkPlanStart(focus) {
  const bad = planStartBad();
  planStartError(bad);
  if (bad) {
    say(() => t("planner.planStartBad"), true);
    planStartSaid = said;
    if (focus) $("plan-start").focus();
  } else if (planStartSaid && said === planStartSaid) say(""); // corrected: the line's error about it goes
  if (!bad) planStartSaid = null;
  return !bad;
}

// a change: the orders' clock times follow; a start being typed (not whole yet) is said on blur or at the solve
function onPlanStart() {
  if (planStartBad() || !checkPlanStart(false)) return;
  renderOrders(true);
  renderPins();
  if ($("pin-form")) { // its start's clock hint comes or goes; the minute typed stays
    const typed = $("pin-start").value;
    renderDetails();
    if ($("pin-start")) { $("pin-start").value = typed; pinStartHint(); }
  }
}

// The plan start's clock, for the orders' times (the order table, the pins): null where none is set (or it cannot be
// read). The plan on screen shows its own clock, the one it was solved with (planClock(S.result)).
function fieldClock() {
  const v = $("plan-start").value;
  const p = v && !planStartBad() ? parseClockTime(v) : null;
  return p ? { wall: p.wall, mpu: unitMinutes(S.problem), offset: "" } : null;
}

// A time's clock beside its minutes (HTML), or "" without a clock or a time
function clockHint(clk, v, id = null) {
  if (!clk || v === "" || v === null || v === undefined || !Number.isFinite(Number(v))) return "";
  return `<span class="clock-hint"${id ? ` id="${id}"` : ""}>${esc(clockText(clk, Number(v)))}</span>`;
}

// The pin form's start on the plan start's clock, as typed
function pinStartHint() {
  const el = $("pin-start-clock");
  if (!el) return;
  const clk = fieldClock();
  const v = $("pin-start").value.trim();
  el.textContent = clk && v !== "" && Number.isInteger(Number(v)) && Number(v) >= 0 ? t("details.pinAt", { time: clockText(clk, Number(v)) }) : "";
}

// [key, value, id] of the plan's clock for the summary and the PDF: where it starts and ends on it ([] without one)
function clockMetrics(res) {
  const clk = planClock(res);
  if (!clk) return [];
  return [["m.planStart", clockText(clk, 0), "sum-plan-start"],
    ["m.planEnd", finite(res.makespan) ? clockText(clk, res.makespan) : "–", "sum-plan-end"]];
}

// A problem file's clock (docs/scheduling.md): its times written as ISO dates and times are put in plan units from the
// clock's start, rounded as the server rounds each (a due date, the horizon, a deadline, a running operation's start
// and a downtime's start down; a release, a pin and a downtime's end up), so that the order table, the form and the
// chart read numbers as they always have. Returns the clock's start on its own clock as the Plan start field's value
// (the plant's local time), or null for a file without a readable clock. A time that cannot be read stays as written,
// for the server to refuse, naming it.
// The UTC offset of a file's clock (the datetime-local field holds none): sent with the field's time, so a clock of
// "...T21:00Z" is not read as 21:00 on the plant's clock (an energy forecast 9 h off); "" for none
let planStartOffset = "";

function adoptFileClock(problem) {
  const c = problem?.clock;
  const start = c && typeof c === "object" ? parseClockTime(c.start) : null;
  planStartOffset = start ? start.offset : "";
  if (!start) return null;
  const mpu = unitMinutes(problem);
  const abs = (p) => p.wall - (p.offMin ?? 0) * 60000;
  const fix = (o, k, up = false) => {
    const p = o && typeof o === "object" && typeof o[k] === "string" ? parseClockTime(o[k]) : null;
    if (!p || (p.offMin === null) !== (start.offMin === null)) return;
    const u = (abs(p) - abs(start)) / (mpu * 60000);
    o[k] = up ? Math.ceil(u - 1e-9) : Math.floor(u + 1e-9);
  };
  const list = (v) => (Array.isArray(v) ? v : []);
  fix(problem, "horizon");
  fix(problem.failure_risk, "deadline");
  for (const m of list(problem.machines)) for (const d of [...list(m?.calendar), ...list(m?.maintenance)]) { fix(d, "start"); fix(d, "end", true); }
  for (const j of list(problem.jobs)) {
    fix(j, "release", true);
    fix(j, "due");
    for (const op of list(j?.operations)) { fix(op?.pinned, "start", true); fix(op?.started, "start"); }
  }
  const p = wallParts(start.wall);
  return `${p.date}T${p.time}`;
}

// ------------------------------------------------------------------------------------------------ planner: solve
async function solve() {
  if (!S.problem && S.sampleLoad) {
    const epoch = S.epoch;
    await S.sampleLoad.catch(() => null);
    if (epoch !== S.epoch) return false; // signed out meanwhile: the click was the last session's
  }
  if (!S.problem) { say(() => t("planner.noProblem"), true); return false; }
  if (!S.problem.jobs.length) { say(() => t("planner.noJobs"), true); return false; }
  if (S.busy) return false;
  if (focusBadCell()) return false; // a refused due date or weight in the order table: fixed first, not ignored
  const combo = objectiveChoice();
  if (combo.error) { say(combo.error, true); return false; }
  if (!checkPlanStart(true)) return false; // a plan start half typed: said on its field, nothing sent
  const raw = $("time-limit").value.trim();
  const limit = Math.min(MAX_LIMIT_S, Math.max(1, Math.round(Number(raw)) || 5));
  $("time-limit").value = String(limit);
  // a limit out of range (0, 9999, empty) is solved with another: said beside the field and on the status line
  const note = raw === String(limit) ? null : () => t(raw === "" ? "planner.limitEmpty" : "planner.limitAdjusted", { from: raw, to: limit });
  $("time-limit-note").hidden = !note;
  $("time-limit-note").textContent = note ? note() : "";
  const problem = withPlanStart(S.problem); // with the plan start's clock, where one is set
  const solved = JSON.parse(JSON.stringify(problem)); // the problem as sent: what the plan is drawn against
  const body = { problem, time_limit_s: limit, ...combo.extra, ...S.links };
  if ($("objective").value) body.objective = $("objective").value;
  if (limit > SYNC_LIMIT_S) return runPlan(() => solveAsJob(body, solved), solved);
  return runPlan(async (epoch) => {
    S.job = null;
    S.jobView = null;
    renderJob();
    say(() => (note ? note() + " " : "") + t("planner.solving"));
    const t0 = Date.now();
    let timer = null;
    const tick = () => {
      if (epoch !== S.epoch) { clearInterval(timer); return; } // signed out: the button is the next session's
      $("solve-btn").textContent = t("planner.solvingFor", { elapsed: Math.round((Date.now() - t0) / 1000), limit });
    };
    tick();
    timer = setInterval(tick, 1000);
    try {
      return await api("/v1/scheduling/solve", { method: "POST", body });
    } finally {
      clearInterval(timer);
      if (epoch === S.epoch) $("solve-btn").textContent = t("planner.solve");
    }
  }, solved);
}

// Runs `work(epoch)` (the plan for the orders as they stand, `solved` a copy of them as sent; null: nothing to
// show) with the planner busy meanwhile, then shows the plan. `stale`: the orders had already changed since
// `solved` was sent (a job resumed after a reload). An answer that comes after a sign-out is dropped unseen.
async function runPlan(work, solved, { stale = false } = {}) {
  const epoch = S.epoch;
  const token = {};
  S.busy = token;
  const hadFocus = document.activeElement === $("solve-btn");
  $("solve-btn").disabled = true;
  $("gantt").setAttribute("aria-busy", "true");
  const problem = S.problem;
  const edits = S.edits;
  try {
    const res = await work(epoch);
    if (epoch !== S.epoch || res === null) return false; // signed out while it ran
    if (res === CANCELLED) return false; // the status line says so; the plan before it stays
    if (S.problem !== problem) { say(() => t("planner.stale"), true); return false; }
    if (!res.gantt || !res.gantt.length || res.status === "INFEASIBLE" || res.status === "MODEL_INVALID") {
      // a pin that made the plan impossible is undone (the plan before it stays); only then is that said
      const undone = !!S.lastPinUndo;
      if (undone) S.lastPinUndo();
      // the server's causes (horizon, pins, maintenance deadline, peak cap, time limit), in words
      const noPlan = { status: res.status, reasons: Array.isArray(res.no_plan_reasons) ? res.no_plan_reasons : [], problem: solved };
      // kept for the chart's box while the orders are those they are for (not edited meanwhile, no pin undone)
      S.noPlan = S.edits === edits && !undone ? noPlan : null;
      const line = () => ({ html: [esc(noPlanHeadline(noPlan.status)), undone ? esc(t("planner.pinUndone")) : "",
        noPlan.reasons.length ? `${esc(t("planner.whyNoPlan"))} ${noPlan.reasons.map((r) => reasonHtml(r, noPlan.problem)).join(" · ")}` : ""]
        .filter(Boolean).join(" ") });
      line.detail = noPlan.reasons.map((r) => r.message).join(" · "); // the server's own words, as the tooltip
      say(line, true);
      renderGanttEmpty();
      renderSummary();
      renderPins();
      return false;
    }
    S.result = res;
    S.solved = solved;
    S.noPlan = null;
    S.stale = stale || S.edits !== edits; // orders edited while it ran: the plan is already out of date
    renderStale();
    S.lastPinUndo = null;
    // the view (zoom, pan) is kept across a re-plan, unless the new plan's end falls outside it (gantt.js)
    gantt.render(S.solved, S.result, { keepView: !!$("gantt").querySelector("svg") });
    renderSummary();
    renderPins();
    renderCompare();
    if (S.selected) renderDetails(S.selected);
    const clk = planClock(res); // with a clock, when the plan ends on it too
    say(() => t(clk ? "planner.solvedClock" : "planner.solved", { status: statusName(res.status), makespan: res.makespan,
      end: clk ? clockText(clk, res.makespan) : "", late: tn("count.lateJobs", res.objective_values?.late_jobs ?? 0) }));
    return true;
  } catch (e) {
    if (epoch !== S.epoch) return false;
    if (S.lastPinUndo) { S.lastPinUndo(); renderPins(); }
    say(e, true);
    return false;
  } finally {
    if (epoch === S.epoch) {
      S.lastPinUndo = null;
      S.savedJob = null; // the job, if any, is over: its plan shown, refused, or lost
      persist();
    }
    if (S.busy === token) {
      S.busy = false;
      $("solve-btn").disabled = false;
      $("gantt").removeAttribute("aria-busy");
      // the button had the focus when it was disabled: it gets it back (not left on <body>)
      // (the page not scrolled to it: a plan re-made after a drag on the chart stays in view)
      if (hadFocus && epoch === S.epoch && focusLost()) $("solve-btn").focus({ preventScroll: true });
    }
  }
}

// A solve longer than the synchronous limit: POST /v1/scheduling/jobs, then poll its state (pollJob). The job's id
// is kept in the tab with the orders (persist), so that a reload polls it again (resumeJob).
async function solveAsJob(body, solved) {
  const token = {};
  S.job = token;
  const epoch = S.epoch;
  const job = await api("/v1/scheduling/jobs", { method: "POST", body });
  if (S.job !== token || epoch !== S.epoch) return null;
  const view = { job, id: job.job_id.slice(0, 8), t0: Date.now(), limit: body.time_limit_s, end: null };
  S.jobView = view;
  S.savedJob = { id: job.job_id, limit: view.limit, t0: view.t0, sent: solved };
  persist();
  say(() => t("job.submitted", { id: view.id }));
  return pollJob(view, token, job);
}

// A background job kept in the tab when it was reloaded (or signed out by a refused key): polled again until done.
function resumeJob(saved) {
  if (S.busy) return;
  const token = {};
  S.job = token;
  const limit = Number(saved.limit) || 0;
  const view = { job: { job_id: String(saved.id), status: "queued" }, id: String(saved.id).slice(0, 8),
    t0: Number(saved.t0) || Date.now(), limit, end: null };
  S.jobView = view;
  S.savedJob = { id: String(saved.id), limit, t0: view.t0, sent: saved.sent || JSON.parse(JSON.stringify(S.problem)) };
  persist(); // still kept: another reload polls it again
  renderJob();
  runPlan(() => pollJob(view, token), S.savedJob.sent, { stale: !!saved.sent });
}

// Polls GET /v1/scheduling/jobs/{id} (every 0.4 s at first, backing off to 2 s) with its state on the job line,
// from `job` (the state known) or at once. The plan, or null if the caller signed out meanwhile; a failed job throws.
const CANCELLED = Object.freeze({ cancelled: true }); // pollJob's answer for a cancelled job: no plan, said already

async function pollJob(view, token, job = null) {
  let delay = 400;
  let misses = 0;
  let wait = !!job;
  for (;;) {
    if (S.job !== token) return null;
    if (job) {
      view.job = job;
      if (job.status === "done" || job.status === "failed" || job.status === "cancelled") view.end = Date.now();
      renderJob();
      if (job.status === "cancelled") { // from this console (the Cancel button) or from the API
        const running = /^cancelled while running/.test(job.error || "");
        say(() => t(running ? "job.cancelledRunning" : "job.cancelled", { id: view.id }));
        return CANCELLED;
      }
      if (job.status === "done") return job.result;
      if (job.status === "failed") throw new ApiError(500, () => t("job.failed", { id: view.id }), { detail: job.error || "", showDetail: true });
    }
    if (wait) {
      await sleep(delay);
      delay = Math.min(2000, Math.round(delay * 1.5));
      if (S.job !== token) return null;
    }
    wait = true;
    try {
      job = await api("/v1/scheduling/jobs/" + encodeURIComponent(view.job.job_id));
      misses = 0;
    } catch (e) {
      if (e.ended || S.job !== token) return null; // the key was refused: signed out (the job stays kept for later)
      // a network blip is retried (the job keeps running on the server); an answer such as 404 is final
      if (e.status !== 0 || ++misses > 5) throw new ApiError(e.status, () => t("job.lost", { id: view.id, msg: e.message }), { detail: e.detail });
    }
  }
}

function renderJob() {
  const v = S.jobView;
  const line = $("job-line");
  if (!v) { line.hidden = true; return; }
  const { status } = v.job;
  const elapsed = Math.round(((v.end ?? Date.now()) - v.t0) / 1000);
  const bar = $("job-progress");
  if (status === "queued") bar.removeAttribute("value"); // indeterminate until it starts
  else bar.value = status === "running" ? Math.min(99, (100 * elapsed) / v.limit) : 100;
  const state = t("job.s." + status);
  $("job-text").textContent = v.end ? t("job.finished", { id: v.id, state, elapsed }) : t("job.progress", { id: v.id, state, elapsed, limit: v.limit });
  line.dataset.state = status;
  line.dataset.job = v.job.job_id;
  line.hidden = false;
  $("job-cancel").hidden = !!v.end || !(status === "queued" || status === "running");
}

// The job line's Cancel: DELETE /v1/scheduling/jobs/{id}; the poll then sees the job cancelled and says so.
async function cancelJob() {
  const v = S.jobView;
  if (!v || v.end) return;
  try {
    const had = document.activeElement === $("job-cancel");
    v.job = await api("/v1/scheduling/jobs/" + encodeURIComponent(v.job.job_id), { method: "DELETE" });
    renderJob();
    if (had && $("job-cancel").hidden) $("job-text").focus(); // the button is gone: the job's state, in words
  } catch (e) {
    if (e.status !== 409) say(e, true); // 409: it finished meanwhile; the poll shows its plan
  }
}

function findOp(job, opId, problem = S.problem) {
  const j = problem.jobs.find((x) => String(x.id) === String(job));
  if (!j) return null;
  return j.operations.find((o, i) => String(o.id ?? i) === String(opId)) || null;
}

async function pinOp(row, machine, start) {
  const op = findOp(row.job, row.operation);
  if (!op || S.busy || focusBadCell()) return;
  if (!(machine in op.machines)) {
    const list = Object.keys(op.machines).join(", ");
    say(() => t("planner.notEligible", { op: `${row.job}/${row.operation}`, machine, list }), true);
    return;
  }
  const before = op.pinned;
  op.pinned = { machine, start: Math.max(0, Math.round(start)) };
  S.lastPinUndo = () => { if (before) op.pinned = before; else delete op.pinned; };
  S.selected = { job: row.job, operation: row.operation };
  const pinned = { job: row.job, op: row.operation, machine, start: op.pinned.start };
  say(() => t("planner.pinned", pinned));
  if (!(await solve()) && S.lastPinUndo) { // refused before it was sent (a bad weight, say): the pin is undone too
    S.lastPinUndo();
    S.lastPinUndo = null;
    renderPins();
    persist();
  }
}

async function unpin(job, opId) {
  const op = findOp(job, opId);
  if (!op) return;
  delete op.pinned;
  say(() => t("planner.unpinned", { job, op: opId }));
  forgetNoPlan(); // the orders are not those the reasons were for
  renderPins();
  persist();
  if (S.result) await solve();
}

// Whether the plan `res` (solved for `problem`) has energy terms: the problem had energy settings and the server
// used them (its `linked.energy` is false where the tenant has no energy module). Without a tariff there is no cost.
// Without them the server still answers 0 kW and 0 cost, which would read as measured: shown as "–".
function energyTerms(res, problem) {
  const used = problem?.energy != null && res?.linked?.energy !== false;
  return { peak: used, cost: used && Array.isArray(problem.energy.prices) && problem.energy.prices.length > 0 };
}

function metricsOf(res, problem) {
  const v = res?.objective_values || {};
  const energy = energyTerms(res, problem);
  return [
    ["m.makespan", v.makespan ?? res?.makespan, 0, "lower"],
    ["m.totalTardiness", v.total_tardiness, 0, "lower"],
    ["m.weightedTardiness", v.weighted_tardiness, 1, "lower"],
    ["m.lateJobs", v.late_jobs, 0, "lower"],
    ["m.energyCost", energy.cost ? v.energy_cost : null, 0, "lower"],
    ["m.peak", energy.peak ? v.peak_kw : null, 1, "lower"],
  ];
}

const objectiveName = (o) => (o ? t("obj." + o) : "–");
const statusName = (s) => (s == null ? "–" : label("st", s));

function renderObjectiveHelp() {
  const o = $("objective").value;
  $("objective-help").textContent = t("objhelp." + (o || "auto"));
  $("objective-weights").hidden = o !== "weighted";
  $("objective-order").hidden = o !== "lex";
}

// The planner's weights (objective "weighted") or priority order (objective "lex") for the request
function objectiveChoice() {
  const o = $("objective").value;
  if (o === "weighted") {
    const weights = {};
    for (const term of ["tardiness", "makespan", "energy"]) {
      const w = Number($("w-" + term).value);
      if (!Number.isFinite(w) || w < 0 || $("w-" + term).value === "") return { error: () => t("obj.badWeight", { term: t("obj." + term) }) };
      weights[term] = w;
    }
    if (!Object.values(weights).some((w) => w > 0)) return { error: () => t("obj.noWeight") };
    return { extra: { weights } };
  }
  if (o === "lex") {
    const order = ["lex-1", "lex-2", "lex-3"].map((id) => $(id).value).filter(Boolean);
    if (new Set(order).size !== order.length) return { error: () => t("obj.repeated") };
    return { extra: { order } };
  }
  return { extra: {} };
}

// What to do before there is a plan to keep or export: run the scheduler, or first load orders; after a solve that
// gave no plan, that it gave none.
const noPlanKey = () => (S.problem?.jobs.length ? "planner.notSolved" : "planner.noProblem");
const noPlanYet = () => t(noPlanKey());
const sayNoPlan = () => {
  const status = S.noPlan && S.problem?.jobs.length ? S.noPlan.status : null;
  const key = noPlanKey();
  say(() => (status ? t("planner.noPlanSummary", { status: statusName(status) }) : t(key)), true);
};

// The orders changed after the last solve: the chart and summary show a plan for the old orders until the next one;
// the reasons of a solve that gave no plan are for the old orders too, and go.
function markStale() {
  S.edits += 1;
  if (S.result) {
    S.stale = true;
    renderStale();
  }
  forgetNoPlan();
  persist();
}

function forgetNoPlan() {
  if (!S.noPlan) return;
  S.noPlan = null;
  renderGanttEmpty();
  renderSummary();
}

function renderStale() {
  const stale = !!(S.result && S.stale);
  $("plan-stale").hidden = !stale;
  $("gantt").classList.toggle("stale", stale);
  $("plan-summary").classList.toggle("stale", stale);
  dashScheduling(); // the dashboard's card, where it is drawn, says the same
}

// Until there is a plan the chart's box says what to do, not nothing; after a solve that gave no plan, that there is
// none for these orders and why.
function renderGanttEmpty() {
  if (S.result) return;
  const np = S.noPlan;
  if (np && S.problem?.jobs.length) {
    $("gantt").innerHTML = `<div class="gantt-empty gantt-noplan" id="gantt-noplan" data-status="${esc(np.status)}">` +
      `<p class="noplan-head">${esc(noPlanHeadline(np.status))}</p>` +
      (np.reasons.length ? `<ul id="no-plan-reasons">${np.reasons.map((r) => `<li data-type="${esc(r.type)}" title="${esc(r.message)}">` +
        `${reasonHtml(r, np.problem)}</li>`).join("")}</ul>` : "") +
      `<p class="muted">${esc(t("planner.noPlanHint"))}</p></div>`;
    return;
  }
  $("gantt").innerHTML = S.problem?.jobs.length ? `<p class="muted gantt-empty">${esc(t("planner.notSolved"))}</p>` : "";
}

// ------------------------------------------------------------------------------------------------ planner: why no plan
// An answer without a plan carries the server's causes, `no_plan_reasons` (optimization/diagnose.py): each a
// `type` and an English `message`, with fields by type (horizon: `needs`, `horizon`, `jobs`; a rule whose removal
// gives a plan: `relaxation`, `makespan`). They are put in words here from those fields, from the server's text
// where a value is only there (a relaxed rule's value, a pin clash, the solver's own notes) and from the problem as
// sent. What the console cannot word (a type it does not know, a detail of the solver's) is shown as the server
// wrote it, marked as English, as an error's detail is; the server's text is each reason's tooltip.
const noPlanHeadline = (status) => t(status === "INFEASIBLE" || status === "MODEL_INVALID" ? "planner.infeasible" : "planner.noPlanFound",
  { status: statusName(status) });

// The hard rules a relaxation drops (diagnose.py's _relaxations): [type, their text in the server's message, the
// rule in words from that text's match (null: not in the text) and the problem as sent, or null without a value].
const withValue = (v, words) => (v === null || v === undefined ? null : words(v));
const NO_PLAN_RULES = [
  ["horizon", /\bthe horizon (-?\d+)/, (m, p) => withValue(m?.[1] ?? p?.horizon, (v) => t("reason.rule.horizon", { horizon: v }))],
  // "the pinned and started operations' times", "the 7 pinned operations' times", "the pinned operation's time
  // (job 'A' operation 'a' pinned on M1 at t=80)"
  ["pinned", /\bthe (?:(\d+) )?pinned(?: and started)? operation(?:s'|'s) times?(?: \((.*?)\)(?= there is a plan| is the cause|$))?/,
    (m) => pinnedRule(m)],
  ["maintenance_deadline", /\bthe maintenance deadline (-?\d+)/,
    (m, p) => withValue(m?.[1] ?? p?.failure_risk?.deadline, (v) => t("reason.rule.maintenanceDeadline", { deadline: v }))],
  ["maintenance_crews", /\bthe limit of (\d+) maintenance crews? at once/,
    (m, p) => withValue(m?.[1] ?? p?.failure_risk?.crews, (v) => tn("reason.rule.crews", Number(v)))],
  ["service_first", /\bservicing the risky machines before their work/, () => t("reason.rule.serviceFirst")],
  ["peak_power", /\bthe peak power cap of (-?[\d.]+(?:e[+-]?\d+)?) kW/,
    (m, p) => withValue(m?.[1] ?? p?.energy?.peak_cap_kw, (v) => t("reason.rule.peakPower", { cap: v }))],
];

// The rule `kind` (or, with none, the one `text` names) in words with its value; null where there is no value.
function ruleWords(kind, text, problem) {
  for (const [k, re, words] of NO_PLAN_RULES) {
    const found = text.match(re);
    if (kind ? k !== kind : !found) continue;
    return words(found, problem);
  }
  return null;
}

// The pins a relaxation dropped: how many, or which (where they are few), else only that they are the pins.
function pinnedRule(m) {
  if (m?.[1]) return t("reason.rule.pinnedCount", { n: m[1] });
  const pins = m?.[2] ? pinList(m[2]) : null;
  return pins ? t("reason.rule.pinnedNamed", { pins }) : t("reason.rule.pinned");
}

// "job 'A' operation 'a' pinned on M1 at t=80; job 'B' ... started (already running) on M2 since t=-10" in words
const PLACED = /job (['"])(.*?)\1 operation (['"])(.*?)\3 (?:pinned on (.+?) at t=(-?\d+)|started \(already running\) on (.+?) since t=(-?\d+))/g;
function pinList(text) {
  const out = [...text.matchAll(PLACED)].map((m) => (m[5] !== undefined
    ? t("reason.pinAt", { op: `${m[2]}/${m[4]}`, machine: m[5], at: m[6] })
    : t("reason.startedAt", { op: `${m[2]}/${m[4]}`, machine: m[7], at: m[8] })));
  return out.length ? out.join("; ") : null;
}

// Where a pinned or started operation is, as diagnose.py's _placed says it ("is pinned on M1 at t=80", "is started
// (already running) on M1 since t=-10"); null where the text does not say.
function placedAt(msg) {
  const m = msg.match(/ is (?:pinned on (.+?) at t=(-?\d+)|started \(already running\) on (.+?) since t=(-?\d+))/);
  if (!m) return null;
  return m[1] !== undefined ? { started: false, machine: m[1], at: m[2] } : { started: true, machine: m[3], at: m[4] };
}

// A pinned or started operation over a calendar entry (fields job, operation, machine, calendar), with what to do.
function calendarClashWords(r, msg) {
  const p = placedAt(msg);
  const until = msg.match(/ runs until t=(-?\d+)/)?.[1];
  const c = r.calendar;
  if (!p || until === undefined || c.start === undefined || c.end === undefined) return null;
  const vars = { op: `${r.job}/${r.operation}`, machine: r.machine ?? p.machine, start: p.at, end: until,
    kind: label("kind", c.kind), from: c.start, to: c.end };
  if (!p.started) return { text: t("reason.cal.pinned", vars) + (c.kind === "break" ? " " + t("reason.cal.pinnedBreak") : "") };
  return { text: t(c.kind === "break" ? "reason.cal.startedBreak" : "reason.cal.started", vars) };
}

// A proof (diagnose.py's _power_room): an operation finds no stretch long enough under the peak power cap once the
// base load is added, after its job's release; the last base load, which stands for every time after, leaves none.
function powerRoomWords(r, msg) {
  const op = `${r.job}/${r.operation}`;
  const num = "(-?[\\d.]+(?:e[+-]?\\d+)?)";
  const m = msg.match(new RegExp(`\\(${num} kW for (\\d+) time units at the least\\) fits under the peak power cap of ${num} kW nowhere: ` +
    `with the base load, the cap leaves it (?:stretches of at most (\\d+) time units|no stretch at all) after the job's release \\(t=(-?\\d+)\\)` +
    `(?:, and the last base load \\(${num} kW, from t=(-?\\d+) on\\) leaves it none)?`));
  const cap = r.peak_cap_kw ?? m?.[3];
  if (!m) return { text: t("reason.powerRoomAny", { op, cap }), detail: msg };
  const room = m[4] ? t("reason.powerRoomLongest", { n: m[4] }) : t("reason.powerRoomNone");
  const last = m[6] !== undefined ? " " + t("reason.powerRoomLast", { kw: m[6], from: m[7] }) : "";
  return { text: t("reason.powerRoom", { op, kw: m[1], d: m[2], cap, room, release: m[5] }) + last };
}

// A pin (or a started operation) before the work that must come first can end (fields job, operation, start,
// earliest), with that work: "job 'A' is released at t=10, then operation 'a' takes 50; ..." in words.
function earlyPinWords(r, msg) {
  const p = placedAt(msg);
  if (!p) return null;
  const text = t(p.started ? "reason.early.started" : "reason.early.pinned",
    { op: `${r.job}/${r.operation}`, machine: p.machine, start: p.at, earliest: r.earliest });
  const chain = msg.match(/ before t=-?\d+: (.+?)\. (?:Pin it|If that work)/)?.[1];
  if (!chain) return { text };
  const words = chainWords(chain, r.job);
  return words ? { text: `${text} ${t("reason.early.chain", { chain: words })}` } : { text, detail: chain };
}

function chainWords(chain, job) {
  const cut = chain.indexOf(", then ");
  if (cut < 0) return null;
  const head = chain.slice(0, cut);
  let origin = null;
  let m = head.match(/^job (['"])(.*?)\1 is released at t=(-?\d+)$/);
  if (m) origin = t("reason.chain.release", { job: m[2], at: m[3] });
  m = head.match(/^job (['"])(.*?)\1 operation (['"])(.*?)\3 is /);
  const p = m && placedAt(head);
  if (p) origin = t(p.started ? "reason.chain.started" : "reason.chain.pinned", { op: `${m[2]}/${m[4]}`, machine: p.machine, at: p.at });
  if (!origin) return null;
  const steps = chain.slice(cut + 7).split("; ").map((step) => {
    if ((m = step.match(/^\.\.\. \((\d+) more\)$/))) return t("reason.chain.more", { n: m[1] });
    m = step.match(/^(?:job (['"])(.*?)\1 )?operation (['"])(.*?)\3 takes (\d+)( \(on its fastest machine\))?(?:, ending at t=(-?\d+) after its machines' downtimes)?(?:, then a lag of (\d+))?$/);
    if (!m) return null;
    return t("reason.chain.step", { op: `${m[2] ?? job}/${m[4]}`, d: m[5], fastest: m[6] ? t("reason.chain.fastest") : "",
      lag: (m[7] ? t("reason.chain.down", { end: m[7] }) : "") + (m[8] ? t("reason.chain.lag", { lag: m[8] }) : "") });
  });
  return steps.every(Boolean) ? [origin, ...steps].join(" → ") : null;
}

// A rule the pinned operations break among themselves (optimization/check.py's Violation, "kind: message").
function violationWords(v) {
  const op = (job, o) => `${job}/${o}`;
  let m = v.match(/^overlap: machine (.+?): job (.+?) op (.+?) \[(-?\d+),(-?\d+)\) overlaps job (.+?) op (.+?) \[(-?\d+),(-?\d+)\)$/);
  if (m) return t("reason.v.overlap", { machine: m[1], a: op(m[2], m[3]), aStart: m[4], aEnd: m[5], b: op(m[6], m[7]), bStart: m[8], bEnd: m[9] });
  m = v.match(/^(?:calendar|maintenance): job (.+?) op (.+?) \[(-?\d+),(-?\d+)\) on (.+?) overlaps (\w+) \[(-?\d+),(-?\d+)\)$/);
  if (m) return t("reason.v.downtime", { op: op(m[1], m[2]), start: m[3], end: m[4], machine: m[5], kind: label("kind", m[6]), from: m[7], to: m[8] });
  m = v.match(/^precedence: job (.+?) op (.+?) starts at (-?\d+) before job (.+?) op (.+?) ends at (-?\d+) \(\+lag (-?\d+)\)$/);
  if (m) return t("reason.v.precedence", { op: op(m[1], m[2]), start: m[3], before: op(m[4], m[5]), end: m[6], lag: Number(m[7]) ? ` + ${m[7]}` : "" });
  m = v.match(/^horizon: job (.+?) op (.+?) ends at (-?\d+) after horizon (-?\d+)$/);
  if (m) return t("reason.v.horizon", { op: op(m[1], m[2]), end: m[3], horizon: m[4] });
  m = v.match(/^release: job (.+?) op (.+?) starts at (-?\d+) before release (-?\d+)$/);
  if (m) return t("reason.v.release", { op: op(m[1], m[2]), start: m[3], release: m[4] });
  m = v.match(/^peak_power: power (-?[\d.]+) kW at t=(-?\d+) exceeds cap (-?[\d.]+(?:e[+-]?\d+)?) kW$/);
  if (m) return t("reason.v.peakPower", { kw: m[1], at: m[2], cap: m[3] });
  return null;
}

// Why the dispatching rules gave no plan (optimization/heuristics.py), in words; null where the note is unknown.
function dispatchWords(d) {
  let m = d.match(/^peak power cap too low: an operation of (-?[\d.]+(?:e[+-]?\d+)?) kW never fits under (-?[\d.]+(?:e[+-]?\d+)?) kW with the base load after t=(-?\d+)$/);
  if (m) return t("reason.d.peakCap", { kw: m[1], cap: m[2], at: m[3] });
  if (/^no dispatching rule produced a plan$/.test(d)) return t("reason.d.none");
  if (/^dispatching could not place every operation\b/.test(d)) return t("reason.d.unplaced");
  m = d.match(/^dispatching rule .+? (?:did not finish its plan of|placed \d+ of) ([\d,]+) operations within the time limit$/);
  if (m) return t("reason.d.timeout", { n: m[1] });
  return null;
}

// Why the CP-SAT model was not built (optimization/builder.py's ModelTooLarge), in words; null where unknown.
function modelWords(text) {
  let m = text.match(/^the CP-SAT model of ([\d,]+) operations could not be built within the time limit$/);
  if (m) return t("reason.m.build", { n: m[1] });
  m = text.match(/^the setups of ([\d,]+) operations would take about (\d+) s to build into the CP-SAT model, past the time limit$/);
  if (m) return t("reason.m.setups", { n: m[1], s: m[2] });
  m = text.match(/^the energy cost tables would hold ([\d,]+) entries \(at most ([\d,]+) in this time limit\)/);
  if (m) return t("reason.m.energyTables", { n: m[1], max: m[2] });
  m = text.match(/^energy cost of operation (.+) too large for the model \(([\d,]+) cents\)$/);
  if (m) return t("reason.m.energyCost", { op: m[1] });
  return null;
}

// One no-plan reason in words: { text, detail }, `detail` the server's English for a part the console cannot word;
// null where it cannot word the reason at all (an unknown type, or fields missing).
function reasonWords(r, problem) {
  const msg = String(r?.message ?? "");
  switch (r?.type) {
    case "horizon": case "pinned": case "maintenance_deadline": case "peak_power": case "service_first": case "maintenance_crews": {
      if (r.relaxation || r.makespan !== undefined) { // without this rule there is a plan
        const rule = ruleWords(r.relaxation || r.type, msg, problem);
        return rule && r.makespan !== null && r.makespan !== undefined ? { text: t("reason.without", { rule, makespan: r.makespan }) } : null;
      }
      if (r.machine && r.needs !== undefined && r.needs !== null) { // a risky machine's window ends too late
        // the crews on other machines' windows until then (failure_risk.crews): said after the reason
        const crews = Number.isInteger(r.crews) ? " " + tn("reason.crewsBusy", r.crews) : "";
        if (r.type === "horizon" && r.horizon !== undefined && r.horizon !== null)
          return { text: t("reason.windowHorizon", { machine: r.machine, needs: r.needs, horizon: r.horizon }) + crews };
        if (r.type === "maintenance_deadline" && r.deadline !== undefined && r.deadline !== null)
          return { text: t("reason.windowDeadline", { machine: r.machine, needs: r.needs, deadline: r.deadline }) + crews };
      }
      if (r.type === "horizon") { // a proof: a job, or the work as a whole, cannot end by the horizon
        if (r.needs === undefined || r.needs === null || r.horizon === undefined || r.horizon === null) return null;
        if (!Array.isArray(r.jobs) || !r.jobs.length) return { text: t("reason.horizonLoad", { needs: r.needs, horizon: r.horizon }) };
        const more = Number(msg.match(/\((\d+) more jobs? cannot either\)/)?.[1] ?? r.jobs.length - 1); // jobs lists 50 at most
        return { text: t("reason.horizonJob", { job: r.jobs[0], horizon: r.horizon, needs: r.needs }) + (more > 0 ? " " + tn("reason.moreJobs", more) : "") };
      }
      if (r.type === "pinned") { // a proof: the pins alone break a rule
        if (r.calendar && typeof r.calendar === "object") return calendarClashWords(r, msg);
        if (r.earliest !== undefined && r.earliest !== null) return earlyPinWords(r, msg);
        const m = msg.match(/^the (pinned or started|pinned) operations alone break a rule: ([\s\S]*)$/);
        if (!m) return null;
        const who = t(m[1] === "pinned" ? "reason.pins" : "reason.pinsStarted");
        const rule = violationWords(m[2]);
        return rule ? { text: t("reason.pinClash", { who, rule }) } : { text: t("reason.pinClashAny", { who }), detail: m[2] };
      }
      if (r.type === "peak_power" && r.job !== undefined && r.operation !== undefined) return powerRoomWords(r, msg);
      return null;
    }
    case "unchecked": { // no time was left to check a rule, or the solve was stopped (a job cancelled) before it did
      const m = msg.match(/^(no time was left to check|the solve was stopped before it checked) whether (.+) is the cause$/);
      const rule = m && ruleWords(null, m[2], problem);
      return rule ? { text: t(m[1].startsWith("the solve") ? "reason.uncheckedStopped" : "reason.unchecked", { rule }) } : null;
    }
    case "dispatch": {
      const d = msg.replace(/^the dispatching rules found no plan: /, "");
      const why = dispatchWords(d);
      return why ? { text: t("reason.dispatch", { why }) } : { text: t("reason.dispatchAny"), detail: d };
    }
    case "model_too_large": {
      const words = modelWords(msg);
      return words ? { text: words } : { text: t("reason.modelTooLargeAny"), detail: msg };
    }
    case "time_limit": return { text: t("reason.timeLimit") };
    case "stopped": return { text: t("reason.stopped") }; // the solve was stopped (its job cancelled) before a plan
    case "combination": return { text: t(/^no single rule\b/.test(msg) ? "reason.combination" : "reason.noRules") };
    default: return null;
  }
}

// One no-plan reason as HTML: in words, with what is left as the server wrote it marked as English (in English the
// server's message itself stands in for a reason, or a part, the console cannot word).
function reasonHtml(r, problem) {
  const w = reasonWords(r, problem);
  const english = (text) => `<span class="reason-en">${esc(t("err.detail"))} <span lang="en">${esc(text)}</span></span>`;
  if (!w) return LANG === "en" ? esc(r?.message ?? r?.type ?? "") : english(String(r?.message ?? r?.type ?? ""));
  if (!w.detail) return esc(w.text);
  return LANG === "en" ? esc(r.message) : `${esc(w.text)} ${english(w.detail)}`;
}

function renderSummary() {
  renderPlanTable();
  const el = $("plan-summary");
  if (!S.result && S.noPlan) { el.innerHTML = `<p class="muted" id="no-plan-summary">${esc(t("planner.noPlanSummary", { status: statusName(S.noPlan.status) }))}</p>`; return; }
  if (!S.result) { el.innerHTML = `<p class="muted">${esc(noPlanYet())}</p>`; return; }
  const m = metricsOf(S.result, S.solved);
  el.innerHTML = `<div class="metrics">` +
    `<div class="metric"><span>${t("m.status")}</span><b id="sum-status" data-status="${esc(S.result.status)}" title="${esc(S.result.status)}">${esc(statusName(S.result.status))}</b></div>` +
    `<div class="metric"><span>${t("m.objective")}</span><b id="sum-objective" data-objective="${esc(S.result.objective)}">${esc(objectiveName(S.result.objective))}</b></div>` +
    m.map(([k, v, d]) => `<div class="metric"><span>${t(k)}</span><b data-metric="${k}"${v == null ? ` title="${esc(t("m.noEnergy"))}"` : ""}>${fmt(v, d)}</b></div>`).join("") +
    clockMetrics(S.result).map(([k, v, id]) => `<div class="metric"><span>${t(k)}</span><b id="${id}" class="clock-metric">${esc(v)}</b></div>`).join("") +
    `<div class="metric"><span>${t("m.wall")}</span><b>${fmt(S.result.wall_s, 2)}</b></div></div>` +
    (S.result.linked?.ignored?.length ? `<p class="muted" id="plan-ignored">${S.result.linked.ignored.map(linkedNote).join(" ")}</p>` : "") +
    (Array.isArray(S.result.notes) && S.result.notes.length ? `<p class="muted" id="plan-notes">${S.result.notes.map(planNote).filter(Boolean).join(" ")}</p>` : "");
}

// The plan as a table (the chart's text alternative): one row per operation, in machine and time order, late and
// pinned in words. Shown under the chart by its "table view" button.
function renderPlanTable() {
  const open = !$("gantt-table-wrap").hidden;
  const btn = $("gantt-table-toggle");
  btn.textContent = t(open ? "gantt.tableHide" : "gantt.tableShow");
  btn.setAttribute("aria-expanded", String(open));
  if (!S.result) { $("gantt-table").innerHTML = ""; return; }
  const late = lateJobIds(S.result);
  const machines = [...new Set(S.result.gantt.map((r) => r.machine))];
  const rows = S.result.gantt.filter((r) => r.job != null)
    .sort((a, b) => machines.indexOf(a.machine) - machines.indexOf(b.machine) || a.start - b.start);
  const yes = esc(t("gantt.yes"));
  const clk = planClock(S.result); // with a clock: start and end on it, the caption naming its start
  const time = (v) => (clk ? esc(clockText(clk, v)) : v);
  const caption = clk ? t("gantt.tableCaptionClock", { start: clockText(clk, 0) }) : t("gantt.tableCaption");
  $("gantt-table").innerHTML = `<caption>${esc(caption)}</caption><thead><tr>` +
    ["col.machine", "col.job", "col.operation", "col.start", "col.end", "col.setup", "col.late", "col.pinned"]
      .map((k, i) => `<th scope="col"${i >= 3 && i <= 5 ? ' class="num"' : ""}>${esc(t(k))}</th>`).join("") + `</tr></thead><tbody>` +
    rows.map((r) => {
      const op = findOp(r.job, r.operation, S.solved);
      return `<tr data-job="${esc(r.job)}" data-op="${esc(r.operation)}"><td>${esc(r.machine)}</td><th scope="row">${esc(r.job)}</th><td>${esc(r.operation)}</td>` +
        `<td class="num">${time(r.start)}</td><td class="num">${time(r.end)}</td><td class="num">${r.setup || ""}</td>` +
        `<td class="late-tag">${late.has(String(r.job)) ? yes : ""}</td><td>${op && (op.pinned || op.started) ? yes : ""}</td></tr>`;
    }).join("") + "</tbody>";
}

// What the server noticed in the problem (valid, but likely a slip: a setup family no operation has), in words
// (HTML); a note it does not know stays as the server wrote it, marked as English.
function planNote(n) {
  const fams = Array.isArray(n?.families) ? n.families.map(String).join(", ") : "";
  if (n?.type === "setup_family_unused") return esc(t("note.setupUnused", { families: fams }));
  if (n?.type === "setup_family_missing") return esc(t("note.setupMissing", { families: fams }));
  if (n?.type === "needs_module") { // what was left out is said beside the plan (linkedNote); a peak cap, plainly
    const cap = n.module === "energy" && Array.isArray(n.fields) && n.fields.includes("energy.peak_cap_kw") ? S.problem?.energy?.peak_cap_kw : null;
    return finite(cap) ? esc(t("note.needsModuleCap", { cap: fmt(cap, 2) })) : "";
  }
  if (n?.type === "started_in_future" && Array.isArray(n.operations) && n.operations.length) {
    const o = n.operations[0];
    return esc(t("note.startedFuture", { job: o.job, operation: o.operation, start: o.start }));
  }
  return `<span lang="en">${esc(n?.message ?? String(n))}</span>`;
}

// What the server left out of the plan for want of a partner module's subscription, in words (HTML); a note it
// does not know stays as the server wrote it, marked as English.
function linkedNote(note) {
  let m = String(note).match(/^(\w+) \(needs the '(\w+)' module\)$/);
  if (m) return esc(t("linked.ignored", { what: label("linked", m[1]), key: m[1], module: label("mod", m[2]) }));
  m = String(note).match(/^objective '(\w+)' \(needs the '(\w+)' module\): solved for the default objective '(\w+)' instead$/);
  if (m) return esc(t("linked.fallback", { objective: objectiveName(m[1]), module: label("mod", m[2]), used: objectiveName(m[3]) }));
  return `<span lang="en">${esc(note)}</span>`;
}

function renderPins() {
  const ul = $("pins");
  const pins = [];
  for (const j of S.problem?.jobs || []) j.operations.forEach((o, i) => { if (o.pinned) pins.push([j.id, o.id ?? String(i), o.pinned]); });
  if (!pins.length) { ul.innerHTML = `<li class="muted">${esc(t("planner.noPins"))}</li>`; return; }
  const clk = fieldClock(); // a pin's start on the plan start's clock too
  ul.innerHTML = pins.map(([j, o, p]) => `<li data-pin="${esc(j)}/${esc(o)}">${esc(j)} / ${esc(o)} → ${esc(p.machine)} @ ${esc(p.start)}` +
    `${clk && finite(p.start) ? ` (${esc(clockText(clk, p.start))})` : ""} ` +
    `<button type="button" class="secondary" data-unpin-job="${esc(j)}" data-unpin-op="${esc(o)}">${esc(t("planner.unpin"))} ${esc(j)}/${esc(o)}</button></li>`).join("");
  ul.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => unpin(b.dataset.unpinJob, b.dataset.unpinOp)));
}

// a binding constraint in words; with the plan's clock `clk`, its times (start, end, release) on it
function why(r, clk = null) {
  const vars = { ...r, lag: r.lag ? ` + ${r.lag}` : "", kind: r.kind ? t("kind." + r.kind) : r.kind };
  if (clk) for (const k of ["start", "end", "release"]) if (finite(r[k])) vars[k] = clockText(clk, r[k]);
  if (clk && finite(r.start) && finite(r.end)) Object.assign(vars, clockSpan(clk, r.start, r.end)); // a downtime: the end's date once
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
  // with the plan's clock: times on it (the operation's minutes too, as a pin's start is given), a tardiness in minutes
  const clk = planClock(S.result);
  const at = (v) => (clk && finite(v) ? clockText(clk, v) : v);
  const minutes = (v) => (clk && finite(v) ? t("unit.min", { n: fmt(v * clk.mpu, 2) }) : v);
  const when = clk ? `${clockRange(clk, row.start, row.end)} (${t("details.units", { start: row.start, end: row.end })})` : `${row.start}–${row.end}`;
  let html = `<p><b>${esc(row.job)} / ${esc(row.operation)}</b> · ${esc(row.machine)} · <span id="details-when">${esc(when)}</span>` +
    (row.setup ? ` · ${t("col.setup")} ${row.setup}` : "") + (op.pinned ? ` · <b class="pinned-tag">${esc(t("legend.pinned"))}</b>` : "") + `</p>`;
  if (late) {
    html += `<div id="late-explanation"><h3 class="late-tag">${esc(t("details.whyLate", { job: late.job }))}</h3>` +
      `<p id="late-summary">${esc(t("details.lateSummary", { due: at(late.due), end: at(late.end), tardiness: minutes(late.tardiness), weight: late.weight, bottleneck: late.bottleneck_machine }))}</p>` +
      `<h3>${esc(t("details.chain"))}</h3><ol class="chain">` +
      late.critical_chain.map((c) => `<li><b>${esc(c.job)}/${esc(c.operation)}</b> ${esc(c.machine)} ${esc(clk ? clockRange(clk, c.start, c.end) : `${c.start}–${c.end}`)}: ` +
        `${c.binding.map((b) => esc(why(b, clk))).join("; ")}</li>`).join("") + `</ol>` +
      (late.blocking_operations.length ? `<p>${esc(t("details.blocking"))}: ${late.blocking_operations.map((b) => esc(`${b.job}/${b.operation}`)).join(", ")}</p>` : "") +
      `</div>`;
  } else if (lateJobIds(S.result).has(String(s.job))) {
    // late, but past the explained ones (the server explains the 50 latest): said, not "on time"
    const job = S.problem.jobs.find((j) => String(j.id) === String(s.job));
    const end = Math.max(...S.result.gantt.filter((r) => String(r.job) === String(s.job)).map((r) => r.end));
    html += `<p class="late-tag">${esc(t("details.lateUnexplained", { due: at(job?.due ?? "–"), end: at(end), tardiness: finite(job?.due) ? minutes(end - job.due) : "–" }))}</p>`;
  } else {
    html += `<p class="muted">${esc(t("details.notLate"))}</p>`;
  }
  html += `<form id="pin-form" class="toolbar" novalidate><label for="pin-machine">${esc(t("details.pinMachine"))}</label>` +
    `<select id="pin-machine">${Object.keys(op.machines).map((m) => `<option${m === row.machine ? " selected" : ""}>${esc(m)}</option>`).join("")}</select>` +
    `<label for="pin-start">${esc(t("details.pinStart"))}</label><input id="pin-start" type="number" min="0" step="1" value="${row.start}" style="width:90px" ` +
    // with a plan start: the minute typed on its clock, beside the field and describing it
    `aria-describedby="${fieldClock() ? "pin-start-clock " : ""}pin-start-error">` + (fieldClock() ? `<span id="pin-start-clock" class="clock-hint"></span>` : "") +
    `<span id="pin-start-error" class="field-error" hidden></span>` +
    `<button type="submit" id="pin-submit">${esc(t("details.pinHere"))}</button>` +
    (op.pinned ? `<button type="button" class="secondary" id="pin-clear">${esc(t("planner.unpin"))}</button>` : "") + `</form>`;
  // re-drawn (a re-plan after "pin here"): the control that had the focus has it again, not <body>
  const focused = el.contains(document.activeElement) ? document.activeElement.id : null;
  el.innerHTML = html;
  if (focused) ($(focused) || $("pin-submit")).focus();
  pinStartHint();
  $("pin-start").addEventListener("input", pinStartHint);
  $("pin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const start = $("pin-start").value.trim();
    if (start === "" || !Number.isInteger(Number(start)) || Number(start) < 0) {
      // the console's own words (the form is novalidate: not the browser's bubble), tied to the field
      say(() => t("details.pinStartBad"), true);
      $("pin-start-error").textContent = t("details.pinStartBad");
      $("pin-start-error").hidden = false;
      $("pin-start").setAttribute("aria-invalid", "true");
      $("pin-start").focus();
      return;
    }
    pinOp(row, $("pin-machine").value, Number(start));
  });
  if (op.pinned) $("pin-clear").addEventListener("click", () => unpin(row.job, row.operation));
}

// ------------------------------------------------------------------------------------------------ what-if, export
function keepCopy() {
  if (!S.result) { sayNoPlan(); return; }
  S.copy = { problem: JSON.parse(JSON.stringify(S.solved)), result: JSON.parse(JSON.stringify(S.result)) };
  $("clear-copy").hidden = false;
  renderCompare();
  persist();
  say(() => t("planner.copyKept"));
}

function renderCompare() {
  const body = $("compare-body");
  if (!S.copy || !S.result) {
    body.innerHTML = `<p class="muted">${esc(t("compare.none"))}</p>`;
    $("compare-gantts").hidden = true;
    return;
  }
  const a = metricsOf(S.copy.result, S.copy.problem);
  const b = metricsOf(S.result, S.solved);
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
  currentGantt.render(S.solved, S.result);
}

// One line per bar. `late` is the server's (true on the last operation of a late job: where the job ends late);
// `job_late` is true on every operation of a late job, as the chart marks them (gantt.js lateJobIds): the column to
// filter a late job's operations by.
// A text cell as a spreadsheet should show it: one starting like a formula (=, +, -, @, a tab or CR) gets a leading
// single quote (an order named "=HYPERLINK(...)" ran in the planner's spreadsheet); quoted where it holds a comma,
// a quote or a line break. Numbers are written as they are (a started operation's negative start is a number).
function csvCell(c, text) {
  let v = String(c);
  if (text && /^[=+\-@\t\r]/.test(v)) v = "'" + v;
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function exportCsv() {
  if (!S.result) { sayNoPlan(); return; }
  // started / started_at: an operation already running (its row begins at 0, its real start before that);
  // setup_start: where the changeover before it begins (it may lie before a break); due and family from the orders
  const head = ["machine", "job", "operation", "start", "end", "setup", "late", "pinned", "job_late", "started", "started_at", "reason",
    "setup_start", "due", "family"];
  const text = new Set(["machine", "job", "operation", "reason", "family"]);
  const clk = planClock(S.result); // with a clock: each row's start and end on it (ISO 8601, as the API gives them)
  if (clk) head.push("start_time", "end_time");
  const lines = [head.join(",")];
  const late = lateJobIds(S.result);
  for (const r of S.result.gantt) {
    const op = r.job == null ? null : findOp(r.job, r.operation, S.solved);
    const job = r.job == null ? null : S.solved.jobs.find((j) => String(j.id) === String(r.job));
    const cells = [r.machine, r.job ?? "", r.operation, r.start, r.end, r.setup, !!r.late, !!(op && op.pinned), r.job != null && late.has(String(r.job)),
      !!(op && op.started), r.started_at ?? (op && op.started ? op.started.start : ""), r.reason ?? "",
      r.setup ? (r.setup_start ?? "") : "", job?.due ?? "", op?.family ?? ""];
    if (clk) cells.push(typeof r.clock?.start === "string" ? r.clock.start : clockIso(clk, r.start), typeof r.clock?.end === "string" ? r.clock.end : clockIso(clk, r.end));
    lines.push(cells.map((c, i) => csvCell(c, text.has(head[i]))).join(","));
  }
  const name = `sfai-plan-${planName()}.csv`;
  // with a byte-order mark: Excel reads a CSV without one in the system's code page, and Korean names came out garbled
  download(name, new Blob(["\ufeff" + lines.join("\n") + "\n"], { type: "text/csv;charset=utf-8" }));
  sayExported(name);
}

// An export is of the last plan solved; while the orders have changed since, its file name ends in "-outdated", the
// PDF page says so and so does the status line.
const planName = () => (S.solved?.name || "plan") + (S.stale ? "-outdated" : "");
const sayExported = (file) => { const key = S.stale ? "planner.exportedStale" : "planner.exported"; say(() => t(key, { file })); };

async function exportPng() {
  const svg = gantt.svg();
  if (!svg) { sayNoPlan(); return; }
  try {
    const url = await svgToPng(svg);
    const name = `sfai-gantt-${planName()}.png`;
    download(name, url);
    sayExported(name);
  } catch (e) { say(e, true); }
}

// The PDF's legend: [key, fill, stroke, line width, hatching]; setups and maintenance are hatched as the chart draws
// them (gantt.js: stripes at 45 degrees, 6 units apart), so that a setup does not read as a break.
const LEGEND = [
  ["legend.setup", "#eef1f4", "#9aa5b1", 1, "#9aa5b1"], ["legend.maintenance", "#fff1de", "#e07b00", 1, "#e07b00"],
  ["legend.break", "#e4e7eb", "#8896a4", 1, null], ["legend.late", "#4e79a7", "#d92d20", 2, null], ["legend.pinned", "#4e79a7", "#14324f", 2, null],
];

// A swatch of the legend at (x, y), w x h, on the canvas `ctx`; `k` the drawing's scale.
function legendSwatch(ctx, x, y, w, h, k, [, fill, stroke, lw, hatch]) {
  ctx.fillStyle = fill;
  ctx.fillRect(x, y, w, h);
  if (hatch) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(x, y, w, h);
    ctx.clip();
    ctx.strokeStyle = hatch;
    ctx.lineWidth = 1.5 * k;
    const step = 6 * Math.SQRT2 * k; // 6 units across the stripes, as the chart's pattern
    ctx.beginPath();
    for (let d = -h; d < w + h; d += step) { ctx.moveTo(x + d, y + h); ctx.lineTo(x + d + h, y); }
    ctx.stroke();
    ctx.restore();
  }
  ctx.strokeStyle = stroke;
  ctx.lineWidth = lw * k;
  ctx.strokeRect(x, y, w, h);
}

// The page the PDF shows: a title, the plan summary, the chart (drawn at twice its size) and the legend.
function planReport(chart) {
  const k = 2;
  const pad = 16 * k;
  const c = document.createElement("canvas");
  const font = (size, weight = 400) => `${weight} ${size * k}px system-ui, -apple-system, "Noto Sans KR", "Malgun Gothic", sans-serif`;
  const metrics = [`${t("m.status")} ${statusName(S.result.status)}`, `${t("m.objective")} ${objectiveName(S.result.objective)}`,
    ...metricsOf(S.result, S.solved).map(([key, v, d]) => `${t(key)} ${fmt(v, d)}`), ...clockMetrics(S.result).map(([key, v]) => `${t(key)} ${v}`)];
  const width = chart.width + 2 * pad;
  let ctx = c.getContext("2d");
  ctx.font = font(13);
  const lines = [];
  for (const part of metrics) {
    const last = lines.length ? lines[lines.length - 1] : null;
    if (last !== null && ctx.measureText(`${last} · ${part}`).width <= width - 2 * pad) lines[lines.length - 1] = `${last} · ${part}`;
    else lines.push(part);
  }
  const staleH = S.stale ? 19 * k : 0; // a line in red: this plan is for orders since changed
  const head = pad + 30 * k + lines.length * 19 * k + 22 * k + staleH;
  c.width = width;
  c.height = head + chart.height + 34 * k;
  ctx = c.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.textBaseline = "top";
  ctx.fillStyle = "#14324f";
  ctx.font = font(20, 700);
  ctx.fillText(t("pdf.title", { name: S.solved.name || "plan" }), pad, pad);
  ctx.fillStyle = "#1d2733";
  ctx.font = font(13);
  lines.forEach((line, i) => ctx.fillText(line, pad, pad + 30 * k + i * 19 * k));
  ctx.fillStyle = "#5f6d7b";
  ctx.font = font(11);
  const when = new Date().toLocaleString(LANG === "ko" ? "ko-KR" : "en-US");
  ctx.fillText(t("pdf.generated", { tenant: S.tenant?.display_name || S.tenant?.name || "", time: when }), pad, pad + 30 * k + lines.length * 19 * k + 2 * k);
  if (S.stale) {
    ctx.fillStyle = "#b42318";
    ctx.font = font(13, 700);
    ctx.fillText(t("pdf.stale"), pad, pad + 30 * k + lines.length * 19 * k + 20 * k);
  }
  ctx.drawImage(chart, pad, head);
  let x = pad;
  const y = head + chart.height + 10 * k;
  ctx.font = font(12);
  for (const item of LEGEND) {
    const key = item[0];
    legendSwatch(ctx, x, y, 18 * k, 11 * k, k, item);
    ctx.fillStyle = "#4d5d6d";
    ctx.fillText(t(key), x + 22 * k, y - k);
    x += 22 * k + ctx.measureText(t(key)).width + 16 * k;
  }
  return c;
}

async function exportPdf() {
  const svg = gantt.svg();
  if (!svg || !S.result) { sayNoPlan(); return; }
  try {
    const page = planReport(await svgToCanvas(svg, 2));
    const blob = await canvasToPdf(page, { title: t("pdf.title", { name: S.solved.name || "plan" }) });
    const name = `sfai-gantt-${planName()}.pdf`;
    download(name, blob);
    sayExported(name);
  } catch (e) { say(e, true); }
}

function renderLegend() {
  $("legend").innerHTML =
    `<span><i style="background:repeating-linear-gradient(45deg,#9aa5b1 0 2px,#eef1f4 2px 5px)"></i>${esc(t("legend.setup"))}</span>` +
    `<span><i style="background:repeating-linear-gradient(45deg,#e07b00 0 2px,#fff1de 2px 5px)"></i>${esc(t("legend.maintenance"))}</span>` +
    `<span><i style="background:#e4e7eb"></i>${esc(t("legend.break"))}</span>` +
    `<span><i style="background:#4e79a7;border:2px solid #d92d20"></i><b aria-hidden="true" style="color:#b42318">▼</b> ${esc(t("legend.late"))}</span>` +
    `<span><i style="background:#4e79a7;border-left:5px solid #14324f"></i>${esc(t("legend.pinned"))}</span>`;
}

// ------------------------------------------------------------------------------------------------ dashboard
async function loadDashboard() {
  const box = $("dash-cards");
  if (!S.tenant) return;
  const epoch = S.epoch;
  const load = ++dashLoads;
  box.innerHTML = `<p class="muted">${esc(t("dash.loading"))}</p>`;
  box.setAttribute("aria-busy", "true");
  try {
    const tenant = await api("/v1/tenant");
    if (epoch !== S.epoch) return; // signed out meanwhile (a refused key signs out)
    S.tenant = tenant;
  } catch (e) {
    if (epoch !== S.epoch) return;
    sayOn("dashboard", e, true);
  }
  const subscribed = new Set(S.tenant.modules);
  if (!S.samples && [...subscribed].some((m) => m !== "scheduling")) {
    try {
      const samples = (await api("/v1/console/samples")).samples;
      if (epoch !== S.epoch) return;
      S.samples = samples;
      S.samplesError = null;
    } catch (e) {
      if (epoch !== S.epoch) return;
      S.samplesError = e; // the cards say why (not "press Refresh" for every reason)
      sayOn("dashboard", e, true);
    }
  }
  if (epoch !== S.epoch || load !== dashLoads) return; // signed out, or a newer load draws the cards
  box.removeAttribute("aria-busy");
  // a card whose predictions are on their way is marked busy until they are in (showCard)
  const loading = (m) => subscribed.has(m) && m !== "scheduling";
  box.innerHTML = MODULES.map((m) => `<div class="card ${subscribed.has(m) ? "" : "off"}" data-module="${m}" id="dash-${m}"${loading(m) ? ' aria-busy="true"' : ""}>` +
    `<h2>${esc(t("mod." + m))}<span class="pill ${subscribed.has(m) ? "on" : "off"}">${subscribed.has(m) ? "✓ " + esc(t("dash.subscribed")) : esc(t("dash.notSubscribed"))}</span></h2>` +
    `<div class="dash-body">${subscribed.has(m) ? `<p class="muted">${esc(t("dash.loading"))}</p>` :
      `<p><b>${esc(t("dash.wouldAdd"))}</b> ${esc(t("add." + m))}</p><p class="muted">${esc(t("dash.subscribeHint"))}</p>`}</div></div>`).join("");
  const jobs = [];
  if (subscribed.has("maintenance")) jobs.push(dashMaintenance(load));
  if (subscribed.has("quality")) jobs.push(dashQuality(load));
  if (subscribed.has("energy")) jobs.push(dashEnergy(load));
  if (subscribed.has("scheduling")) dashScheduling();
  await Promise.all(jobs);
}

async function predict(family) {
  const s = S.samples?.[family];
  const why = S.samplesError;
  if (!s && why) throw new ApiError(0, () => t("dash.noSampleWhy", { msg: why.message }), { detail: why.detail, showDetail: why.showDetail });
  if (!s) throw new ApiError(0, () => t("dash.noSample"));
  const res = await api(s.endpoint, { method: "POST", body: s.body });
  return { s, res };
}

const bodyOf = (m) => document.querySelector(`#dash-${m} .dash-body`);
// A card's body, once its predictions are in: not after a sign-out, nor where a newer load (Refresh, a language
// switch) has drawn the cards again meanwhile (that load fills them itself).
let dashLoads = 0;
function showCard(m, html, load) {
  const body = bodyOf(m);
  if (body && load === dashLoads) { body.innerHTML = html; $("dash-" + m).removeAttribute("aria-busy"); }
}
// a card's prediction that failed: no model yet (404), or why the call failed, as the status line words it
const noModel = (e, family) => `<p class="warn" title="${esc(e.detail || "")}">` +
  `${esc(e.status === 404 ? t("dash.noModelTrain", { family }) : t("dash.noModel", { msg: e.message }))}` +
  (e.showDetail && e.detail ? ` <span class="status-detail">${esc(t("err.detail"))} <span lang="en">${esc(e.detail)}</span></span>` : "") + `</p>`;
const sourceNote = (s) => `<p class="muted" data-source="${esc(s.source)}">${esc(t("dash.sampleSource", { source: t("dash.source." + s.source, { entity: s.entity ?? "" }) }))} · ${esc(s.endpoint)}</p>`;
const meter = (p) => `<span class="meter"><i class="${p >= 0.5 ? "hi" : p >= 0.2 ? "mid" : ""}" style="width:${Math.round(Math.min(1, p) * 100)}%"></i></span>`;

async function dashMaintenance(load) {
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
          `<td${p.failure_mode ? ' lang="en"' : ""}>${esc(p.failure_mode || "–")}</td><td class="muted" lang="en">${esc((p.top_features || "").split(";").join(", "))}</td></tr>`;
      }).join("") + "</tbody></table>" + sourceNote(s);
  } catch (e) { html += noModel(e, "failure"); }
  try {
    const { s, res } = await predict("rul");
    const ranked = [...res.predictions].sort((a, b) => a.rul - b.rul);
    const maxR = Math.max(...ranked.map((p) => p.rul), 1);
    html += `<h3>${esc(t("dash.rul"))}</h3><table id="rul-rank"><thead><tr><th>#</th><th>${t("dash.unit")}</th><th>${t("dash.rulCol")}</th></tr></thead><tbody>` +
      ranked.map((p, i) => `<tr><td>${i + 1}</td><td>${esc(t("dash.rulUnit", { unit: p.unit }))}</td><td>${meter(1 - p.rul / maxR)} ${fmt(p.rul, 0)}</td></tr>`).join("") +
      "</tbody></table>" + sourceNote(s);
  } catch (e) { html += noModel(e, "rul"); }
  showCard("maintenance", html, load);
}

// A defect prediction's explanation (models/defect/predict.py `_explain`, the OpenAPI's DEFECT_ROWS). Every number is
// on the served log-odds scale: `baseline_logit` (a median wafer at the training failure rate, `baseline_probability`)
// plus each entry's `contribution` is the wafer's log-odds. An entry's `probability_change` is the served probability
// minus the one with that entry at its baseline: points of risk. The card had shown the contribution as "defect risk
// +0.11" beside "8.5 %", which read as percentage points; it is now said as log-odds, with the points of risk apart.
// "+0.79", "−0.30": signed with a true minus, `d` decimals at most (all of them where `fixed`)
const signed = (v, d, fixed = false) => `${v >= 0 ? "+" : "−"}${fixed
  ? Math.abs(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : fmt(Math.abs(v), d)}`;
// a measurement's value as read: 913.3, 0.972, 0.000123 (not 0)
const measured = (v) => (typeof v !== "number" ? "–" : v !== 0 && Math.abs(v) < 0.01
  ? Number(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US", { maximumSignificantDigits: 3 }) : fmt(v, Math.abs(v) >= 100 ? 1 : 3));
// a probability as a percentage: 8.5, 0.42 (below 1 %, two decimals)
const percent = (p) => fmt(100 * p, 100 * Math.abs(p) < 1 ? 2 : 1);
const riskPoints = (change) => { const pts = 100 * change; return signed(pts, Math.abs(pts) >= 1 ? 1 : 2); };

// The entries shown for a wafer: its three largest, and the line's recent failure rate wherever the answer lists it.
function shownFactors(d) {
  const shown = d.slice(0, 3);
  const rate = d.find((m) => m.kind === "recent_failure_rate");
  if (rate && !shown.includes(rate)) shown.push(rate);
  return shown;
}

// One entry in words: what it is (a measurement's value against its typical range and training median, with its
// robust z and a clipped mark; the recent failure rate against the usual one), then its log-odds and its points of
// risk. A measurement's arrow is the value's side of the median, the sign the risk's: said apart (a low value may
// raise the risk).
function factorLine(m) {
  const kind = m.kind || "measurement";
  const effect = t("dash.logOdds", { v: signed(m.contribution, 2, true) }) +
    (typeof m.probability_change === "number" ? ` · ${t("dash.riskPoints", { v: riskPoints(m.probability_change) })}` : "");
  const item = (html) => `<li data-kind="${esc(kind)}" data-direction="${esc(m.direction ?? "")}" data-measurement="${esc(m.measurement ?? "")}">${html}; <span class="effect">${esc(effect)}</span></li>`;
  if (kind === "recent_failure_rate") {
    const side = m.value > m.median ? "above" : m.value < m.median ? "below" : "at";
    const rate = (v) => fmt(v, 3);
    const source = m.source === "given" ? t("dash.rate.given", { sent: rate(m.sent ?? m.value) }) : m.source === "history" ? t("dash.rate.history") : "";
    return item(esc(t("dash.rate." + side, { rate: rate(m.value), usual: rate(m.median) }) + (source ? ` (${source})` : "")));
  }
  if (kind === "other") return item(esc(t("dash.factorOther")));
  if (kind === "saturation") return item(esc(t("dash.factorSaturation")));
  const range = Array.isArray(m.typical_range) && m.typical_range.length === 2 ? m.typical_range : null;
  let side = ["high", "low", "missing"].includes(m.direction) ? m.direction : "equal";
  if (range && typeof m.value === "number") { // outside its typical range says more than "above the median"
    if (m.value > range[1]) side = "aboveRange";
    else if (m.value < range[0]) side = "belowRange";
  }
  const arrow = { high: "↑", low: "↓", aboveRange: "↑", belowRange: "↓", missing: "–" }[side] ?? "=";
  let vs;
  if (m.value === null || m.value === undefined) {
    vs = t(kind === "missing_indicator" ? "dash.measurementAbsent" : "dash.measurementMissing", { median: measured(m.median) });
  } else {
    vs = range ? t("dash.measurementRange", { value: measured(m.value), lo: measured(range[0]), hi: measured(range[1]), median: measured(m.median) })
      : t("dash.measurementValue", { value: measured(m.value), median: measured(m.median) });
    if (typeof m.z === "number") vs += `; ${t("dash.z", { z: signed(m.z, 2) })}`;
  }
  const clipped = m.clipped ? ` <b class="clipped" data-clipped="true">${esc(t("dash.clipped"))}</b>` : "";
  return item(`<span lang="en">${esc(m.measurement)}</span> <span aria-hidden="true">${arrow}</span> ${esc(t("dash.side." + side))} (${esc(vs)})${clipped}`);
}

function topMeasurements(p) {
  const d = p.top_measurement_values;
  if (!Array.isArray(d)) return `<span lang="en">${esc((p.top_measurements || "").split(";").slice(0, 3).join(", "))}</span>`;
  const shown = shownFactors(d);
  let share = "";
  // the entries shown against everything that moved the wafer: `explained_share` is the listed entries' share of the
  // total |contribution|, and three of them (and the rate) are shown
  const listed = d.reduce((n, m) => n + Math.abs(m.contribution || 0), 0);
  if (typeof p.explained_share === "number" && listed > 0 && shown.length) {
    const part = Math.min(1, (p.explained_share * shown.reduce((n, m) => n + Math.abs(m.contribution || 0), 0)) / listed);
    share = `<p class="factor-share">${esc(t("dash.shownShare", { share: fmt(100 * part, 0) }))}</p>`;
  }
  return `<ul class="measurements">${shown.map(factorLine).join("")}</ul>${share}`;
}

async function dashQuality(load) {
  let html = "";
  try {
    const { s, res } = await predict("defect");
    const rows = res.predictions;
    // a median wafer's risk: where the answer has it, what each row's log-odds start from (the same for every row)
    const base = rows.find((p) => typeof p.baseline_probability === "number");
    html += `<h3>${esc(t("dash.defects"))}</h3><table id="defect-table"><thead><tr><th>${t("dash.part")}</th><th>${t("dash.prob")}</th>` +
      `<th>${t("dash.defect")}</th><th>${t("dash.defectFactors")}</th></tr></thead><tbody>` +
      rows.map((p) => {
        // a median wafer at this wafer's recent failure rate, where that rate moves it from the baseline
        const atRate = typeof p.median_wafer_probability === "number" && typeof p.baseline_probability === "number" &&
          Math.abs(p.median_wafer_probability - p.baseline_probability) >= 0.0005
          ? `<span class="base-rate">${esc(t("dash.medianWaferAtRate", { p: percent(p.median_wafer_probability) }))}</span>` : "";
        return `<tr><td>${esc(p.row_id)}</td><td class="prob">${meter(p.defect_probability)} ${fmt(p.defect_probability * 100, 1)}%${atRate}</td>` +
          `<td>${p.defect_predicted ? `<b class="late-tag">${esc(t("yes"))}</b>` : esc(t("no"))}</td>` +
          `<td class="muted">${topMeasurements(p)}</td></tr>`;
      }).join("") +
      "</tbody></table>" +
      (base ? `<p class="muted" id="defect-baseline">${esc(t("dash.defectBaseline", { p: percent(base.baseline_probability),
        logit: typeof base.baseline_logit === "number" ? signed(base.baseline_logit, 2, true) : "–" }))}</p>` : "") +
      (rows.some((p) => Array.isArray(p.top_measurement_values)) ? `<p class="muted" id="defect-legend">${esc(t("dash.defectLegend"))}</p>` : "") +
      sourceNote(s);
  } catch (e) { html += noModel(e, "defect"); }
  showCard("quality", html, load);
}

async function dashEnergy(load) {
  let html = "";
  try {
    const { s, res } = await predict("energy");
    const origin = res.predictions[0]?.origin;
    const fc = res.predictions.filter((p) => p.origin === origin);
    const actual = new Map((s.actuals || []).map((a) => [a.timestamp.slice(0, 16), a.kwh]));
    const kwh = fc.reduce((n, p) => n + p.p50, 0);
    const co2 = fc.reduce((n, p) => n + (p.co2_p50 || 0), 0) * 1000;
    // a meter's forecast (by its id) has no actuals to draw: the heading and the legend name only what is drawn
    const drawn = fc.some((p) => actual.get(String(p.timestamp).slice(0, 16)) != null);
    html += `<h3>${esc(t(drawn ? "dash.energy" : "dash.energyNoActual"))}</h3>` + energyChart(fc, actual) +
      `<p id="energy-totals">${esc(t("dash.energyTotals", { kwh: fmt(kwh, 1), co2: fmt(co2, 1) }))} · ${esc(origin)}</p>` + sourceNote(s);
  } catch (e) { html += noModel(e, "energy"); }
  showCard("energy", html, load);
}

// The forecast against the actuals: the legend above the plot (not over the data), kWh ticks with the decimals
// their step needs, times and the date in the factory's time (KST) under it. The actuals' line and its legend entry
// only where there are actuals for the forecast's times (none for a meter's next day, forecast by its id).
function energyChart(fc, actual) {
  const W = 540, H = 226, L = 44, B = 36, T = 26;
  if (!fc.length) return "";
  const acts = fc.map((p) => actual.get(String(p.timestamp).slice(0, 16)));
  const hasActual = acts.some((v) => v != null);
  const hi = Math.max(...fc.map((p) => p.p90), ...acts.filter((v) => v != null)) * 1.05;
  const lo = Math.min(0, ...fc.map((p) => p.p10));
  const X = (i) => L + (i / Math.max(1, fc.length - 1)) * (W - L - 8);
  const Y = (v) => T + (1 - (v - lo) / (hi - lo || 1)) * (H - T - B);
  const band = fc.map((p, i) => `${X(i)},${Y(p.p90)}`).concat(fc.map((p, i) => `${X(i)},${Y(p.p10)}`).reverse()).join(" ");
  const line = (vals) => vals.map((v, i) => (v == null ? null : `${X(i)},${Y(v)}`)).filter(Boolean).join(" ");
  let ticks = "";
  const step = (hi - lo) / 4;
  const decimals = step > 0 ? Math.max(0, Math.min(3, Math.ceil(-Math.log10(step)) + 1)) : 0;
  for (let k = 0; k <= 4; k++) {
    const v = lo + step * k;
    ticks += `<line x1="${L}" x2="${W - 8}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eef1f4"/><text x="${L - 4}" y="${Y(v) + 4}" text-anchor="end" font-size="10" fill="#5f6d7b" class="y-tick">${fmt(v, decimals)}</text>`;
  }
  ticks += `<text x="4" y="${T - 4}" font-size="10" fill="#5f6d7b">kWh</text>`;
  for (let i = 0; i < fc.length; i += Math.max(1, Math.round(fc.length / 6))) {
    ticks += `<text x="${X(i)}" y="${H - B + 14}" font-size="10" fill="#5f6d7b" text-anchor="middle">${esc(String(fc[i].timestamp).slice(11, 16))}</text>`;
  }
  const days = [...new Set(fc.map((p) => String(p.timestamp).slice(0, 10)))];
  ticks += `<text x="${L}" y="${H - 4}" font-size="10" fill="#5f6d7b" class="x-date">${esc(t("dash.energyDate", { date: days[0] + (days.length > 1 ? " – " + days[days.length - 1] : "") }))}</text>`;
  return `<svg id="energy-chart" width="100%" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t(hasActual ? "dash.energy" : "dash.energyNoActual"))}" font-family="system-ui, sans-serif">` +
    ticks + `<polygon points="${band}" fill="#a0cbe8" opacity="0.6"><title>${esc(t("dash.band"))}</title></polygon>` +
    `<polyline points="${line(fc.map((p) => p.p50))}" fill="none" stroke="#1f6fb2" stroke-width="2" class="p50"/>` +
    (hasActual ? `<polyline points="${line(acts)}" fill="none" stroke="#d92d20" stroke-width="1.5" stroke-dasharray="3 2" class="actual"/>` : "") +
    `<g font-size="11" class="chart-legend"><g data-series="band"><rect x="${L + 6}" y="4" width="10" height="8" fill="#a0cbe8"/><text x="${L + 20}" y="12">${esc(t("dash.band"))}</text></g>` +
    `<g data-series="p50"><line x1="${L + 90}" x2="${L + 104}" y1="8" y2="8" stroke="#1f6fb2" stroke-width="2"/><text x="${L + 108}" y="12">${esc(t("dash.p50"))}</text></g>` +
    (hasActual ? `<g data-series="actual"><line x1="${L + 190}" x2="${L + 204}" y1="8" y2="8" stroke="#d92d20" stroke-dasharray="3 2"/><text x="${L + 208}" y="12">${esc(t("dash.actual"))}</text></g>` : "") +
    `</g></svg>`;
}

// The scheduling card: the last plan in brief, marked out of date (as the planner marks it) once the orders have
// changed since its solve. Re-drawn whenever the plan or its freshness changes while the card is on the page.
function dashScheduling() {
  const body = document.querySelector("#dash-scheduling:not(.off) .dash-body");
  if (!body) return;
  const v = S.result?.objective_values;
  const stale = !!(S.result && S.stale);
  const summary = v ? `${statusName(S.result.status)}, ${t("m.makespan")} ${fmt(v.makespan)}, ${t("m.lateJobs")} ${fmt(v.late_jobs)}` : t("dash.noPlan");
  $("dash-scheduling").classList.toggle("stale", stale);
  body.innerHTML = (stale ? `<p id="dash-plan-stale" class="warn">${esc(t("dash.planStale"))}</p>` : "") +
    `<p id="dash-plan-summary">${esc(t("dash.schedulingNow", { summary }))}</p>` +
    `<button type="button" id="dash-goto-planner" class="secondary">${esc(t("tab.planner"))}</button>`;
  $("dash-goto-planner").addEventListener("click", () => showTab("planner", true));
}

// ------------------------------------------------------------------------------------------------ admin
const day = (s) => (s ? String(s).slice(0, 19).replace("T", " ") : "–");

async function loadAdmin() {
  const admin = S.tenant?.caller_role === "admin";
  $("admin-denied").hidden = admin;
  $("admin-body").hidden = !admin;
  if (!admin) { $("admin-denied").textContent = t("admin.needAdmin", { role: label("role", S.tenant?.caller_role) }); return; }
  await Promise.all([loadSubs(), loadKeys(), loadUsage()]);
}

async function loadSubs() {
  const epoch = S.epoch;
  try {
    const all = await api("/v1/subscriptions");
    if (epoch !== S.epoch) return; // another session's answer: not shown to this one
    // the subscriptions in force first (in the modules' order), then the history, newest first and greyed: after a
    // few plan changes the active rows had been lost among the ended ones
    const now = Date.now();
    const live = (s) => Date.parse(s.starts_at) <= now && (!s.ends_at || Date.parse(s.ends_at) > now);
    const subs = [...all.filter(live).sort((a, b) => MODULES.indexOf(a.module) - MODULES.indexOf(b.module)),
      ...all.filter((s) => !live(s)).sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at))];
    $("subs-table").innerHTML = `<thead><tr><th>${t("admin.module")}</th><th>${t("admin.plan")}</th><th class="num">${t("admin.quota")}</th>` +
      `<th>${t("admin.starts")}</th><th>${t("admin.ends")}</th><th></th></tr></thead><tbody>` +
      subs.map((s) => `<tr data-module="${esc(s.module)}"${live(s) ? "" : ' class="ended"'}>${idCell("mod", s.module)}${idCell("plan", s.plan)}` +
        `<td class="num">${s.request_quota == null ? "∞" : fmt(s.request_quota)}</td><td class="time">${day(s.starts_at)}</td><td class="time">${day(s.ends_at)}</td>` +
        `<td>${s.managed_by_operator ? `<span class="muted" data-managed="true">${esc(t("admin.managed"))}</span> ` : ""}` +
        `${s.ends_at ? "" : `<button type="button" class="danger" data-unsub="${esc(s.module)}" data-plan="${esc(s.plan)}">${esc(t("admin.unsubscribeModule", { module: label("mod", s.module) }))}</button>`}</td></tr>`).join("") +
      "</tbody>";
    $("subs-table").querySelectorAll("[data-unsub]").forEach((b) => b.addEventListener("click", () => {
      const module = b.dataset.unsub;
      // the console subscribes on the trial and standard plans only: an enterprise plan is not had back from here
      const ask = b.dataset.plan === "enterprise" ? "admin.unsubEnterpriseConfirm" : "admin.unsubConfirm";
      if (b.disabled || !window.confirm(t(ask, { module: label("mod", module), plan: label("plan", b.dataset.plan) }))) return;
      const index = [...$("subs-table").querySelectorAll("[data-unsub]")].indexOf(b);
      busy(b, async () => {
        try {
          await api("/v1/subscriptions/" + encodeURIComponent(module), { method: "DELETE" });
          say(() => t("admin.unsubscribed", { module: label("mod", module) }));
          await afterSubChange();
        } catch (e) { say(e, true); }
      }, () => nextControl("subs-table", "[data-unsub]", index, "sub-module"));
    }));
  } catch (e) { sayOn("admin", e, true); }
}

async function afterSubChange() {
  const epoch = S.epoch;
  const tenant = await api("/v1/tenant");
  if (epoch !== S.epoch) return;
  S.tenant = tenant;
  $("planner-nosub").hidden = S.tenant.modules.includes("scheduling");
  await loadSubs();
}

async function loadKeys() {
  const epoch = S.epoch;
  try {
    const keys = await api("/v1/apikeys");
    if (epoch !== S.epoch) return;
    $("keys-table").innerHTML = `<thead><tr><th>${t("admin.keyId")}</th><th>${t("admin.keyName")}</th><th>${t("admin.role")}</th>` +
      `<th>${t("admin.keyModules")}</th><th>${t("admin.keyState")}</th>` +
      `<th>${t("admin.created")}</th><th>${t("admin.keyExpiresAt")}</th><th>${t("admin.lastUsed")}</th><th>${t("admin.revoked")}</th>` +
      `<th></th></tr></thead><tbody>` +
      keys.map((k) => {
        const own = k.key_id === S.tenant.caller_key_id; // the key this console is signed in with (★)
        const state = k.state || "active";
        // the modules the key may call, in words (none listed: every module the tenant holds)
        const scope = Array.isArray(k.modules) ? k.modules.map((m) => label("mod", m)).join(", ") : t("admin.keyAllModules");
        return `<tr data-key="${esc(k.key_id)}" data-state="${esc(state)}"${own ? ' class="own"' : ""}><td><code>${esc(k.key_id)}</code>` +
          `${own ? ` <span title="${esc(t("admin.ownKey"))}" aria-label="${esc(t("admin.ownKey"))}">★</span>` : ""}</td><td class="name">${esc(k.name)}</td>` +
          `${idCell("role", k.role)}<td class="modules" data-modules="${esc((k.modules || []).join(","))}">${esc(scope)}</td>` +
          `<td class="state" data-key-state="${esc(state)}">${esc(t("keyState." + state))}</td>` +
          `<td class="time">${day(k.created_at)}</td><td class="time expires">${day(k.expires_at)}</td>` +
          `<td class="time last-used">${day(k.last_used_at)}</td><td class="time">${day(k.revoked_at)}</td>` +
          `<td>${k.revoked_at ? "" : `<button type="button" class="danger" data-revoke="${esc(k.key_id)}"${own ? ' data-own="true"' : ""}>` +
            `${esc(t(own ? "admin.revokeOwn" : "admin.revokeKey", { key: k.key_id }))}</button>`}</td></tr>`;
      }).join("") + "</tbody>";
    // the usage log's key filter: every key, revoked ones too (their calls stay in the log), the choice kept
    const pick = $("usage-key");
    const chosen = pick.value;
    pick.replaceChildren(pick.options[0], ...keys.map((k) => new Option(`${k.name} (${k.key_id})`, k.key_id)));
    pick.value = keys.some((k) => k.key_id === chosen) ? chosen : "";
    $("keys-table").querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", () => {
      const key = b.dataset.revoke;
      const own = b.dataset.own === "true";
      // revoking the key this console uses signs it out: the question says so, and so does the page afterwards
      if (b.disabled || !window.confirm(t(own ? "admin.revokeOwnConfirm" : "admin.revokeConfirm", { key }))) return;
      const index = [...$("keys-table").querySelectorAll("[data-revoke]")].indexOf(b);
      busy(b, async () => {
        try {
          await api("/v1/apikeys/" + encodeURIComponent(key), { method: "DELETE" });
          if (own) { signOut(["admin.revokedOwn", { key }]); return; }
          say(() => t("admin.keyRevoked", { key }));
          await loadKeys();
        } catch (e) { say(e, true); }
      }, () => (S.tenant ? nextControl("keys-table", "[data-revoke]", index, "key-name") : null));
    }));
  } catch (e) { sayOn("admin", e, true); }
}

// "to" not after "from" is refused here, in words (the server's answer would be its English text)
function markUsageRange(bad) {
  for (const id of ["usage-from", "usage-to"]) {
    if (bad) { $(id).setAttribute("aria-invalid", "true"); $(id).setAttribute("aria-describedby", "usage-range-error"); } else { $(id).removeAttribute("aria-invalid"); $(id).removeAttribute("aria-describedby"); }
  }
  $("usage-range-error").hidden = !bad;
  $("usage-range-error").textContent = bad ? t("admin.badRange") : "";
}

// The status line's error about the usage log (dates the wrong way round, a refused load): a good load clears it,
// where the line still shows it (not where another message has taken its place since).
let usageSaid = null;

// The usage form's filters (dates and module: the list and the export filter alike), or null where the dates
// are the wrong way round.
function usageQuery() {
  const q = new URLSearchParams();
  const from = $("usage-from").value;
  const to = $("usage-to").value;
  const bad = !!(from && to && to <= from);
  markUsageRange(bad);
  if (bad) {
    say(() => t("admin.badRange"), true);
    usageSaid = said;
    $("usage-to").focus();
    return null;
  }
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  if ($("usage-module").value) q.set("module", $("usage-module").value);
  if ($("usage-key").value) q.set("key_id", $("usage-key").value);
  return q;
}


const usageRow = (r) => `<tr><td class="num">${r.seq}</td><td class="time">${esc(day(r.ts))}</td>${idCell("mod", r.module ?? "platform")}<td>${esc(r.method)} ${esc(r.endpoint)}</td>` +
  `<td class="num">${r.status}${r.calls > 1 ? ` <span class="calls" title="${esc(t("admin.collapsedCalls", {n: r.calls}))}">×${r.calls}</span>` : ""}</td><td class="num">${fmt(r.latency_ms, 1)}</td><td>${r.key_name ? `${esc(r.key_name)} ` : ""}<code>${esc(r.key_id)}</code></td></tr>`;

// ``older``: append the next page (the "Older records" button) instead of loading the newest anew, with the filters
// of the page on screen (the form's, edited since, apply from the newest again on Apply).
async function loadUsage(older = false) {
  let q;
  if (older) { // the filters of the page on screen, not the form's if it was edited since without Apply
    if (usageNext == null || !usageShown) return;
    q = new URLSearchParams(usageShown);
    q.set("before_seq", String(usageNext));
  } else {
    q = usageQuery();
    if (!q) return;
    q.set("limit", String(Math.min(1000, Math.max(1, Number($("usage-limit").value) || 50))));
  }
  const epoch = S.epoch;
  try {
    const u = await api("/v1/usage?" + q);
    if (epoch !== S.epoch) return;
    $("usage-summary").textContent = tn("admin.usageTotal", u.total) + ": " + Object.entries(u.by_module || {})
      .map(([m, c]) => t("admin.usageCounts", { module: label("mod", m), calls: fmt(c.calls), ok: fmt(c.ok), client: fmt(c.client_errors), refused: fmt(c.refused ?? 0), server: fmt(c.server_errors) })).join(" · ");
    const body = $("usage-table").tBodies[0];
    if (older && body) body.insertAdjacentHTML("beforeend", u.records.map(usageRow).join(""));
    else {
      $("usage-table").innerHTML = `<thead><tr><th class="num">${t("admin.seq")}</th><th>${t("admin.time")}</th><th>${t("admin.module")}</th><th>${t("admin.call")}</th>` +
        `<th class="num">${t("admin.status")}</th><th class="num">${t("admin.ms")}</th><th>${t("admin.key")}</th></tr></thead><tbody>` +
        u.records.map(usageRow).join("") + "</tbody>";
    }
    if (!older) usageShown = q.toString();
    usageNext = u.next_before_seq ?? null;
    $("usage-more").hidden = usageNext == null;
    if (usageSaid && said === usageSaid) say("");
    usageSaid = null;
  } catch (e) {
    sayOn("admin", e, true);
    if (said?.msg === e) usageSaid = said;
  }
}

async function exportUsage() {
  const q = usageQuery();
  if (!q) return;
  q.set("format", "csv");
  const epoch = S.epoch;
  try {
    const r = await api("/v1/usage/export?" + q, { raw: true });
    const blob = await r.blob();
    if (epoch !== S.epoch) return;
    const module = $("usage-module").value;
    const name = `sfai-usage-${S.tenant.name}${module ? "-" + module : ""}.csv`;
    download(name, blob);
    say(() => t("planner.exported", { file: name }));
  } catch (e) { say(e, true); }
}

// ------------------------------------------------------------------------------------------------ start
const locale = () => (LANG === "ko" ? "ko-KR" : "en-US"); // the chart's dates (a clock's axis) in the page's language
const gantt = createGantt($("gantt"), {
  label: (k, v) => t(k, v),
  locale,
  onSelect: (r) => renderDetails({ job: r.job, operation: r.operation }),
  onPin: (r, machine, start) => pinOp(r, machine, start),
});
const copyGantt = createGantt($("gantt-copy"), { interactive: false, rowH: 28, barH: 18, labelW: 70, label: (k, v) => t(k, v), locale });
const currentGantt = createGantt($("gantt-current"), { interactive: false, rowH: 28, barH: 18, labelW: 70, label: (k, v) => t(k, v), locale });

function rerenderLanguage() {
  applyI18n();
  pageTitle();
  if (keyErrorText) $("api-key-error").textContent = keyErrorText();
  if (fileErrorText) $("orders-file-error").textContent = fileErrorText();
  renderLegend();
  renderObjectiveHelp();
  renderJob();
  readOps();
  renderOps();
  renderOrderFormTitle();
  if (!$("order-errors").hidden) showOrderErrors(orderErrors(), false);
  renderOrders(true);
  renderUnsaved();
  if (!$("usage-range-error").hidden) markUsageRange(true);
  if (!$("plan-start-error").hidden) planStartError(true);
  renderSummary();
  renderGanttEmpty();
  renderPins();
  renderDetails();
  renderCompare();
  if (S.result && !$("panel-planner").hidden) gantt.render(S.solved, S.result, { keepView: true });
  if (said) say(said.msg, said.error); // the status line too, in the new language
  if (S.tenant) {
    renderBadge();
    if (!$("panel-dashboard").hidden) loadDashboard();
    if (!$("panel-admin").hidden) loadAdmin();
  }
}

$("lang-select").value = LANG;
$("lang-select").addEventListener("change", (e) => { setLang(e.target.value); rerenderLanguage(); });
$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if ($("signin-btn").disabled) return; // a sign-in is on its way
  const k = $("api-key").value; // cleaned by signIn; the field is cleared once signed in, or the key refused
  busy($("signin-btn"), () => signIn(k));
});
$("signout-btn").addEventListener("click", () => signOut());
$("load-sample").addEventListener("click", () => loadSample(true));
$("new-plan").addEventListener("click", newPlan);
$("objective").addEventListener("change", renderObjectiveHelp);
for (const id of SETTING_IDS) $(id).addEventListener("change", persist);
window.addEventListener("pagehide", persist); // a reload or Back: the latest of everything, once more
$("order-form").addEventListener("submit", submitOrder);
$("of-ops").addEventListener("click", onOpsClick);
$("of-add-op").addEventListener("click", addOp);
$("of-cancel").addEventListener("click", cancelOrder);
$("orders-file").addEventListener("change", onFile);
$("solve-btn").addEventListener("click", solve);
$("zoom-in").addEventListener("click", () => gantt.zoomBy(1.5));
$("zoom-out").addEventListener("click", () => gantt.zoomBy(1 / 1.5));
$("zoom-fit").addEventListener("click", () => gantt.fit());
$("time-limit").addEventListener("input", () => { $("time-limit-note").hidden = true; });
$("plan-start").addEventListener("change", onPlanStart);
$("plan-start").addEventListener("blur", () => { if (planStartBad()) checkPlanStart(false); }); // half typed: no change event
$("plan-start-clear").addEventListener("click", () => { $("plan-start").value = ""; planStartOffset = ""; onPlanStart(); persist(); $("plan-start").focus(); });
$("gantt-table-toggle").addEventListener("click", () => { $("gantt-table-wrap").hidden = !$("gantt-table-wrap").hidden; renderPlanTable(); });
// past the chart (one tab stop, but a long one to read through): to the table view's button
$("gantt-skip").addEventListener("click", (e) => { e.preventDefault(); $("gantt-table-toggle").focus(); });
$("keep-copy").addEventListener("click", keepCopy);
$("clear-copy").addEventListener("click", () => { S.copy = null; $("clear-copy").hidden = true; renderCompare(); persist(); });
$("export-csv").addEventListener("click", exportCsv);
$("export-png").addEventListener("click", exportPng);
$("export-pdf").addEventListener("click", exportPdf);
$("dash-refresh").addEventListener("click", () => { S.samples = null; loadDashboard(); });
$("sub-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("sub-create"), subscribe);
});
async function subscribe() {
  try {
    await api("/v1/subscriptions", { method: "POST", body: { module: $("sub-module").value, plan: $("sub-plan").value } });
    const module = $("sub-module").value;
    say(() => t("admin.subscribed", { module: label("mod", module) }));
    await afterSubChange();
  } catch (err) { say(err, true); }
}
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("key-create"), createKey);
});
async function createKey() {
  const body = { role: $("key-role").value };
  if ($("key-name").value.trim()) body.name = $("key-name").value.trim();
  // a date: the key works through that day (UTC) and expires at its end; none: it does not expire
  if ($("key-expires").value) body.expires_at = $("key-expires").value;
  // the modules ticked (none ticked: every module the tenant holds)
  const modules = [...document.querySelectorAll("#key-modules input:checked")].map((x) => x.value);
  if (modules.length) body.modules = modules;
  try {
    const epoch = S.epoch;
    const k = await api("/v1/apikeys", { method: "POST", body });
    if (epoch !== S.epoch) return;
    $("new-key").hidden = false;
    $("new-key-value").value = k.api_key;
    $("key-name").value = "";
    $("key-expires").value = "";
    document.querySelectorAll("#key-modules input").forEach((x) => { x.checked = false; });
    say(() => t("admin.keyCreated", { key: k.key_id }));
    await loadKeys();
    $("new-key-value").focus();
    $("new-key-value").select();
  } catch (err) { say(err, true); }
}
$("new-key-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText($("new-key-value").value); } catch { $("new-key-value").select(); document.execCommand("copy"); }
  say(() => t("admin.copied"));
});
$("usage-form").addEventListener("submit", (e) => { e.preventDefault(); busy($("usage-apply"), () => loadUsage()); });
$("usage-more").addEventListener("click", () => busy($("usage-more"), () => loadUsage(true)));
$("job-cancel").addEventListener("click", () => busy($("job-cancel"), cancelJob));
$("usage-export").addEventListener("click", () => busy($("usage-export"), exportUsage));
window.addEventListener("resize", () => { if (S.result && !$("panel-planner").hidden) gantt.render(S.solved, S.result, { keepView: true }); });

wireTabs();
applyI18n();
renderLegend();
renderObjectiveHelp();
resetOrderForm();
renderSummary();
renderPins();
signIn();
