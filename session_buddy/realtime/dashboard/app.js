/* app.js - the live dashboard: one WebSocket, a top-skills table with sparklines, anomalies,
 * a per-skill drill-down, and reconnection with backoff. Plain DOM, no dependencies.
 *
 * Everything that comes off the wire (skill names above all) is hostile data: it only ever
 * reaches the page through textContent, setAttribute and dataset, never through innerHTML. */
(function () {
  "use strict";

  var HISTORY = 60;              // updates kept per skill for the sparklines
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
    history: new Map(),       // skill -> [{count, rate}]
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

  /* ---------- sparklines ---------- */

  /* Fill an <svg> (viewBox 0 0 w h) with a line for `values` (and the area under it when
   * `area`); min-max scaled so a small movement stays visible, flat in the middle when nothing
   * moves. The x scale spans at least SLOTS_MIN points, so the first few updates do not draw
   * one steep stroke across the whole width; it widens until HISTORY points fill it. */
  var SLOTS_MIN = 20;

  function drawLine(svg, values, w, h, opts) {
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var pts = values.filter(function (v) { return v != null && isFinite(v); });
    svg.setAttribute("data-points", String(pts.length));
    var pad = h > 40 ? 8 : 3;
    // A faint base line over the whole width: the empty part reads as "no history yet".
    svg.appendChild(svgEl("line", { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, "class": "spark-base" }));
    if (!pts.length) return;
    var lo = opts.min != null ? opts.min : Math.min.apply(null, pts);
    var hi = opts.max != null ? opts.max : Math.max.apply(null, pts);
    var slots = Math.max(SLOTS_MIN, pts.length);
    var step = (w - 2 * pad) / (slots - 1);
    var x0 = w - pad - step * (pts.length - 1);
    var coords = pts.map(function (v, i) {
      var y = hi === lo ? h / 2 : pad + (h - 2 * pad) * (1 - (v - lo) / (hi - lo));
      return [x0 + step * i, y];
    });
    var line = coords.map(function (c) { return c[0].toFixed(1) + "," + c[1].toFixed(1); }).join(" ");
    var last = coords[coords.length - 1];
    if (opts.area && coords.length > 1) {
      var area = x0.toFixed(1) + "," + h + " " + line + " " + last[0].toFixed(1) + "," + h;
      svg.appendChild(svgEl("polygon", { points: area, "class": "spark-area" }));
    }
    if (coords.length > 1) svg.appendChild(svgEl("polyline", { points: line, "class": "spark-line" }));
    svg.appendChild(svgEl("circle", { cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: opts.area ? 3 : 2, "class": "spark-dot" }));
  }

  /* The drill-down charts: drawn in the element's own pixel size, so nothing is stretched. */
  function drawChart(svg, values, min, max) {
    var w = Math.max(50, Math.round(svg.clientWidth || 400));
    var h = Math.max(20, Math.round(svg.clientHeight || 110));
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    drawLine(svg, values, w, h, { area: true, min: min, max: max });
  }

  function recordHistory(entries) {
    entries.forEach(function (e) {
      var h = state.history.get(e.skill_name);
      if (!h) { h = []; state.history.set(e.skill_name, h); }
      h.push({ count: num(e.invocation_count), rate: num(windowRate(e)) });
      if (h.length > HISTORY) h.shift();
    });
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
      var hist = state.history.get(skill) || [];
      drawLine(tr._svg, hist.map(function (p) { return p.count; }), 112, 26);
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

    var hist = state.history.get(entry.skill_name) || [];
    drawChart($("chart-count"), hist.map(function (p) { return p.count; }));
    drawChart($("chart-rate"), hist.map(function (p) { return p.rate; }), 0, 1);
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
    ["chart-count", "chart-rate"].forEach(function (id) {
      var svg = $(id);
      while (svg.firstChild) svg.removeChild(svg.firstChild);
    });
    setText($("chart-count-now"), "");
    setText($("chart-rate-now"), "");
  }

  function drillDown(skill) {
    if (state.skill === skill) return;
    state.skill = skill;
    resetDetail();
    showView();
    writeHash();
    applySubscription();
    window.scrollTo(0, 0);
  }

  function backToAll() {
    if (state.skill == null) return;
    state.skill = null;
    resetDetail();
    showView();
    writeHash();
    applySubscription();
  }

  /* Tell the server what this page watches (also after every reconnect). */
  function applySubscription() {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    state.awaitingConfirm = true;
    send({ type: "subscribe", skill_name: state.skill });
    if (state.skill != null) askMetrics(null);
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
    recordHistory(entries);

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
        if ((confirmed == null ? null : confirmed) === state.skill) state.awaitingConfirm = false;
        break;
      case "metrics_update":
        if (!state.awaitingConfirm) onUpdate(msg);
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
