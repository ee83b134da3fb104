/* app.js - the live dashboard: one WebSocket, a top-skills table with sparklines, anomalies,
 * a per-skill drill-down, and reconnection with backoff that resumes the stream where it broke
 * off (subscribe with `since`). The charts load their history (get_history) on arrival and grow
 * with the live updates. Plain DOM, no dependencies.
 *
 * Everything that comes off the wire (skill names above all) is hostile data: it only ever
 * reaches the page through textContent, setAttribute and dataset, never through innerHTML. */
(function () {
  "use strict";

  var SPARK = { window: 3600, step: 60 };   // trend sparklines: the last hour, per minute
  var DAY = { window: 86400, step: 900 };   // drill-down charts: the last 24 h, per 15 min
  var RECOVERED_NOTICE_MS = 8000;           // how long "nothing lost" stays up
  var BACKOFF_MIN = 500;         // ms, first reconnect delay
  var BACKOFF_MAX = 10000;       // ms, ceiling
  var SILENCE_PING_MS = 15000;   // no message this long: ask the server for a pong
  var SILENCE_DROP_MS = 25000;   // still nothing: the connection is dead, reconnect
  var SVG_NS = "http://www.w3.org/2000/svg";

  var TYPE_LABELS = {
    performance_drop: "Completion drop",
    performance_spike: "Completion spike",
    pattern_shift: "Duration shift"
  };

  var state = {
    ws: null,
    url: wsUrl(),
    attempt: 0,               // reconnect attempts since the last good connection
    retryTimer: null,
    retryAt: 0,
    watchdog: null,
    lastMessageAt: 0,
    pinged: false,
    skill: null,              // drill-down subscription; null = all skills
    awaitingConfirm: false,   // updates in the old subscription's form are ignored until confirmed
    lastUpdate: null,         // the latest metrics_update shown
    stale: false,
    stream: noStream(),       // where the shown stream stands: resume from here after a reconnect
    resume: null,             // the `since` of the subscribe awaiting its confirmation
    series: new Map(),        // seriesKey(range, skill) -> history of one chart (see newSeries)
    historyAsked: [],         // keys of get_history requests in flight, oldest first
    noticeTimer: null,
    rows: new Map(),          // skill -> <tr> of the overview table
    metrics: null,            // the latest metrics_response.data for the drill-down skill
    askedTotal: null          // total_invocations when get_metrics was last sent
  };

  var $ = function (id) { return document.getElementById(id); };

  /* ---------- formatting ---------- */

  var intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function fmtInt(n) { return n == null ? "—" : intFmt.format(n); }

  function fmtPct(x) {
    if (x == null || !isFinite(x)) return "—";
    var p = Math.round(x * 1000) / 10;   // one decimal, dropped when it is .0
    return (p % 1 === 0 ? p.toFixed(0) : p.toFixed(1)) + "%";
  }

  function fmtDuration(s) {
    if (s == null || !isFinite(s)) return "—";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.round(s - m * 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  /* Signed with a real minus sign: "+2.31", "−4.07". */
  function fmtSigned(z) {
    if (z == null || !isFinite(z)) return "—";
    return (z < 0 ? "\u2212" : "+") + Math.abs(z).toFixed(2);
  }

  function parseTs(text) {
    if (typeof text !== "string") return NaN;
    return Date.parse(text);
  }

  /* "12 s ago", measured against the server's clock (the update's timestamp), not the browser's. */
  function fmtAgo(ts, nowMs) {
    var t = parseTs(ts);
    if (!isFinite(t)) return "—";
    var d = Math.round((nowMs - t) / 1000);
    if (d < 2) return "just now";
    if (d < 60) return d + " s ago";
    if (d < 3600) return Math.floor(d / 60) + " min ago";
    if (d < 86400) return Math.floor(d / 3600) + " h ago";
    return Math.floor(d / 86400) + " d ago";
  }

  function fmtClock(ts) {
    var t = parseTs(ts);
    if (!isFinite(t)) return "—";
    return new Date(t).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function fmtFull(ts) {
    var t = parseTs(ts);
    return isFinite(t) ? new Date(t).toLocaleString() : "";
  }

  /* Anomaly values: completion types are shares, pattern_shift is seconds. */
  function fmtAnomalyValue(type, v) {
    return type === "pattern_shift" ? fmtDuration(v) : fmtPct(v);
  }

  function windowRate(e) {
    if (e.invocation_count > 0 && e.completed_count != null) return e.completed_count / e.invocation_count;
    return e.completion_rate;
  }

  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }

  /* ---------- DOM helpers ---------- */

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  }

  function svgEl(tag, attrs) {
    var n = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    return n;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  /* text null: the cell has child elements of its own, leave them. */
  function setCell(td, text, value, title) {
    if (text != null) setText(td, text);
    td.setAttribute("data-value", value == null ? "" : String(value));
    if (title) td.title = title; else td.removeAttribute("title");
  }

  /* ---------- charts ---------- */

  /* Fill an <svg> (viewBox 0 0 w h) with a line for `values`, one per bucket, oldest first,
   * spread over the whole width (and the area under it when `area`). A null value (a bucket
   * without a rate) breaks the line. Min-max scaled (from opts.min, opts.max when given) so a
   * small movement stays visible; when nothing moves, flat at opts.min, or in the middle. data-points counts the values drawn, data-values lists them. */
  function drawLine(svg, values, w, h, opts) {
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var finite = values.filter(function (v) { return v != null && isFinite(v); });
    svg.setAttribute("data-points", String(finite.length));
    svg.setAttribute("data-values", values.map(function (v) { return v == null ? "" : String(v); }).join(","));
    var pad = h > 40 ? 8 : 3;
    // A faint base line over the whole width: an empty chart reads as "no history yet".
    svg.appendChild(svgEl("line", { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, "class": "spark-base" }));
    if (!finite.length) return;
    var lo = opts.min != null ? opts.min : Math.min.apply(null, finite);
    var hi = opts.max != null ? opts.max : Math.max.apply(null, finite);
    var step = values.length > 1 ? (w - 2 * pad) / (values.length - 1) : 0;
    var runs = [], run = null, last = null;
    values.forEach(function (v, i) {
      if (v == null || !isFinite(v)) { run = null; return; }
      var y = hi === lo ? (opts.min != null ? h - pad : h / 2) : pad + (h - 2 * pad) * (1 - (v - lo) / (hi - lo));
      last = [values.length > 1 ? pad + step * i : w - pad, y];
      if (!run) { run = []; runs.push(run); }
      run.push(last);
    });
    runs.forEach(function (coords) {
      if (coords.length < 2) {   // a bucket alone between empty ones: a point, not a line
        svg.appendChild(svgEl("circle", { cx: coords[0][0].toFixed(1), cy: coords[0][1].toFixed(1), r: 1.5, "class": "spark-dot" }));
        return;
      }
      var line = coords.map(function (c) { return c[0].toFixed(1) + "," + c[1].toFixed(1); }).join(" ");
      if (opts.area) {
        var area = coords[0][0].toFixed(1) + "," + h + " " + line + " " + coords[coords.length - 1][0].toFixed(1) + "," + h;
        svg.appendChild(svgEl("polygon", { points: area, "class": "spark-area" }));
      }
      svg.appendChild(svgEl("polyline", { points: line, "class": "spark-line" }));
    });
    svg.appendChild(svgEl("circle", { cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: opts.area ? 3 : 2, "class": "spark-dot" }));
  }

  /* The drill-down charts: drawn in the element's own pixel size, so nothing is stretched. */
  function drawChart(svg, values, min, max) {
    var w = Math.max(50, Math.round(svg.clientWidth || 400));
    var h = Math.max(20, Math.round(svg.clientHeight || 110));
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    drawLine(svg, values, w, h, { area: true, min: min, max: max });
  }

  /* Where the buckets of a drawn series start, so its values can be read against time. */
  function markSeries(svg, s) {
    if (s && s.status === "ready") {
      svg.setAttribute("data-start", new Date(s.startMs).toISOString());
      svg.setAttribute("data-step", String(s.step));
    } else {
      svg.removeAttribute("data-start");
      svg.removeAttribute("data-step");
    }
  }

  /* ---------- history ---------- */

  /* One chart's buckets: loaded by get_history, then advanced by every live update. An update
   * adds the invocations it counted (the growth of total_invocations since the one before) to
   * the bucket of its timestamp, and rolls the window forward when a new bucket begins. So a
   * row written late with an old invoked_at is drawn when it was counted, until the next load. */
  function newSeries(range) {
    return {
      step: range.step,
      status: "pending",      // "pending" (asked), "ready" (drawn), "none" (the server has no data)
      startMs: 0, counts: [], completed: [],
      total: null, done: null // all-time invocations / completions at the last update seen
    };
  }

  function seriesKey(range, skill) { return range.window + "/" + range.step + "/" + skill; }

  function seriesFor(range, skill) { return state.series.get(seriesKey(range, skill)); }

  /* Ask for a chart's history once; the answer comes as history_response (or an error). */
  function ensureSeries(range, skill) {
    var key = seriesKey(range, skill);
    if (state.series.has(key)) return;
    state.series.set(key, newSeries(range));
    state.historyAsked.push({ key: key, skill: skill });
    send({ type: "get_history", skill_name: skill, window: range.window, step: range.step });
  }

  /* Forget every chart's history: each is asked again when its skill next shows. Requests in
   * flight stay in historyAsked, since their answers (or errors) still come. */
  function forgetSeries() {
    state.series.clear();
  }

  /* The connection is gone, and with it every answer still owed: ask again on the next one. */
  function dropPendingSeries() {
    state.historyAsked = [];
    state.series.forEach(function (s, key) { if (s.status === "pending") state.series.delete(key); });
  }

  function onHistory(msg) {
    if (!Array.isArray(msg.points) || typeof msg.skill_name !== "string") return;
    var key = seriesKey(msg, msg.skill_name);
    var at = state.historyAsked.findIndex(function (a) { return a.key === key; });
    if (at >= 0) state.historyAsked.splice(at, 1);
    var s = state.series.get(key);
    if (!s || s.status !== "pending") return;   // forgotten meanwhile (resubscribed, reloaded)
    var start = msg.points.length ? parseTs(msg.points[0].t) : NaN;
    if (!isFinite(start)) { s.status = "none"; redrawSeries(msg.skill_name); return; }
    s.status = "ready";
    s.startMs = start;
    s.counts = msg.points.map(function (p) { return num(p.invocation_count) || 0; });
    s.completed = msg.points.map(function (p) { return num(p.completed_count) || 0; });
    redrawSeries(msg.skill_name);
  }

  /* Errors carry no skill: they answer the oldest request in flight. rate_limited is asked
   * again on the next update; unknown_skill (no data) and the rest draw an empty chart. */
  function onHistoryError(msg) {
    var asked = state.historyAsked.shift();
    var s = asked && state.series.get(asked.key);
    if (!s || s.status !== "pending") return;
    if (msg.code === "rate_limited") { state.series.delete(asked.key); return; }
    s.status = "none";
    redrawSeries(asked.skill);
  }

  /* The bucket index for a time, rolling the window forward first when it is past the end;
   * -1 when the time is before the first bucket. */
  function bucketIndex(s, tMs) {
    var stepMs = s.step * 1000;
    var i = Math.floor((tMs - s.startMs) / stepMs);
    var n = s.counts.length;
    if (i < n) return i;
    var shift = i - n + 1;
    for (var k = 0; k < Math.min(shift, n); k++) {
      s.counts.shift(); s.counts.push(0);
      s.completed.shift(); s.completed.push(0);
    }
    s.startMs += shift * stepMs;
    return n - 1;
  }

  function completedEver(e) {
    var total = num(e.total_invocations), rate = num(e.completion_rate);
    return total == null || rate == null ? null : Math.round(total * rate);
  }

  /* Apply one live update's entry for this series' skill (see newSeries). */
  function advanceSeries(s, entry, tMs) {
    var total = num(entry.total_invocations), done = completedEver(entry);
    if (s.status === "ready" && isFinite(tMs)) {
      var i = bucketIndex(s, tMs);
      if (i >= 0 && s.total != null && total != null) {
        s.counts[i] += Math.max(0, total - s.total);
        if (done != null && s.done != null) s.completed[i] += Math.max(0, done - s.done);
      }
    }
    s.total = total;
    s.done = done;
  }

  function bucketRates(s) {
    return s.counts.map(function (c, i) { return c > 0 ? s.completed[i] / c : null; });
  }

  /* Draw what a skill's loaded history shows right now (called when it arrives). */
  function redrawSeries(skill) {
    if (state.skill == null) {
      var tr = state.rows.get(skill);
      if (tr) drawSpark(tr, skill);
    } else if (skill === state.skill) {
      drawDayCharts(skill);
    }
  }

  function drawSpark(tr, skill) {
    var s = seriesFor(SPARK, skill);
    drawLine(tr._svg, s && s.status === "ready" ? s.counts : [], 112, 26, { min: 0 });
    markSeries(tr._svg, s);
  }

  function drawDayCharts(skill) {
    var s = seriesFor(DAY, skill);
    var ready = s && s.status === "ready";
    drawChart($("chart-count"), ready ? s.counts : [], 0);
    drawChart($("chart-rate"), ready ? bucketRates(s) : [], 0, 1);
    markSeries($("chart-count"), s);
    markSeries($("chart-rate"), s);
  }

  /* ---------- overview table ---------- */

  function makeRow(skill) {
    var tr = el("tr");
    tr.dataset.skill = skill;
    tr.tabIndex = 0;
    var cells = {
      rank: el("td", "r num rank"),
      skill: el("td", "skill"),
      invocation_count: el("td", "r num"),
      invocation_count_1h: el("td", "r num"),
      completion: el("td", "rate"),
      avg_duration: el("td", "r num"),
      spark: el("td", "spark"),
      last_invocation_at: el("td", "r num muted")
    };
    var name = el("span", "skill-name", skill);
    name.title = skill;
    var flag = el("span", "flag", "anomaly");
    cells.skill.appendChild(name);
    cells.skill.appendChild(flag);
    var meter = el("span", "meter");
    var fill = el("span", "meter-fill");
    meter.appendChild(fill);
    cells.completion.appendChild(el("span", "num rate-text"));
    cells.completion.appendChild(meter);
    var svg = svgEl("svg", { viewBox: "0 0 112 26", "class": "sparkline" });
    cells.spark.appendChild(svg);
    Object.keys(cells).forEach(function (k) {
      cells[k].setAttribute("data-field", k);
      tr.appendChild(cells[k]);
    });
    tr._cells = cells;
    tr._fill = fill;
    tr._svg = svg;
    tr.addEventListener("click", function () { drillDown(skill); });
    tr.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); drillDown(skill); }
    });
    return tr;
  }

  function renderTable(entries, anomalous, nowMs) {
    var body = $("skills-body");
    var seen = new Set();
    if (!entries.length) {
      state.rows.forEach(function (tr) { tr.remove(); });
      state.rows.clear();
      if (!body.querySelector("tr.empty")) {
        var tr = el("tr", "empty");
        var td = el("td", null, "No skill invocations yet. Waiting for data…");
        td.colSpan = 8;
        tr.appendChild(td);
        body.appendChild(tr);
      }
      return;
    }
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    entries.forEach(function (e, i) {
      var skill = e.skill_name;
      seen.add(skill);
      var tr = state.rows.get(skill);
      if (!tr) { tr = makeRow(skill); state.rows.set(skill, tr); }
      var c = tr._cells;
      var rate = windowRate(e);
      setCell(c.rank, String(i + 1), i + 1);
      setCell(c.invocation_count, fmtInt(e.invocation_count), e.invocation_count,
        "completed: " + fmtInt(e.completed_count) + " · all time: " + fmtInt(e.total_invocations));
      setCell(c.invocation_count_1h, fmtInt(e.invocation_count_1h), e.invocation_count_1h);
      setCell(c.completion, null, rate, "all time: " + fmtPct(e.completion_rate));
      setText(c.completion.firstChild, fmtPct(rate));
      tr._fill.style.width = rate == null ? "0%" : Math.max(0, Math.min(1, rate)) * 100 + "%";
      tr._fill.className = "meter-fill" + (rate != null && rate < 0.7 ? " bad" : rate != null && rate < 0.9 ? " warn" : "");
      setCell(c.avg_duration, fmtDuration(e.avg_duration), e.avg_duration,
        "all time: " + fmtDuration(e.avg_duration_seconds));
      setCell(c.last_invocation_at, fmtAgo(e.last_invocation_at, nowMs), e.last_invocation_at,
        fmtFull(e.last_invocation_at));
      drawSpark(tr, skill);
      var bad = !!e.is_anomalous || anomalous.has(skill);
      tr.classList.toggle("anomalous", bad);
      // appendChild moves an existing row: the DOM order follows the ranking without rebuilding.
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    state.rows.forEach(function (tr, skill) {
      if (!seen.has(skill)) { tr.remove(); state.rows.delete(skill); }
    });
  }

  /* ---------- anomalies ---------- */

  var anomalyItems = new Map();   // "skill\u0000type" -> <li>, reused so a click never hits a replaced node

  function makeAnomalyItem(a) {
    var li = el("li", "anomaly");
    li.dataset.skill = a.skill_name;
    li.dataset.type = a.anomaly_type;
    var head = el("div", "a-head");
    var skill = el("button", "a-skill link", a.skill_name);
    skill.type = "button";
    skill.title = "Show " + a.skill_name;
    skill.addEventListener("click", function () { drillDown(a.skill_name); });
    head.appendChild(skill);
    li._z = el("span", "a-z num");
    head.appendChild(li._z);
    li.appendChild(head);
    var body = el("div", "a-body");
    body.appendChild(el("span", "a-type " + String(a.anomaly_type), TYPE_LABELS[a.anomaly_type] || String(a.anomaly_type)));
    li._values = el("span", "a-values num");
    body.appendChild(li._values);
    li.appendChild(body);
    li._since = el("div", "a-since muted");
    li.appendChild(li._since);
    return li;
  }

  function renderAnomalies(list, nowMs) {
    var ul = $("anomalies");
    setText($("anomaly-count"), String(list.length));
    $("anomaly-count").classList.toggle("hot", list.length > 0);
    var empty = ul.querySelector("li.empty");
    if (!list.length) {
      anomalyItems.forEach(function (li) { li.remove(); });
      anomalyItems.clear();
      var text = state.skill == null ? "No active anomalies." : "No active anomalies for this skill.";
      if (!empty) { empty = el("li", "empty"); ul.appendChild(empty); }
      setText(empty, text);
      return;
    }
    if (empty) empty.remove();
    var seen = new Set();
    list.forEach(function (a, i) {
      var key = a.skill_name + "\u0000" + a.anomaly_type;
      seen.add(key);
      var li = anomalyItems.get(key);
      if (!li) { li = makeAnomalyItem(a); anomalyItems.set(key, li); }
      li.setAttribute("data-z", String(a.deviation_score));
      setText(li._z, "z " + fmtSigned(a.deviation_score));
      li._z.classList.toggle("neg", a.deviation_score < 0);
      setText(li._values, fmtAnomalyValue(a.anomaly_type, a.baseline_value) + " \u2192 " +
        fmtAnomalyValue(a.anomaly_type, a.observed_value));
      setText(li._since, "since " + fmtClock(a.detected_at) + " \u00b7 " + fmtAgo(a.detected_at, nowMs));
      li._since.title = fmtFull(a.detected_at);
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    });
    anomalyItems.forEach(function (li, key) {
      if (!seen.has(key)) { li.remove(); anomalyItems.delete(key); }
    });
  }

  /* ---------- drill-down ---------- */

  function setDetailField(field, text, value) {
    var dd = $("detail-metrics").querySelector('[data-field="' + field + '"]');
    if (!dd) return;
    setText(dd, text);
    dd.setAttribute("data-value", value == null ? "" : String(value));
  }

  function renderMetrics(m, nowMs) {
    setDetailField("total_invocations", fmtInt(m.total_invocations), m.total_invocations);
    setDetailField("completed_invocations", fmtInt(m.completed_invocations), m.completed_invocations);
    setDetailField("completion_rate", fmtPct(m.completion_rate), m.completion_rate);
    setDetailField("avg_duration_seconds", fmtDuration(m.avg_duration_seconds), m.avg_duration_seconds);
    setDetailField("invocation_count_1h", fmtInt(m.invocation_count_1h), m.invocation_count_1h);
    setDetailField("invocation_count_24h", fmtInt(m.invocation_count_24h), m.invocation_count_24h);
    setDetailField("last_invocation_at", fmtAgo(m.last_invocation_at, nowMs), m.last_invocation_at);
    setDetailField("is_anomalous", m.is_anomalous ? "Anomalous" : "Normal", !!m.is_anomalous);
    $("detail-metrics").querySelector('[data-field="is_anomalous"]').classList.toggle("bad-text", !!m.is_anomalous);
  }

  /* The live entry carries most of metrics_response's fields; get_metrics is asked again only
   * when the skill's total moved, for the fields the entry lacks (completed_invocations). */
  function renderDetailLive(entry, anomalous, nowMs) {
    var detail = $("detail");
    if (!entry) {
      $("detail-error").hidden = false;
      setText($("detail-error"), "No data for this skill in the current snapshot.");
      return;
    }
    $("detail-error").hidden = true;
    var m = state.metrics ? Object.assign({}, state.metrics) : {};
    m.skill_name = entry.skill_name;
    m.total_invocations = entry.total_invocations;
    m.completion_rate = entry.completion_rate;
    m.avg_duration_seconds = entry.avg_duration_seconds;
    m.last_invocation_at = entry.last_invocation_at;
    m.invocation_count_1h = entry.invocation_count_1h;
    m.invocation_count_24h = entry.invocation_count;
    m.is_anomalous = !!entry.is_anomalous || anomalous.has(entry.skill_name);
    renderMetrics(m, nowMs);
    $("detail-badge").hidden = !m.is_anomalous;
    detail.classList.toggle("anomalous", m.is_anomalous);
    if (state.askedTotal !== entry.total_invocations) askMetrics(entry.total_invocations);

    drawDayCharts(entry.skill_name);
    setText($("chart-count-now"), fmtInt(entry.invocation_count));
    setText($("chart-rate-now"), fmtPct(windowRate(entry)));
  }

  function askMetrics(total) {
    state.askedTotal = total;
    send({ type: "get_metrics", skill_name: state.skill });
  }

  function showView() {
    var drilled = state.skill != null;
    $("overview").hidden = drilled;
    $("detail").hidden = !drilled;
    document.body.classList.toggle("drilled", drilled);
    if (drilled) {
      setText($("detail-title"), state.skill);
      $("detail").dataset.skill = state.skill;
    } else {
      $("detail").removeAttribute("data-skill");
    }
  }

  function resetDetail() {
    state.metrics = null;
    state.askedTotal = null;
    $("detail-badge").hidden = true;
    $("detail-error").hidden = true;
    $("detail").classList.remove("anomalous");
    Array.prototype.forEach.call($("detail-metrics").querySelectorAll("dd"), function (dd) {
      setText(dd, "—");
      dd.setAttribute("data-value", "");
    });
    drawDayCharts(null);
    setText($("chart-count-now"), "");
    setText($("chart-rate-now"), "");
  }

  function drillDown(skill) {
    if (state.skill === skill) return;
    state.skill = skill;
    changeView();
    window.scrollTo(0, 0);
  }

  function backToAll() {
    if (state.skill == null) return;
    state.skill = null;
    changeView();
  }

  /* Another subscription starts another stream: nothing to resume, and the charts (which the
   * old subscription stopped advancing) load again. */
  function changeView() {
    state.stream = noStream();
    forgetSeries();
    resetDetail();
    showView();
    writeHash();
    applySubscription();
  }

  /* Tell the server what this page watches (also after every reconnect, then from where the
   * stream broke off: the server replays what this page missed, or says it cannot). */
  function applySubscription() {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    state.awaitingConfirm = true;
    var request = { type: "subscribe", skill_name: state.skill };
    state.resume = null;
    if (state.stream.epoch != null && state.stream.seq != null) {
      request.since = { epoch: state.stream.epoch, seq: state.stream.seq };
      state.resume = state.stream;
    }
    send(request);
    if (state.skill != null) askMetrics(null);
  }

  function noStream() { return { epoch: null, seq: null, at: null }; }

  /* An update this page has shown already (a replay overlapping what arrived before). */
  function alreadyShown(msg) {
    var at = state.stream;
    return at.epoch != null && msg.epoch === at.epoch && at.seq != null && typeof msg.seq === "number" && msg.seq <= at.seq;
  }

  /* The answer to a subscribe sent with `since`. recovered:true: the missed updates follow, in
   * order. Anything else: they are lost, so say so, and load the charts again. */
  function onResumeAnswer(msg, since) {
    if (msg.recovered === true) {
      var missed = typeof msg.seq === "number" ? Math.max(0, msg.seq - since.seq) : null;
      showNotice("recovered", missed == null ? "Reconnected: nothing lost." :
        "Reconnected: " + missed + " missed update" + (missed === 1 ? "" : "s") + " replayed, nothing lost.", since.at);
      return;
    }
    showNotice("gap", "Gap: data since " + fmtClock(since.at) + " lost (the server restarted, or the connection was " +
      "down longer than the server keeps updates). The charts were reloaded.", since.at);
    state.stream = noStream();
    forgetSeries();
  }

  function showNotice(kind, text, since) {
    var notice = $("recovery");
    clearTimeout(state.noticeTimer);
    notice.setAttribute("data-state", kind);
    notice.setAttribute("data-since", since || "");
    setText($("recovery-text"), text);
    notice.hidden = false;
    if (kind === "recovered") state.noticeTimer = setTimeout(function () { notice.hidden = true; }, RECOVERED_NOTICE_MS);
  }

  /* Every shown skill's chart: loaded once, then advanced by each update (see newSeries). */
  function advanceCharts(entries, tMs) {
    entries.forEach(function (e) {
      var range = state.skill == null ? SPARK : e.skill_name === state.skill ? DAY : null;
      if (!range) return;
      ensureSeries(range, e.skill_name);
      advanceSeries(seriesFor(range, e.skill_name), e, tMs);
    });
  }

  function writeHash() {
    var want = state.skill == null ? "" : "#skill=" + encodeURIComponent(state.skill);
    if (location.hash !== want) history.replaceState(null, "", want || location.pathname + location.search);
  }

  function readHash() {
    var m = /^#skill=(.*)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]) || null; } catch (e) { return null; }
  }

  /* ---------- messages ---------- */

  function onUpdate(msg) {
    var data = msg.data || {};
    var entries = Array.isArray(data.top_skills) ? data.top_skills : [];
    var anomalies = Array.isArray(data.anomalies) ? data.anomalies : [];
    var nowMs = parseTs(msg.timestamp);
    if (!isFinite(nowMs)) nowMs = Date.now();
    state.lastUpdate = msg;
    state.stale = data.stale === true;
    state.stream = { epoch: typeof msg.epoch === "string" ? msg.epoch : null, seq: num(msg.seq), at: msg.timestamp };
    advanceCharts(entries, parseTs(msg.timestamp));

    var anomalous = new Set(anomalies.map(function (a) { return a.skill_name; }));
    if (state.skill == null) {
      renderTable(entries, anomalous, nowMs);
    } else {
      var entry = null;
      entries.forEach(function (e) { if (e.skill_name === state.skill) entry = e; });
      renderDetailLive(entry, anomalous, nowMs);
    }
    renderAnomalies(anomalies, nowMs);

    if (state.skill == null) {
      var sum24 = 0, sum1h = 0;
      entries.forEach(function (e) { sum24 += e.invocation_count || 0; sum1h += e.invocation_count_1h || 0; });
      setText($("kpi-skills"), fmtInt(entries.length));
      setText($("kpi-24h"), fmtInt(sum24));
      setText($("kpi-1h"), fmtInt(sum1h));
      setText($("kpi-anomalies"), fmtInt(anomalies.length));
      $("kpi-anomalies").classList.toggle("bad-text", anomalies.length > 0);
    }

    var t = $("last-update");
    setText(t, fmtClock(msg.timestamp));
    t.setAttribute("datetime", msg.timestamp || "");
    t.title = fmtFull(msg.timestamp);
    setText($("seq"), msg.seq == null ? "—" : String(msg.seq));
    $("seq").setAttribute("data-value", msg.seq == null ? "" : String(msg.seq));
    $("seq").setAttribute("data-epoch", state.stream.epoch || "");
    $("stale-banner").hidden = !state.stale;
    document.body.classList.toggle("is-stale", state.stale);
    setStatus(state.stale ? "stale" : "live");
  }

  function onMessage(ev) {
    state.lastMessageAt = Date.now();
    state.pinged = false;
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "connected":
        state.attempt = 0;
        setStatus("live");
        applySubscription();
        break;
      case "subscription_confirmed":
        var confirmed = msg.skill_name === undefined ? msg.skill : msg.skill_name;
        if ((confirmed == null ? null : confirmed) !== state.skill) break;   // an older subscribe's
        state.awaitingConfirm = false;
        if (state.resume) onResumeAnswer(msg, state.resume);
        state.resume = null;
        break;
      case "metrics_update":
        if (!state.awaitingConfirm && !alreadyShown(msg)) onUpdate(msg);
        break;
      case "history_response":
        onHistory(msg);
        break;
      case "metrics_response":
        if (msg.data && msg.data.skill_name === state.skill) {
          state.metrics = msg.data;
          $("detail-error").hidden = true;
          var nowMs = state.lastUpdate ? parseTs(state.lastUpdate.timestamp) : Date.now();
          renderMetrics(msg.data, isFinite(nowMs) ? nowMs : Date.now());
          $("detail-badge").hidden = !msg.data.is_anomalous;
        }
        break;
      case "error":
        if (msg.request_type === "subscribe") state.awaitingConfirm = false;
        if (msg.request_type === "get_history") onHistoryError(msg);
        if (msg.request_type === "get_metrics" && state.skill != null && msg.code === "unknown_skill") {
          $("detail-error").hidden = false;
          setText($("detail-error"), "No data for this skill yet.");
        }
        break;
      default:
        break;
    }
  }

  /* ---------- connection ---------- */

  function wsUrl() {
    var q = new URLSearchParams(location.search).get("ws");
    if (q) return q;
    if (location.protocol === "http:" || location.protocol === "https:") {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
    }
    return "ws://localhost:8765/";   // opened from a file
  }

  function send(obj) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
  }

  var STATUS_TEXT = { connecting: "Connecting…", live: "Live", stale: "Stale · DB unreadable" };

  function setStatus(s, text) {
    var node = $("status");
    if (node.getAttribute("data-state") !== s) node.setAttribute("data-state", s);
    setText($("status-text"), text || STATUS_TEXT[s] || s);
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    if (state.attempt === 0) setStatus("connecting");
    else setStatus("reconnecting", "Reconnecting…");
    var ws;
    try {
      ws = new WebSocket(state.url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.awaitingConfirm = false;
    state.resume = null;
    dropPendingSeries();
    ws.onopen = function () {
      state.lastMessageAt = Date.now();
      state.pinged = false;
    };
    ws.onmessage = function (ev) { if (state.ws === ws) onMessage(ev); };
    ws.onclose = function () {
      if (state.ws !== ws) return;
      state.ws = null;
      scheduleReconnect();
    };
    ws.onerror = function () { /* onclose follows and handles it */ };
  }

  /* Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 10 s, each ±25 %. */
  function scheduleReconnect() {
    var base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, state.attempt));
    var delay = Math.round(base * (0.75 + Math.random() * 0.5));
    state.attempt += 1;
    state.retryAt = Date.now() + delay;
    state.retryTimer = setTimeout(connect, delay);
    tickStatus();
  }

  function tickStatus() {
    if (state.retryTimer == null) return;
    var left = Math.max(0, state.retryAt - Date.now()) / 1000;
    setStatus("reconnecting", "Reconnecting in " + left.toFixed(left < 10 ? 1 : 0) + " s");
  }

  /* A connection can die without a close (a sleeping laptop, a dropped NAT entry): after a long
   * silence, ask for a pong; if even that gets no answer, drop the socket and reconnect. */
  function watchdog() {
    tickStatus();
    var ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    var quiet = Date.now() - state.lastMessageAt;
    if (quiet > SILENCE_DROP_MS) {
      state.ws = null;
      try { ws.close(); } catch (e) { /* already closing */ }
      scheduleReconnect();
    } else if (quiet > SILENCE_PING_MS && !state.pinged) {
      state.pinged = true;
      send({ type: "ping" });
    }
  }

  /* ---------- theme ---------- */

  function effectiveTheme() {
    var set = document.documentElement.getAttribute("data-theme");
    if (set === "light" || set === "dark") return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function toggleTheme() {
    var next = effectiveTheme() === "dark" ? "light" : "dark";
    document.documentElement.setAttribute("data-theme", next);
    try { localStorage.setItem("sb-theme", next); } catch (e) { /* private mode */ }
  }

  /* ---------- start ---------- */

  function start() {
    $("theme-toggle").addEventListener("click", toggleTheme);
    $("recovery-close").addEventListener("click", function () { $("recovery").hidden = true; });
    $("back").addEventListener("click", backToAll);
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && state.skill != null) backToAll();
    });
    window.addEventListener("hashchange", function () {
      var want = readHash();
      if (want === state.skill) return;
      if (want == null) backToAll(); else drillDown(want);
    });
    setText($("endpoint"), state.url);
    state.skill = readHash();
    showView();
    connect();
    state.watchdog = setInterval(watchdog, 250);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
