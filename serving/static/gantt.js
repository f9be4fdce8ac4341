// SFAI console: an SVG Gantt chart. Machines are rows; operations are bars coloured by job; setups, calendar
// downtimes and maintenance windows are drawn; late jobs are outlined in red; pinned operations carry a pin.
// Zoom (zoomBy, wheel) and pan (drag on the background); dragging a bar reports a new machine and start. With a
// mouse a bar drags at once; with a finger (or pen) only after it is held still for LONG_PRESS_MS, so that a swipe
// that starts on a bar scrolls the page (the chart lets the browser pan vertically: touch-action pan-y).
// Presentation is in attributes, not CSS, so that the serialised SVG draws the same in a PNG or PDF export.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
  "#86bcb6", "#a0cbe8", "#8cd17d", "#d4a6c8", "#fabfd2", "#b6992d", "#499894", "#79706e"];

// WCAG relative luminance of "#rrggbb", and the label colour a bar of that fill reads best in: white or black,
// whichever contrasts more (every palette colour reaches 4.5:1 with one of them; white on the light ones was 1.5:1).
function luminance(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function contrast(a, b) {
  const [la, lb] = [luminance(a), luminance(b)];
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}
function labelColour(fill) {
  return contrast(fill, "#ffffff") >= contrast(fill, "#000000") ? "#ffffff" : "#000000";
}

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function niceStep(minUnits) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 10080];
  for (const s of steps) if (s >= minUnits) return s;
  return Math.ceil(minUnits / 10080) * 10080;
}

let ganttSeq = 0;
const MIN_WIDTH = 280; // a phone's width (390 px) less the card's padding: the chart fits, not cut off
const LONG_PRESS_MS = 350; // a finger held this long on a bar picks it up
const TOUCH_SLOP = 8; // px a finger may wander while held
// On a phone (the width console.css takes as one) an interactive chart's rows and bars are taller and each bar is a
// target of at least TARGET x TARGET px (WCAG 2.5.5): a bar narrower than that gets an invisible hit area around it,
// into the free time beside it (up to half way to the next bar, so that no two targets overlap).
const NARROW = "(max-width: 600px)";
const ROOMY = { rowH: 56, barH: 36 };
const TARGET = 44;

// Text widths as the chart's font draws them (a canvas measures without the text being on the page).
let measurer = null;
function textWidth(text, font) {
  measurer = measurer || document.createElement("canvas").getContext("2d");
  measurer.font = font;
  return measurer.measureText(text).width;
}

// `text` cut to `max` px with an ellipsis (whole characters, Korean too), or as it is where it fits.
function fitText(text, max, font) {
  if (textWidth(text, font) <= max) return text;
  const chars = [...text];
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(chars.slice(0, mid).join("") + "…", font) <= max) lo = mid; else hi = mid - 1;
  }
  return chars.slice(0, lo).join("") + "…";
}
const FONT = "system-ui, sans-serif";

// The jobs of a plan that are late: those the server explains (`late_jobs`, at most 50) and those whose last
// operation it marks `late` (every late job). The chart marks every operation of these jobs, and the CSV export's
// `job_late` column says the same.
function lateJobIds(result) {
  const late = new Set((result?.late_jobs || []).map((l) => String(l.job)));
  for (const r of result?.gantt || []) if (r.late && r.job !== null && r.job !== undefined) late.add(String(r.job));
  return late;
}

// How far a plan reaches: its last end or due date (at least 10), which a fitted view shows whole.
function planExtent(problem, result) {
  let tMax = 0;
  for (const r of result?.gantt || []) tMax = Math.max(tMax, r.end);
  for (const j of problem?.jobs || []) if (finite(j.due)) tMax = Math.max(tMax, j.due);
  return Math.max(10, tMax);
}

// ------------------------------------------------------------------ a plan's clock (docs/scheduling.md, `clock`)
// A date and time as ISO 8601 writes it (2026-12-08, 2026-12-08T06:00, ...T06:00:00+09:00, ...Z), as the server reads
// it: { wall, offset, offMin }, `wall` its date and time on its own clock as the milliseconds of that date and time
// in UTC (so that adding minutes to it never meets a daylight-saving change or the browser's time zone: the plan's
// times are shown on the plant's clock, not the viewer's), `offset` its UTC offset as written ("" without one) and
// `offMin` that offset in minutes (null without one). null where it is no real date and time.
const CLOCK_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;
function parseClockTime(text) {
  const m = typeof text === "string" ? CLOCK_TIME.exec(text.trim()) : null;
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0));
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59) return null;
  const at = new Date(0);
  at.setUTCFullYear(y, mo - 1, d); // not Date.UTC, which reads the years 0-99 as 1900-1999
  at.setUTCHours(h, mi, s, Math.floor(Number(`0.${m[7] ?? 0}`) * 1000));
  if (at.getUTCMonth() !== mo - 1 || at.getUTCDate() !== d) return null; // 2026-02-30
  let offMin = null;
  if (m[8]) offMin = m[8] === "Z" ? 0 : (m[8][0] === "-" ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(-2)));
  return { wall: at.getTime(), offset: m[8] === "Z" ? "+00:00" : m[8] ?? "", offMin };
}

// The clock of a plan (the solve answer's `clock`: start, minutes_per_unit): { wall, mpu, offset }, or null without
// one (then every time is shown in plan units, as before there were clocks).
function planClock(result) {
  const c = result?.clock;
  const start = c && typeof c === "object" ? parseClockTime(c.start) : null;
  if (!start) return null;
  const mpu = Number(c.minutes_per_unit);
  return { wall: start.wall, mpu: Number.isFinite(mpu) && mpu > 0 ? mpu : 1, offset: start.offset };
}

const pad2 = (n) => String(n).padStart(2, "0");
// time `t` of the plan on its clock, as wall-clock milliseconds (see parseClockTime)
const clockAt = (c, t) => Math.round(c.wall + t * c.mpu * 60000);
// wall-clock milliseconds as { date: "2026-12-08", time: "06:00" (":30" added where it has seconds) }
function wallParts(ms) {
  const d = new Date(ms);
  const secs = d.getUTCSeconds() || d.getUTCMilliseconds() ? `:${pad2(d.getUTCSeconds())}` : "";
  return { date: `${String(d.getUTCFullYear()).padStart(4, "0")}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`,
    time: `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}${secs}` };
}
// "2026-12-08 06:00": time `t` of the plan on its clock
function clockText(c, t) {
  const p = wallParts(clockAt(c, t));
  return `${p.date} ${p.time}`;
}
// the start and end of a span on the clock: { start: "2026-12-08 06:00", end: "07:30" } (the end's date only where
// it is another day)
function clockSpan(c, a, b) {
  const p = wallParts(clockAt(c, a));
  const q = wallParts(clockAt(c, b));
  return { start: `${p.date} ${p.time}`, end: q.date === p.date ? q.time : `${q.date} ${q.time}` };
}
const clockRange = (c, a, b) => { const s = clockSpan(c, a, b); return `${s.start}–${s.end}`; };
// time `t` as ISO 8601 on the clock, in its UTC offset ("2026-12-08T06:00:00", as the server writes it)
function clockIso(c, t) {
  const d = new Date(clockAt(c, t));
  const ms = d.getUTCMilliseconds() ? `.${String(d.getUTCMilliseconds()).padStart(3, "0")}` : "";
  const p = wallParts(d.getTime());
  return `${p.date}T${p.time.slice(0, 5)}:${pad2(d.getUTCSeconds())}${ms}${c.offset}`;
}
const finite = (v) => typeof v === "number" && Number.isFinite(v);

function createGantt(container, opts = {}) {
  const uid = `g${++ganttSeq}`; // ids inside the SVG are document-wide: one set per chart
  const o = { interactive: true, rowH: 38, barH: 24, labelW: 92, axisH: 26, onSelect: null, onPin: null, label: (k) => k,
    locale: () => document.documentElement.lang || "en", narrow: () => !!window.matchMedia?.(NARROW).matches, ...opts };
  // axisH: the axis's height as drawn (a plan with a clock has a line of dates above the times)
  // rowH, barH: as drawn (taller on a phone); roomy: whether they are
  const st = { problem: null, result: null, t0: 0, scale: 1, width: 800, tMax: 100, selected: null, active: null, noPan: false, axisH: o.axisH,
    rowH: o.rowH, barH: o.barH, roomy: false };
  const keyOf = (r) => ({ job: r.job, operation: r.operation });
  const same = (a, b) => !!a && !!b && String(a.job) === String(b.job) && String(a.operation) === String(b.operation);
  const barEl = (k) => k && container.querySelector(`g.op[data-job="${CSS.escape(String(k.job))}"][data-op="${CSS.escape(String(k.operation))}"]`);

  function machines() {
    const ids = (st.problem?.machines || []).map((m) => (typeof m === "string" ? m : m.id));
    for (const r of st.result?.gantt || []) if (!ids.includes(r.machine)) ids.push(r.machine);
    return ids;
  }
  function downtimes(mid) {
    const m = (st.problem?.machines || []).find((x) => (typeof x === "string" ? x : x.id) === mid);
    if (!m || typeof m === "string") return [];
    // (a time the console could not read as a number, left for the server to refuse, is not drawn)
    return [...(m.calendar || []), ...(m.maintenance || []).map((w) => ({ ...w, kind: "maintenance" }))]
      .filter((d) => finite(d.start) && finite(d.end));
  }
  function opSpec(job, opId) {
    const j = (st.problem?.jobs || []).find((x) => String(x.id) === String(job));
    if (!j) return null;
    return j.operations.find((op, i) => String(op.id ?? i) === String(opId)) || null;
  }
  function jobColour(job) {
    const idx = (st.problem?.jobs || []).findIndex((x) => String(x.id) === String(job));
    return PALETTE[(idx < 0 ? 0 : idx) % PALETTE.length];
  }
  const x = (tt) => o.labelW + (tt - st.t0) * st.scale;
  // the last time unit the view shows at its width
  const viewEnd = () => st.t0 + (st.width - o.labelW) / st.scale;

  function fit() {
    st.width = Math.max(MIN_WIDTH, container.clientWidth || 800);
    st.tMax = planExtent(st.problem, st.result);
    st.t0 = 0;
    st.scale = (st.width - o.labelW - 16) / (st.tMax * 1.04);
    draw();
  }

  function zoomBy(f, px) {
    const cx = px ?? o.labelW + (st.width - o.labelW) / 2;
    const tAt = st.t0 + (cx - o.labelW) / st.scale;
    st.scale = Math.min(80, Math.max(0.01, st.scale * f));
    st.t0 = tAt - (cx - o.labelW) / st.scale;
    draw();
  }

  // The axis of a plan with a clock: ticks at round times of day (whole hours, 00:00, ...; weeks from a Monday) as
  // HH:MM, and above them the date (with the weekday, where the ticks are hours apart) at the first tick in view and
  // wherever the day changes, midnight's grid line darker.
  function drawClockAxis(plot, clk, tEnd, H, axisH) {
    const stepMin = niceStep((84 / st.scale) * clk.mpu); // minutes between ticks (a date and a time are wider)
    const align = stepMin % 10080 === 0 ? 4 * 1440 : 0; // 1970-01-05 was a Monday
    const base = clk.wall / 60000;
    const last = base + tEnd * clk.mpu;
    const dateFmt = new Intl.DateTimeFormat(o.locale(), { month: "short", day: "numeric", timeZone: "UTC",
      ...(stepMin < 1440 ? { weekday: "short" } : {}) });
    let shownDate = null;
    for (let k = Math.floor((base + st.t0 * clk.mpu - align) / stepMin); k * stepMin + align <= last; k++) {
      const wall = k * stepMin + align;
      const xx = x((wall - base) / clk.mpu);
      const p = wallParts(wall * 60000);
      const midnight = p.time === "00:00";
      svgEl("line", { x1: xx, y1: midnight ? 2 : axisH - 4, x2: xx, y2: H, stroke: midnight ? "#c9d4df" : "#eef1f4", class: midnight ? "day-line" : null,
        "pointer-events": "none" }, plot);
      svgEl("text", { x: xx + 3, y: axisH - 9, fill: "#5f6d7b", "font-size": 11, class: "axis-tick", "data-date": p.date, "pointer-events": "none" }, plot)
        .textContent = p.time;
      if (xx >= o.labelW - 0.5 && p.date !== shownDate) {
        shownDate = p.date;
        svgEl("text", { x: xx + 3, y: 11, fill: "#3d4a57", "font-size": 11, "font-weight": 600, class: "axis-date", "data-date": p.date,
          "pointer-events": "none" }, plot).textContent = dateFmt.format(new Date(wall * 60000));
      }
    }
  }

  // On a phone, each bar's target across (rect.hit): its own span, widened to TARGET px where it is narrower, into the
  // free time on either side: up to half way to the next bar of its machine, and on the left up to where the previous
  // bar's target ends (so that one bar's unused half goes to its neighbour); never into the machine column, past the
  // chart's right edge or over another bar's target. Map of a gantt row to [left, right] in px.
  function hitSpans(mids) {
    const spans = new Map();
    for (const mid of mids) {
      const row = rowOps(mid);
      let floor = -Infinity; // where the previous bar's target ends
      row.forEach((r, k) => {
        const xs = x(r.start);
        const xe = xs + Math.max(2, (r.end - r.start) * st.scale);
        let span = [xs, xe];
        if (xe - xs < TARGET) {
          const next = row[k + 1];
          const lo = Math.max(Math.min(xs, o.labelW), Math.min(xs, floor));
          let hi = Math.max(xe, st.width);
          if (next) hi = Math.min(hi, Math.max(xe, (xe + x(next.start)) / 2));
          const centred = xs - (TARGET - (xe - xs)) / 2; // the target's left edge, centred on the bar
          const right = Math.min(hi, Math.max(lo, centred) + TARGET);
          span = [Math.max(lo, Math.min(centred, right - TARGET)), right];
        }
        spans.set(r, span);
        floor = span[1];
      });
    }
    return spans;
  }

  function draw() {
    // a bar that had the focus is drawn anew: the new one gets it (a re-plan, a wheel zoom), not <body>
    const hadFocus = !!st.result && container.contains(document.activeElement) && document.activeElement !== container;
    container.innerHTML = "";
    if (!st.result) return;
    const mids = machines();
    const clk = planClock(st.result);
    const axisH = o.axisH + (clk ? 13 : 0);
    st.axisH = axisH;
    st.roomy = o.interactive && o.narrow();
    const rowH = st.roomy ? Math.max(o.rowH, ROOMY.rowH) : o.rowH;
    const barH = st.roomy ? Math.max(o.barH, ROOMY.barH) : o.barH;
    Object.assign(st, { rowH, barH });
    // times in words: on the plan's clock where it has one ("2026-12-08 06:00–07:30"), else plan units ("360–450")
    const span = (a, b) => (clk ? clockRange(clk, a, b) : `${a}–${b}`);
    const H = axisH + mids.length * rowH + 8;
    const W = st.width;
    // a chart with bars to act on is no image (an image's children are presentational): its box (#gantt, a
    // labelled group) names it; a chart only to look at (the what-if pair) is an image with a name
    const svg = svgEl("svg", { xmlns: SVGNS, width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif", "font-size": 12,
      role: o.interactive ? "none" : "img" });
    if (!o.interactive) svg.setAttribute("aria-label", o.label("planner.ganttLabel"));
    const defs = svgEl("defs", {}, svg);
    const hatch = (id, colour, bg) => {
      const p = svgEl("pattern", { id, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
      svgEl("rect", { width: 6, height: 6, fill: bg }, p);
      svgEl("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: colour, "stroke-width": 2.5 }, p);
    };
    hatch(`${uid}-setup`, "#9aa5b1", "#eef1f4");
    hatch(`${uid}-maint`, "#e07b00", "#fff1de");
    const clip = svgEl("clipPath", { id: `${uid}-clip` }, defs);
    svgEl("rect", { x: o.labelW, y: 0, width: W - o.labelW, height: H }, clip);

    const bg = svgEl("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff", class: "g-bg" }, svg);
    bg.style.cursor = o.interactive ? "grab" : "default";
    const plot = svgEl("g", { "clip-path": `url(#${uid}-clip)` }, svg);

    // axis and grid
    const tEnd = st.t0 + (W - o.labelW) / st.scale;
    if (clk) drawClockAxis(plot, clk, tEnd, H, axisH);
    else {
      const step = niceStep(70 / st.scale);
      const tStart = Math.floor(st.t0 / step) * step;
      for (let tt = tStart; tt <= tEnd; tt += step) {
        const xx = x(tt);
        svgEl("line", { x1: xx, y1: axisH - 4, x2: xx, y2: H, stroke: "#eef1f4", "pointer-events": "none" }, plot);
        const lab = svgEl("text", { x: xx + 3, y: axisH - 9, fill: "#5f6d7b", "font-size": 11, class: "axis-tick", "pointer-events": "none" }, plot);
        lab.textContent = String(tt);
      }
    }
    // rows
    mids.forEach((mid, i) => {
      const y = axisH + i * rowH;
      svgEl("line", { x1: 0, y1: y + rowH, x2: W, y2: y + rowH, stroke: "#e3e8ee", "pointer-events": "none" }, svg);
      for (const d of downtimes(mid)) {
        const maint = d.kind === "maintenance";
        const r = svgEl("rect", { x: x(d.start), y: y + 2, width: Math.max(1, (d.end - d.start) * st.scale), height: rowH - 4,
          fill: maint ? `url(#${uid}-maint)` : d.kind === "break" ? "#e4e7eb" : "#cfd5dc", class: `downtime ${d.kind}`, "pointer-events": "none" }, plot);
        const tip = svgEl("title", {}, r);
        tip.textContent = `${mid}: ${d.kind ? o.label("kind." + d.kind) : ""} ${span(d.start, d.end)}`;
      }
    });
    // due-date ticks of late jobs
    const late = lateJobIds(st.result);
    // bars
    const rows = st.result.gantt || [];
    // one tab stop for the whole chart (a roving tabindex): the bar last moved to, else the first bar of the first row
    const ops = rows.filter((r) => r.job !== null && r.job !== undefined);
    if (!ops.some((r) => same(r, st.active))) {
      const first = [...ops].sort((a, b) => mids.indexOf(a.machine) - mids.indexOf(b.machine) || a.start - b.start)[0];
      st.active = first ? keyOf(first) : null;
    }
    const hits = st.roomy ? hitSpans(mids) : null; // on a phone: each bar's target across
    rows.forEach((r) => {
      const i = mids.indexOf(r.machine);
      const y = axisH + i * rowH + (rowH - barH) / 2;
      if (r.job === null || r.job === undefined) { // a maintenance window from the failure-risk policy
        const w = svgEl("rect", { x: x(r.start), y: y - 4, width: Math.max(1, (r.end - r.start) * st.scale), height: barH + 8,
          fill: `url(#${uid}-maint)`, stroke: "#e07b00", class: "downtime maintenance", "pointer-events": "none" }, plot);
        // the failure-risk service, and the machine's risk: not to be read as a calendar maintenance
        const risk = typeof r.risk === "number" ? ` (${o.label("kind.risk")} ${(100 * r.risk).toFixed(1)} %)` : "";
        const why = r.reason === "failure risk (after pinned work)" ? ` — ${o.label("kind.afterPins")}`
          : r.reason === "failure risk (waiting for a crew)" ? ` — ${o.label("kind.afterCrews")}` : "";
        svgEl("title", {}, w).textContent = `${r.machine}: ${o.label("kind.riskMaintenance")}${risk} ${span(r.start, r.end)}${why}`;
        return;
      }
      if (r.setup > 0) { // where the changeover lies: in working time, maybe before a downtime the operation waits behind
        const s0 = Number.isFinite(r.setup_start) ? r.setup_start : r.start - r.setup;
        svgEl("rect", { x: x(s0), y: y + 3, width: r.setup * st.scale, height: barH - 6, fill: `url(#${uid}-setup)`,
          stroke: "#9aa5b1", "stroke-width": 0.5, class: "setup", "data-start": s0, "pointer-events": "none" }, plot);
      }
      const spec = opSpec(r.job, r.operation);
      const pinned = !!(spec && (spec.pinned || spec.started));
      const isLate = late.has(String(r.job));
      const g = svgEl("g", { class: `op${isLate ? " late" : ""}${pinned ? " pinned" : ""}`, "data-job": r.job, "data-op": r.operation,
        "data-machine": r.machine, "data-start": r.start, "data-end": r.end, "data-late": isLate, "data-pinned": pinned }, plot);
      if (o.interactive) {
        g.setAttribute("tabindex", same(r, st.active) ? "0" : "-1");
        g.setAttribute("role", "button");
        // its name in words with the unit, late and pinned included (not told by colour alone)
        const name = clk ? o.label("gantt.barNameClock", { job: r.job, op: r.operation, machine: r.machine, ...clockSpan(clk, r.start, r.end) })
          : o.label("gantt.barName", { job: r.job, op: r.operation, machine: r.machine, start: r.start, end: r.end });
        g.setAttribute("aria-label", name +
          (isLate ? ", " + o.label("gantt.barLate") : "") + (pinned ? ", " + o.label("gantt.barPinned") : ""));
        g.style.cursor = "move";
      }
      const sel = st.selected && st.selected.job === r.job && st.selected.operation === r.operation;
      const w = Math.max(2, (r.end - r.start) * st.scale);
      if (st.roomy && o.interactive) { // a finger's target: 44 px high, and as wide where the free time beside it allows
        const [left, right] = hits.get(r) || [x(r.start), x(r.start) + w];
        svgEl("rect", { class: "hit", x: left, y: y + barH / 2 - TARGET / 2, width: right - left, height: TARGET, fill: "none",
          "pointer-events": "all" }, g);
      }
      // keyboard focus: a white and a dark ring outside the bar, seen on every fill; the bar's own (late) border stays
      svgEl("rect", { class: "focus-ring", x: x(r.start) - 4.5, y: y - 4.5, width: w + 9, height: barH + 9, rx: 5, fill: "none",
        stroke: "#14324f", "stroke-width": 2, visibility: "hidden", "pointer-events": "none" }, g);
      svgEl("rect", { class: "focus-ring", x: x(r.start) - 2.5, y: y - 2.5, width: w + 5, height: barH + 5, rx: 4, fill: "none",
        stroke: "#ffffff", "stroke-width": 2, visibility: "hidden", "pointer-events": "none" }, g);
      const fill = jobColour(r.job);
      svgEl("rect", { class: "body", x: x(r.start), y, width: w, height: barH, rx: 3, fill,
        stroke: isLate ? "#d92d20" : sel ? "#14324f" : "#ffffff", "stroke-width": isLate ? 3 : sel ? 3 : 1 }, g);
      if (isLate) { // late, not by colour alone: a red triangle above the bar's end, outside it (seen on a bar 2 px wide)
        const xe = x(r.start) + w;
        svgEl("path", { class: "late-mark", d: `M${xe - 5},${y - 7} L${xe + 1},${y - 7} L${xe - 2},${y - 1} Z`, fill: "#b42318",
          stroke: "#ffffff", "stroke-width": 0.75, "pointer-events": "none" }, g);
      }
      if (pinned) {
        const px = x(r.start) + 2;
        svgEl("circle", { cx: px + 5, cy: y + 6, r: 4, fill: "#14324f", stroke: "#fff", "stroke-width": 1, class: "pin" }, g);
        svgEl("line", { x1: px + 5, y1: y + 10, x2: px + 5, y2: y + barH - 3, stroke: "#14324f", "stroke-width": 2, class: "pin" }, g);
      }
      const label = `${r.job}${isLate ? " !" : ""}`;
      if (w > textWidth(label, `${isLate ? 700 : 500} 11.5px ${FONT}`) + (pinned ? 18 : 8)) {
        const tx = svgEl("text", { x: x(r.start) + (pinned ? 14 : 4), y: y + barH / 2 + 4, fill: labelColour(fill), "font-size": 11.5,
          "font-weight": isLate ? 700 : 500, "pointer-events": "none" }, g);
        tx.textContent = label;
      }
      svgEl("title", {}, g).textContent = `${r.job} / ${r.operation}: ${r.machine} ${span(r.start, r.end)}` +
        (r.setup ? ` (${o.label("col.setup")} ${r.setup})` : "") + (isLate ? ` · ${o.label("legend.late")}` : "");
      if (o.interactive) wireBar(g, r, svg, mids);
    });
    // machine labels on top, fixed; a name too long for the column is cut with an ellipsis, whole in its tooltip
    svgEl("rect", { x: 0, y: 0, width: o.labelW, height: H, fill: "#f7f9fb", "pointer-events": "none" }, svg);
    const unit = svgEl("text", { x: 8, y: axisH - 9, fill: "#5f6d7b", "font-size": 11, class: "axis-unit", "pointer-events": "none" }, svg);
    // with a clock: the times' heading, and their UTC offset where the clock has one
    unit.textContent = fitText(clk ? o.label("gantt.axisClock") + (clk.offset ? ` ${clk.offset}` : "") : o.label("gantt.axisUnit"),
      o.labelW - 12, `400 11px ${FONT}`);
    mids.forEach((mid, i) => {
      const name = String(mid);
      const shown = fitText(name, o.labelW - 14, `600 12px ${FONT}`);
      const cut = shown !== name;
      const row = svgEl("g", { class: "machine-row", "data-machine": name }, svg);
      if (cut) svgEl("title", {}, row).textContent = name;
      const tx = svgEl("text", { x: 8, y: axisH + i * rowH + rowH / 2 + 4, fill: "#1d2733", "font-weight": 600, class: "machine-label",
        "data-machine": name, "pointer-events": cut ? "visiblePainted" : "none" }, row);
      tx.textContent = shown;
    });
    if (o.interactive) wirePan(bg, svg);
    container.appendChild(svg);
    if (hadFocus && o.interactive) refocus(st.active, { preventScroll: true }); // the page stays where it was
  }

  function rowAt(svg, clientY, mids) {
    const box = svg.getBoundingClientRect();
    const i = Math.floor((clientY - box.top - st.axisH) / st.rowH);
    return mids[Math.max(0, Math.min(mids.length - 1, i))];
  }

  function wireBar(g, r, svg, mids) {
    let start = null; // the pointer held on the bar: where it went down, and whether the bar is picked up (`armed`)
    let moved = false;
    let timer = null;
    const drop = () => {
      clearTimeout(timer);
      start = null;
      g.removeAttribute("transform");
      g.removeAttribute("opacity");
    };
    g.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.stopPropagation();
      const touch = e.pointerType !== "mouse";
      start = { x: e.clientX, y: e.clientY, id: e.pointerId, touch, armed: !touch };
      moved = false;
      clearTimeout(timer);
      if (touch) { // a finger picks the bar up once held still; until then a swipe is the browser's (a scroll)
        timer = setTimeout(() => {
          if (!start) return;
          start.armed = true;
          g.setAttribute("opacity", "0.75");
        }, LONG_PRESS_MS);
      } else g.setPointerCapture(e.pointerId);
    });
    g.addEventListener("pointermove", (e) => {
      if (!start || e.pointerId !== start.id) return;
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      if (!start.armed) { // a finger that moves before the bar is picked up: not a drag (nor a tap)
        if (Math.hypot(dx, dy) > TOUCH_SLOP) drop();
        return;
      }
      if (!moved && Math.hypot(dx, dy) < 4) return;
      if (!moved && !g.hasPointerCapture(e.pointerId)) g.setPointerCapture(e.pointerId);
      moved = true;
      g.setAttribute("transform", `translate(${dx},${dy})`);
      g.setAttribute("opacity", "0.75");
    });
    // once picked up, the finger's moves drag the bar instead of scrolling the page
    g.addEventListener("touchmove", (e) => { if (start?.armed && e.cancelable) e.preventDefault(); }, { passive: false });
    g.addEventListener("contextmenu", (e) => { if (start?.touch) e.preventDefault(); }); // not the long press's menu
    const finish = (e, cancelled) => {
      if (!start || e.pointerId !== start.id) return;
      const dx = e.clientX - start.x;
      drop();
      if (cancelled) return; // the browser took the gesture (a scroll): nothing is pinned
      if (!moved) { select(r); return; }
      const machine = rowAt(svg, e.clientY, mids);
      const newStart = Math.max(0, Math.round(r.start + dx / st.scale));
      if (o.onPin) o.onPin(r, machine, newStart);
    };
    g.addEventListener("pointerup", (e) => finish(e, false));
    g.addEventListener("pointercancel", (e) => finish(e, true));
    g.addEventListener("keydown", (e) => onKey(e, r, mids));
    // the bar focused is the chart's tab stop; one focused from the keyboard (Tab after a zoom) is panned into view
    g.addEventListener("focus", () => {
      st.active = keyOf(r);
      for (const other of container.querySelectorAll("g.op[tabindex='0']")) if (other !== g) other.setAttribute("tabindex", "-1");
      g.setAttribute("tabindex", "0");
      if (!st.noPan && g.matches(":focus-visible") && !inView(r)) { panTo(r); refocus(r); }
    });
  }

  const inView = (r) => r.start >= st.t0 - 1e-9 && r.end <= viewEnd() + 1e-9;
  // the view moved so that `r` shows whole (its start, where it is wider than the view), its zoom kept
  function panTo(r) {
    const span = viewEnd() - st.t0;
    const pad = Math.min(span * 0.05, 20 / st.scale);
    if (r.end - r.start + 2 * pad > span || r.start < st.t0) st.t0 = r.start - pad;
    else st.t0 = r.end + pad - span;
    draw();
  }
  // focus the bar `k` of the chart as drawn now, without its focus moving the view
  function refocus(k, how = {}) {
    const el = barEl(k);
    if (!el) return;
    st.noPan = true;
    try { el.focus(how); } finally { st.noPan = false; }
  }
  // the bars of a machine's row in time order
  const rowOps = (mid) => (st.result?.gantt || []).filter((q) => q.machine === mid && q.job !== null && q.job !== undefined)
    .sort((a, b) => a.start - b.start || a.end - b.end);

  // keys on a bar: arrows move between bars (left/right along the machine, up/down to the nearest bar of the next
  // machine with bars), Home/End the row's first/last; Enter or Space opens the details; Shift+arrows pan; + and -
  // zoom about the bar, 0 fits the plan
  function onKey(e, r, mids) {
    const mid = mids.indexOf(r.machine);
    let to = null;
    if (e.shiftKey && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      e.preventDefault();
      st.t0 += ((e.key === "ArrowLeft" ? -1 : 1) * (viewEnd() - st.t0)) / 4;
      draw();
      refocus(r);
      return;
    }
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(r); return; }
    if (e.key === "+" || e.key === "=" || e.key === "-" || e.key === "0") {
      e.preventDefault();
      if (e.key === "0") { fit(); refocus(r); return; }
      zoomBy(e.key === "-" ? 1 / 1.5 : 1.5, x((r.start + r.end) / 2));
      if (!inView(r)) panTo(r);
      refocus(r);
      return;
    }
    const row = rowOps(r.machine);
    const at = row.findIndex((q) => same(q, r));
    if (e.key === "ArrowRight") to = row[at + 1];
    else if (e.key === "ArrowLeft") to = row[at - 1];
    else if (e.key === "Home") to = row[0];
    else if (e.key === "End") to = row[row.length - 1];
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const dir = e.key === "ArrowDown" ? 1 : -1;
      for (let i = mid + dir; i >= 0 && i < mids.length && !to; i += dir) {
        const near = rowOps(mids[i]);
        const c = (r.start + r.end) / 2;
        to = near.reduce((best, q) => (!best || Math.abs((q.start + q.end) / 2 - c) < Math.abs((best.start + best.end) / 2 - c) ? q : best), null);
      }
    } else return;
    e.preventDefault();
    if (!to) return;
    st.active = keyOf(to);
    if (!inView(to)) panTo(to);
    refocus(to);
  }

  function select(r) {
    st.selected = keyOf(r);
    st.active = keyOf(r);
    draw();
    refocus(r);
    if (o.onSelect) o.onSelect(r);
  }

  function wirePan(bg, svg) {
    bg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      const start = { x: e.clientX, t0: st.t0 };
      bg.style.cursor = "grabbing";
      const move = (ev) => { if (ev.pointerId === e.pointerId) { st.t0 = start.t0 - (ev.clientX - start.x) / st.scale; draw(); } };
      const up = (ev) => {
        if (ev.pointerId !== e.pointerId) return;
        for (const [type, fn] of [["pointermove", move], ["pointerup", up], ["pointercancel", up]]) window.removeEventListener(type, fn);
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
      window.addEventListener("pointercancel", up); // a vertical swipe the browser took as a scroll
    });
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = svg.getBoundingClientRect();
      zoomBy(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - box.left);
    }, { passive: false });
  }

  return {
    // `keepView`: keep the zoom and pan (a re-plan after a pin, a language switch, a resize), unless the plan's
    // end was in view and the new plan's is not (a longer plan, a narrower window): then it is fitted again, so
    // that no bar lies off-screen unseen. A view zoomed into part of the plan stays as it is.
    render(problem, result, { keepView = false } = {}) {
      const endWasShown = !!st.result && st.scale > 0 && planExtent(st.problem, st.result) <= viewEnd();
      st.problem = problem;
      st.result = result;
      if (keepView && st.scale) {
        st.width = Math.max(MIN_WIDTH, container.clientWidth || 800);
        if (!endWasShown || planExtent(problem, result) <= viewEnd()) { draw(); return; }
      }
      fit();
    },
    fit,
    zoomBy,
    redraw: draw,
    select,
    clearSelection() { st.selected = null; draw(); },
    // forget the plan, the view and the selection (a sign-out): the next one starts afresh
    clear() { Object.assign(st, { problem: null, result: null, selected: null, active: null, t0: 0, scale: 0 }); container.innerHTML = ""; },
    svg: () => container.querySelector("svg"),
    view: () => ({ t0: st.t0, scale: st.scale }),
  };
}

// Draw an SVG element onto a canvas (SVG -> Image -> canvas) at `scale` times its size, on white.
function svgToCanvas(svg, scale = 2) {
  return new Promise((resolve, reject) => {
    const w = Number(svg.getAttribute("width"));
    const h = Number(svg.getAttribute("height"));
    const text = new XMLSerializer().serializeToString(svg);
    const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml;charset=utf-8" }));
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = w * scale;
      canvas.height = h * scale;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.scale(scale, scale);
      ctx.drawImage(img, 0, 0, w, h);
      URL.revokeObjectURL(url);
      resolve(canvas);
    };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error("cannot draw the chart")); };
    img.src = url;
  });
}

// Serialise an SVG element into a PNG data URL.
async function svgToPng(svg, scale = 2) {
  return (await svgToCanvas(svg, scale)).toDataURL("image/png");
}
