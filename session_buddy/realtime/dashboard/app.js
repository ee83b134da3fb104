/* The live dashboard: one WebSocket to the page's own server, a table redrawn on every
 * metrics_update, per-skill sparklines from recent updates, anomalies, and a drill-down that
 * subscribes to one skill.  No framework and no build step; skill names are data from the
 * wire, so they only ever reach the page through textContent. */
"use strict";

(function () {
  const HISTORY = 60;                 // updates kept per skill for the sparklines
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), updated: $("updated"), theme: $("theme"), back: $("back"),
    title: $("skills-title"), body: document.querySelector("#skills tbody"), empty: $("empty"),
    anomalies: $("anomalies"), anomalyCount: $("anomaly-count"), noAnomalies: $("no-anomalies"),
    detail: $("detail"), detailTitle: $("detail-title"), detailSpark: $("detail-spark"),
    detailFields: $("detail-fields"),
  };

  const state = {
    socket: null,
    retry: 0,
    retryTimer: null,
    selected: null,                   // skill name of the drill-down, or null for all skills
    history: new Map(),               // skill -> {counts: [], rates: []}
    rows: new Map(),                  // skill -> <tr>
    lastUpdateAt: null,
    lastMetrics: null,
  };

  // ---- connection -------------------------------------------------------------------------

  function socketUrl() {
    const params = new URLSearchParams(location.search);
    if (params.get("ws")) return params.get("ws");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const token = params.get("token");  // for servers that require authentication
    return scheme + location.host + "/" + (token ? "?token=" + encodeURIComponent(token) : "");
  }

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
  }

  function send(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
  }

  function connect() {
    clearTimeout(state.retryTimer);
    setStatus(state.retry ? "reconnecting" : "connecting", state.retry ? "reconnecting…" : "connecting…");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (err) {
      scheduleReconnect(null);
      return;
    }
    state.socket = socket;
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      handle(message);
    };
    socket.onclose = (event) => {
      if (state.socket === socket) scheduleReconnect(event.code);
    };
  }

  function scheduleReconnect(code) {
    state.socket = null;
    // Exponential backoff with jitter, so that a restarted server is not hit by every page at once.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.retry);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    state.retry += 1;
    const why = code === 4001 ? "authentication failed" : code === 1013 ? "server full" : "disconnected";
    setStatus("reconnecting", why + " · retry in " + (delay / 1000).toFixed(1) + " s");
    state.retryTimer = setTimeout(connect, delay);
  }

  // ---- messages ---------------------------------------------------------------------------

  function handle(message) {
    switch (message.type) {
      case "connected":
        state.retry = 0;
        setStatus("live", "live");
        // A new connection starts subscribed to all skills: re-apply the drill-down.
        if (state.selected !== null) select(state.selected);
        break;
      case "metrics_update":
        onUpdate(message);
        break;
      case "metrics_response":
        if (message.data && message.data.skill_name === state.selected) renderDetailFields(message.data);
        break;
      case "error":
        if (message.code === "unknown_skill" && state.selected !== null) renderDetailFields(null);
        break;
    }
  }

  function onUpdate(message) {
    const data = message.data || {};
    const skills = Array.isArray(data.top_skills) ? data.top_skills : [];
    const anomalies = Array.isArray(data.anomalies) ? data.anomalies : [];
    state.lastUpdateAt = Date.now();
    setStatus(data.stale ? "stale" : "live", data.stale ? "stale: database unreadable" : "live");
    ui.updated.textContent = "update #" + message.seq + " · " + formatClock(message.timestamp);

    for (const s of skills) record(s);
    renderTable(skills);
    renderAnomalies(anomalies);
    if (state.selected !== null) {
      renderDetailSpark();
      send({type: "get_metrics", skill_name: state.selected});
    }
  }

  function record(skill) {
    let h = state.history.get(skill.skill_name);
    if (!h) {
      h = {counts: [], rates: []};
      state.history.set(skill.skill_name, h);
    }
    const rate = skill.invocation_count > 0 ? skill.completed_count / skill.invocation_count : skill.completion_rate;
    h.counts.push(skill.invocation_count);
    h.rates.push(rate);
    if (h.counts.length > HISTORY) { h.counts.shift(); h.rates.shift(); }
  }

  // ---- drill-down -------------------------------------------------------------------------

  function select(skill) {
    state.selected = skill;
    send({type: "subscribe", skill_name: skill});
    if (skill === null) {
      ui.detail.hidden = true;
      ui.back.hidden = true;
      ui.title.textContent = "Top skills";
      return;
    }
    send({type: "get_metrics", skill_name: skill});
    ui.detail.hidden = false;
    ui.back.hidden = false;
    ui.title.textContent = skill;
    ui.detailTitle.textContent = skill;
    renderDetailSpark();
  }

  function renderDetailSpark() {
    const h = state.history.get(state.selected);
    drawSpark(ui.detailSpark, h ? h.counts : [], 240, 60);
  }

  function renderDetailFields(data) {
    ui.detailFields.replaceChildren();
    if (!data) {
      addField("status", "no data for this skill");
      return;
    }
    addField("invocations, all time", formatCount(data.total_invocations));
    addField("completed, all time", formatCount(data.completed_invocations));
    addField("completion rate", formatRate(data.completion_rate));
    addField("average duration", formatDuration(data.avg_duration_seconds));
    addField("invocations, 24 h", formatCount(data.invocation_count_24h));
    addField("invocations, 1 h", formatCount(data.invocation_count_1h));
    addField("last invocation", formatAgo(data.last_invocation_at));
    addField("anomalous", data.is_anomalous ? "yes" : "no");
  }

  function addField(label, value) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value;
    ui.detailFields.append(dt, dd);
  }

  // ---- rendering --------------------------------------------------------------------------

  function renderTable(skills) {
    ui.empty.hidden = skills.length > 0;
    ui.empty.textContent = state.selected !== null ? "No data for this skill yet." : "No skills recorded yet.";
    const keep = new Set();
    skills.forEach((skill, index) => {
      const name = skill.skill_name;
      keep.add(name);
      let tr = state.rows.get(name);
      if (!tr) {
        tr = makeRow(name);
        state.rows.set(name, tr);
      }
      updateRow(tr, skill, index + 1);
      ui.body.appendChild(tr);  // appending an existing row moves it: rows follow the ranking
    });
    for (const [name, tr] of state.rows) {
      if (!keep.has(name)) {
        tr.remove();
        state.rows.delete(name);
      }
    }
  }

  function makeRow(name) {
    const tr = document.createElement("tr");
    tr.dataset.skill = name;
    for (const cls of ["num rank", "name", "num count", "num", "num rate", "num", "trend", "num"]) {
      const td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
    }
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 28");
    svg.setAttribute("preserveAspectRatio", "none");
    tr.cells[6].appendChild(svg);
    tr.cells[1].textContent = name;
    tr.cells[1].title = name;
    tr.addEventListener("click", () => select(name));
    return tr;
  }

  function updateRow(tr, skill, rank) {
    const c = tr.cells;
    const count = formatCount(skill.invocation_count);
    tr.classList.toggle("changed", c[2].textContent !== "" && c[2].textContent !== count);
    tr.classList.toggle("anomalous", !!skill.is_anomalous);
    c[0].textContent = rank;
    c[2].textContent = count;
    c[3].textContent = formatCount(skill.invocation_count_1h);
    c[4].textContent = formatRate(skill.completion_rate);
    c[4].className = "num rate " + rateClass(skill.completion_rate);
    c[5].textContent = formatDuration(skill.avg_duration);
    const h = state.history.get(skill.skill_name);
    drawSpark(c[6].firstChild, h ? h.rates : [], 120, 28);
    c[7].textContent = formatAgo(skill.last_invocation_at);
    c[7].title = skill.last_invocation_at || "";
  }

  function renderAnomalies(anomalies) {
    ui.anomalyCount.textContent = anomalies.length;
    ui.anomalyCount.classList.toggle("hot", anomalies.length > 0);
    ui.noAnomalies.hidden = anomalies.length > 0;
    ui.anomalies.replaceChildren(...anomalies.map((a) => {
      const li = document.createElement("li");
      li.dataset.skill = a.skill_name;
      li.dataset.type = a.anomaly_type;
      const z = document.createElement("span");
      z.className = "z";
      z.textContent = "z " + formatSigned(a.deviation_score);
      const name = document.createElement("div");
      name.className = "skill";
      name.textContent = a.skill_name;
      const type = document.createElement("div");
      type.className = "type";
      type.textContent = a.anomaly_type.replace(/_/g, " ") + " · since " + formatClock(a.detected_at);
      const values = document.createElement("div");
      values.className = "values";
      values.textContent = "baseline " + formatValue(a.anomaly_type, a.baseline_value) +
        " → observed " + formatValue(a.anomaly_type, a.observed_value);
      li.append(z, name, type, values);
      li.addEventListener("click", () => select(a.skill_name));
      return li;
    }));
  }

  function drawSpark(svg, values, width, height) {
    let line = svg.firstChild;
    if (!line) {
      line = document.createElementNS(SVG_NS, "polyline");
      svg.appendChild(line);
    }
    const finite = values.filter((v) => typeof v === "number" && isFinite(v));
    if (finite.length < 2) {
      line.setAttribute("points", "");
      return;
    }
    const lo = Math.min(...finite), hi = Math.max(...finite);
    const span = hi - lo || 1;
    const step = width / (finite.length - 1);  // oldest at the left edge, newest at the right
    const points = finite.map((v, i) => {
      const y = hi === lo ? height / 2 : height - 2 - ((v - lo) / span) * (height - 4);
      return (i * step).toFixed(1) + "," + y.toFixed(1);
    });
    line.setAttribute("points", points.join(" "));
  }

  // ---- formatting -------------------------------------------------------------------------

  function formatCount(n) {
    return typeof n === "number" ? n.toLocaleString() : "–";
  }
  function formatRate(r) {
    return typeof r === "number" ? (r * 100).toFixed(r >= 0.995 || r === 0 ? 0 : 1) + "%" : "–";
  }
  function rateClass(r) {
    if (typeof r !== "number") return "";
    return r >= 0.9 ? "rate-good" : r >= 0.7 ? "rate-warn" : "rate-bad";
  }
  function formatDuration(s) {
    if (typeof s !== "number") return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    return Math.floor(s / 60) + " m " + Math.round(s % 60) + " s";
  }
  function formatSigned(x) {
    return typeof x === "number" ? (x > 0 ? "+" : "") + x.toFixed(2) : "–";
  }
  function formatValue(type, v) {
    if (typeof v !== "number") return "–";
    return type === "pattern_shift" ? formatDuration(v) : formatRate(v);
  }
  function formatClock(iso) {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? d.toLocaleTimeString() : "–";
  }
  function formatAgo(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || isNaN(d)) return "–";
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  // ---- theme ------------------------------------------------------------------------------

  ui.theme.addEventListener("click", () => {
    const root = document.documentElement;
    const dark = root.dataset.theme ? root.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    try { localStorage.setItem("sb-theme", root.dataset.theme); } catch (err) { /* private mode */ }
  });

  ui.back.addEventListener("click", () => select(null));

  // Without updates for three intervals' worth of time, say so instead of looking live.
  setInterval(() => {
    if (ui.status.dataset.state === "live" && state.lastUpdateAt && Date.now() - state.lastUpdateAt > 10000) {
      setStatus("stale", "no update for " + Math.round((Date.now() - state.lastUpdateAt) / 1000) + " s");
    }
  }, 1000);

  connect();
})();
