"""The dashboard at GET /, in real headless Chromium against a real server and a real SQLite file.

Every wait is an explicit poll of the page's DOM (or of the server) with a generous timeout;
nothing sleeps a fixed time and hopes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser import LiveServer, browser_missing, make_driver, wait_js
from skills_seed import EXPECTED_ORDER, iso_ms, seed_db, store_invocation, utc_now

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

# A skill name that is hostile HTML: it must show as text and never run.
HOSTILE = "<img src=x onerror=\"window.__pwned=1\">&amp;'\u00e9"

ROW_SKILLS = "return Array.from(document.querySelectorAll('#skills-body tr[data-skill]')).map(r => r.dataset.skill)"
STATUS = "return document.getElementById('status').dataset.state"
CELL = ("const r = Array.from(document.querySelectorAll('#skills-body tr[data-skill]'))"
        ".find(r => r.dataset.skill === arguments[0]);"
        "return r ? r.querySelector('[data-field=\"' + arguments[1] + '\"]').dataset.value : null")
DETAIL = ("const d = document.querySelector('#detail-metrics [data-field=\"' + arguments[0] + '\"]');"
          "return d ? d.dataset.value : null")

# A drawn chart `s`: how many values, which, and where its buckets start (see app.js drawLine).
CHART = ("return s && {points: Number(s.dataset.points), values: s.dataset.values, start: s.dataset.start || null,"
         " step: Number(s.dataset.step)}")
SPARK = ("const r = Array.from(document.querySelectorAll('#skills-body tr[data-skill]'))"
         ".find(r => r.dataset.skill === arguments[0]);"
         "return (function (s) {" + CHART + "})(r && r.querySelector('svg.sparkline'))")
DAY_CHART = "return (function (s) {" + CHART + "})(document.getElementById(arguments[0]))"
SPARK_BUCKETS, DAY_BUCKETS = 60, 96  # 3600 s per 60 s, 86400 s per 900 s

# Installed before the page's own script: every frame the page sends, parsed, in window.__sent.
WIRE_TAP = """
window.__sent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  try { window.__sent.push(JSON.parse(data)); } catch (e) { /* not JSON: not ours */ }
  return send.call(this, data);
};
"""
# Every seq the page shows, in order: #seq's data-value is set once per update it applies.
SEQ_LOG = """
const node = document.getElementById('seq');
window.__seqs = [];
window.__seqObserver = new MutationObserver(records => records.forEach(r => window.__seqs.push(r.oldValue)));
window.__seqObserver.observe(node, {attributes: true, attributeOldValue: true, attributeFilter: ['data-value']});
"""
SHOWN_SEQS = "return window.__seqs.concat([document.getElementById('seq').dataset.value]).filter(v => v).map(Number)"

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = make_driver(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def tapped(driver: Any) -> Iterator[Any]:
    """The driver, with WIRE_TAP run in every page it loads during the test."""
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WIRE_TAP})
    try:
        yield driver
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def sent(driver: Any, kind: str) -> list[dict]:
    return [m for m in driver.execute_script("return window.__sent") if m.get("type") == kind]


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def histogram(times: list[str], start: str, step: int, buckets: int) -> list[int]:
    """Invocations per bucket [start + i*step, start + (i+1)*step), counted here from the rows."""
    counts = [0] * buckets
    t0 = parse_iso(start)
    for at in times:
        i = int((parse_iso(at) - t0).total_seconds() // step)
        if 0 <= i < buckets:
            counts[i] += 1
    return counts


def chart_values(chart: dict) -> list[float | None]:
    return [None if v == "" else float(v) for v in chart["values"].split(",")]


def wait_chart(driver: Any, script: str, arg: str, buckets: int, timeout: float = 30.0) -> dict:
    """Wait for a chart loaded from history (its buckets known), and return it."""
    return wait_js(driver, "const c = (function () {" + script + "}).apply(null, arguments);"
                           "return c && c.start && c.values.split(',').length === arguments[1] ? c : null",
                   arg, buckets, timeout=timeout, message=f"{arg}: a chart of {buckets} buckets")


@pytest.fixture
def live() -> Iterator[list[LiveServer]]:
    """Servers a test starts; every one still running is stopped at teardown."""
    started: list[LiveServer] = []
    yield started
    for s in reversed(started):
        s.stop()


def serve(live: list[LiveServer], db: Path, **kwargs: Any) -> LiveServer:
    server = LiveServer(db, **kwargs)
    live.append(server)
    return server.start()


def open_dashboard(driver: Any, server: LiveServer, path: str = "/") -> None:
    driver.get(server.http_url + path)
    wait_js(driver, STATUS + " === 'live'", message="status live")


def cell(driver: Any, skill: str, field: str) -> str | None:
    return driver.execute_script(CELL, skill, field)


def detail(driver: Any, field: str) -> str | None:
    return driver.execute_script(DETAIL, field)


def wait_equal(driver: Any, body: str, *args: Any, want: Any, timeout: float = 30.0, message: str = "") -> None:
    """Poll the function `body` (called with `args`) until it returns `want`."""
    wait_js(driver, "const want = arguments[arguments.length - 1];"
                    "return (function () {" + body + "}).apply(null, arguments) === want",
            *args, want, timeout=timeout, message=message or f"{args} == {want!r}")


def wait_cell(driver: Any, skill: str, field: str, want: str, timeout: float = 30.0) -> None:
    wait_equal(driver, CELL, skill, field, want=want, timeout=timeout, message=f"row {skill}: {field} == {want}")


def wait_detail(driver: Any, field: str, want: str, timeout: float = 30.0) -> None:
    wait_equal(driver, DETAIL, field, want=want, timeout=timeout, message=f"drill-down {field} == {want}")


def poll(predicate: Any, timeout: float = 20.0, message: str = "condition") -> None:
    """Poll a Python-side condition (e.g. the server's view of its clients)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.05)


def websocket_extensions(driver: Any) -> str:
    """Sec-WebSocket-Extensions of the page's WebSocket handshake reply, from the DevTools log."""
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.webSocketHandshakeResponseReceived":
            headers = {k.lower(): v for k, v in event["params"]["response"]["headers"].items()}
            return headers.get("sec-websocket-extensions", "")
    raise AssertionError("no WebSocket handshake in the performance log")


def severe_console_entries(driver: Any, server: LiveServer) -> list[dict]:
    """Errors logged by this server's page (a previous test's page, still retrying its stopped
    server until the browser navigated away, may have logged into the same buffer)."""
    here = f"127.0.0.1:{server.port}"
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and here in e.get("message", "")]


def http_get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("content-type", ""), r.read()


def test_page_loads_and_shows_the_seeded_skills(driver, live, tmp_path: Path) -> None:
    db = seed_db(tmp_path / "skills.db")
    store_invocation(db.path, HOSTILE, db.now - timedelta(minutes=30))
    server = serve(live, db.path)

    for path, ctype in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css"),
                        ("/favicon.svg", "image/svg+xml")):
        status, got, body = http_get(server.http_url + path)
        assert status == 200 and got.startswith(ctype) and body, path
    page = http_get(server.http_url + "/")[2].decode()
    assert "http://" not in page.replace('"http://www.w3.org', "") and "https://" not in page  # offline: nothing external

    driver.get_log("performance")  # only this page's network events from here on
    open_dashboard(driver, server)
    assert driver.title.startswith("Session-Buddy")
    # Chromium offers permessage-deflate; the page shows the rows below only if it decodes the
    # server's shared compressed frames.
    assert websocket_extensions(driver).startswith("permessage-deflate; server_no_context_takeover")
    # (1 in 24 h, 1 in total) ranks after black (2, 2) and before old-skill (0, 3).
    expected = EXPECTED_ORDER[:-1] + [HOSTILE, EXPECTED_ORDER[-1]]
    wait_js(driver, ROW_SKILLS + ".join('\\n') === arguments[0]", "\n".join(expected),
            message=f"rows {expected}")

    for skill in EXPECTED_ORDER:
        e = db.expected_entry(skill)
        assert cell(driver, skill, "invocation_count") == str(e["invocation_count"]), skill
        assert cell(driver, skill, "invocation_count_1h") == str(e["invocation_count_1h"]), skill
        assert cell(driver, skill, "last_invocation_at") == e["last_invocation_at"], skill
    ranks = driver.execute_script(
        "return Array.from(document.querySelectorAll('#skills-body tr[data-skill] td[data-field=rank]')).map(t => t.textContent)")
    assert ranks == [str(i) for i in range(1, len(expected) + 1)]
    assert driver.execute_script(CELL, "old-skill", "invocation_count") == "0"

    # The hostile name is text: shown verbatim, no element made of it, no script run.
    shown = driver.execute_script(
        "const r = Array.from(document.querySelectorAll('#skills-body tr[data-skill]')).find(r => r.dataset.skill === arguments[0]);"
        "return [r.querySelector('.skill-name').textContent, r.querySelectorAll('img').length]", HOSTILE)
    assert shown == [HOSTILE, 0]
    assert driver.execute_script("return document.querySelectorAll('img').length + (window.__pwned ? 100 : 0)") == 0

    assert driver.execute_script("return document.getElementById('kpi-skills').textContent") == str(len(expected))
    assert int(driver.execute_script("return document.getElementById('seq').dataset.value")) >= 0
    assert driver.execute_script("return document.querySelectorAll('#skills-body tr.anomalous').length") == 0
    assert driver.execute_script("return document.querySelector('#anomalies li.empty') !== null")
    assert severe_console_entries(driver, server) == []  # no script error, no missing file


def test_theme_toggle_follows_the_system_then_persists(driver, live, tmp_path: Path) -> None:
    server = serve(live, seed_db(tmp_path / "skills.db").path)
    open_dashboard(driver, server)
    driver.execute_script("localStorage.removeItem('sb-theme'); location.reload()")
    wait_js(driver, STATUS + " === 'live'")
    background = "return getComputedStyle(document.body).backgroundColor"
    before = driver.execute_script(background)
    assert driver.execute_script("return document.documentElement.getAttribute('data-theme')") is None
    driver.find_element("id", "theme-toggle").click()
    theme = driver.execute_script("return document.documentElement.getAttribute('data-theme')")
    assert theme in ("light", "dark")
    assert driver.execute_script(background) != before
    driver.refresh()
    wait_js(driver, STATUS + " === 'live'")
    assert driver.execute_script("return document.documentElement.getAttribute('data-theme')") == theme
    assert driver.execute_script(background) != before
    driver.execute_script("localStorage.removeItem('sb-theme')")  # leave the profile as found


def test_rows_update_when_invocations_are_written_then_go_stale(driver, live, tmp_path: Path) -> None:
    db = seed_db(tmp_path / "skills.db")
    server = serve(live, db.path)
    open_dashboard(driver, server)
    wait_cell(driver, "mypy", "invocation_count", "4")
    first_seq = int(driver.execute_script("return document.getElementById('seq').dataset.value"))
    before = wait_chart(driver, SPARK, "mypy", SPARK_BUCKETS)
    assert sum(chart_values(before)) == 0  # nothing in the last hour

    now = utc_now()
    for i in range(3):
        store_invocation(db.path, "mypy", now - timedelta(seconds=5 * i), completed=True, duration=2.0)
    # mypy: 7 in 24 h (3 in the last hour), 7 in total -> ahead of pytest-run (6, 8).
    wait_cell(driver, "mypy", "invocation_count", "7")
    wait_cell(driver, "mypy", "invocation_count_1h", "3")
    wait_js(driver, ROW_SKILLS + "[0] === 'mypy'", message="mypy ranked first")
    assert driver.execute_script(ROW_SKILLS)[:3] == ["mypy", "pytest-run", "ruff-check"]
    assert int(driver.execute_script("return document.getElementById('seq').dataset.value")) > first_seq
    # The live updates add the three new runs to the sparkline's newest buckets.
    wait_equal(driver, "const s = document.querySelector('#skills-body tr[data-skill=\"mypy\"] svg.sparkline');"
                       "return s.dataset.values.split(',').reduce((a, v) => a + Number(v), 0)", want=3,
               message="the new runs in mypy's sparkline")
    after = driver.execute_script(SPARK, "mypy")
    assert after["points"] == SPARK_BUCKETS and parse_iso(after["start"]) >= parse_iso(before["start"])
    assert driver.execute_script("return document.querySelector('#skills-body tr[data-skill=\"mypy\"] polyline') !== null")

    # The DB disappears: the server keeps broadcasting the last figures with stale: true.
    os.remove(db.path)
    wait_js(driver, STATUS + " === 'stale'", message="status stale")
    assert driver.execute_script("return document.getElementById('stale-banner').hidden") is False
    assert cell(driver, "mypy", "invocation_count") == "7"


def test_an_injected_anomaly_is_highlighted_and_drills_down(driver, live, tmp_path: Path) -> None:
    db = seed_db(tmp_path / "skills.db")
    now = utc_now()
    for i in range(10):  # baseline: 9 of 10 completed, three hours ago
        store_invocation(db.path, "deploy", now - timedelta(hours=3, minutes=i), completed=i != 0, duration=3.0)
    server = serve(live, db.path)
    open_dashboard(driver, server)
    wait_cell(driver, "deploy", "invocation_count", "10")
    assert driver.execute_script("return document.querySelectorAll('#skills-body tr.anomalous').length") == 0

    for i in range(3):  # now every run fails: z = (0 - 0.9) / std(baseline) = -2.85
        store_invocation(db.path, "deploy", now - timedelta(minutes=i), completed=False)
    wait_js(driver, "return document.querySelector('#skills-body tr[data-skill=\"deploy\"]').classList.contains('anomalous')",
            message="deploy row highlighted")
    item = wait_js(driver, """
        const li = document.querySelector('#anomalies li[data-skill="deploy"]');
        return li && {type: li.dataset.type, z: Number(li.dataset.z), text: li.textContent}""",
                   message="deploy in the anomalies panel")
    assert item["type"] == "performance_drop"
    assert abs(item["z"] - (0 - 0.9) / (0.9 * 0.1 * 10 / 9) ** 0.5) < 1e-6
    assert "z \u22122.85" in item["text"] and "90%" in item["text"] and "\u2192 0%" in item["text"]
    assert driver.execute_script("return document.querySelectorAll('#skills-body tr.anomalous').length") == 1
    assert driver.execute_script("return document.getElementById('kpi-anomalies').textContent") == "1"

    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # Drill down from the anomalies panel: subscribe + get_metrics for deploy.
    driver.find_element("css selector", '#anomalies li[data-skill="deploy"] button').click()
    wait_js(driver, "return document.getElementById('detail').dataset.skill === 'deploy' && !document.getElementById('detail').hidden")
    assert driver.execute_script("return document.getElementById('overview').hidden") is True
    wait_detail(driver, "completed_invocations", "9")  # only metrics_response carries this one
    assert detail(driver, "total_invocations") == "13"
    assert detail(driver, "invocation_count_1h") == "3"
    assert detail(driver, "is_anomalous") == "true"
    assert driver.execute_script("return document.getElementById('detail-title').textContent") == "deploy"
    assert "#skill=deploy" in driver.current_url

    # Its own live updates keep coming: a new run shows up in the drill-down.
    store_invocation(db.path, "deploy", utc_now(), completed=False)
    wait_detail(driver, "total_invocations", "14")

    driver.find_element("id", "back").click()
    wait_js(driver, ROW_SKILLS + ".length === 7", message="all skills again")
    assert driver.execute_script("return document.getElementById('detail').hidden") is True
    assert driver.current_url.endswith("/")


def test_reconnects_after_a_restart_and_keeps_the_drill_down(tapped, live, tmp_path: Path) -> None:
    driver = tapped
    db = seed_db(tmp_path / "skills.db")
    first = serve(live, db.path)
    open_dashboard(driver, first)
    wait_cell(driver, "ruff-check", "invocation_count", "4")
    driver.find_element("css selector", '#skills-body tr[data-skill="ruff-check"]').click()
    wait_detail(driver, "invocation_count_24h", "4")
    assert first.subscriptions() == ["ruff-check"]

    wait_chart(driver, DAY_CHART, "chart-count", DAY_BUCKETS)

    port, old_epoch = first.port, first.server.epoch
    first.stop()
    wait_js(driver, STATUS + " === 'reconnecting'", message="status reconnecting")
    assert driver.execute_script(DETAIL, "invocation_count_24h") == "4"  # the last figures stay up
    last_seen = driver.execute_script("return document.getElementById('last-update').getAttribute('datetime')")
    day_requests = len([m for m in sent(driver, "get_history") if m["window"] == 86400])

    second = serve(live, db.path, port=port)
    wait_js(driver, STATUS + " === 'live'", timeout=40, message="status live again")
    # The page re-applied its drill-down subscription on the new connection, from where it stood.
    poll(lambda: second.subscriptions() == ["ruff-check"], message="the subscription re-applied")
    resume = sent(driver, "subscribe")[-1]
    assert resume["skill_name"] == "ruff-check" and resume["since"]["epoch"] == old_epoch != second.server.epoch
    # A new epoch: nothing can be replayed, and the page says since when data is lost.
    notice = wait_js(driver, "const n = document.getElementById('recovery');"
                             "return !n.hidden && n.dataset.state === 'gap' && {since: n.dataset.since, text: n.textContent}",
                     message="the gap notice")
    assert notice["since"] == last_seen and notice["text"].startswith("Gap: data since ")
    clock = driver.execute_script("return new Date(arguments[0]).toLocaleTimeString(undefined,"
                                  " {hour: '2-digit', minute: '2-digit', second: '2-digit'})", last_seen)
    assert f"Gap: data since {clock} lost" in notice["text"]
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "dashboard-gap.png"))
    # ... and loads its 24 h chart again.
    poll(lambda: len([m for m in sent(driver, "get_history") if m["window"] == 86400]) == day_requests + 1,
         message="the 24 h history asked again")
    wait_chart(driver, DAY_CHART, "chart-count", DAY_BUCKETS)

    now = utc_now()
    store_invocation(db.path, "ruff-check", now, completed=True, duration=0.5)
    store_invocation(db.path, "ruff-check", now - timedelta(seconds=1), completed=True, duration=0.5)
    wait_detail(driver, "invocation_count_24h", "6")  # data flows after the restart

    driver.find_element("id", "back").click()
    wait_js(driver, ROW_SKILLS + ".length === 6", message="all skills again")
    poll(lambda: second.subscriptions() == [None], message="subscribed to all skills again")


def test_sparklines_show_the_last_hour_on_arrival(tapped, live, tmp_path: Path) -> None:
    """Every sparkline is full (60 one-minute buckets) as soon as the page shows, each bucket
    holding the invocations written in that minute, counted here from the rows."""
    driver = tapped
    db = seed_db(tmp_path / "skills.db")
    written = [(inv.skill, at) for inv, at in db.rows]
    for skill, age in (("mypy", timedelta(minutes=5)), ("mypy", timedelta(minutes=5, seconds=10)),
                       ("mypy", timedelta(minutes=31)), ("black", timedelta(minutes=58)),
                       ("ruff-check", timedelta(minutes=12))):
        at = iso_ms(db.now - age)
        store_invocation(db.path, skill, at)
        written.append((skill, at))
    server = serve(live, db.path)
    open_dashboard(driver, server)
    wait_js(driver, ROW_SKILLS + ".length === 6", message="six rows")

    for skill in driver.execute_script(ROW_SKILLS):
        chart = wait_chart(driver, SPARK, skill, SPARK_BUCKETS)
        assert chart["step"] == 60 and chart["points"] == SPARK_BUCKETS
        assert chart_values(chart) == histogram([at for s, at in written if s == skill], chart["start"], 60,
                                                SPARK_BUCKETS), skill
    assert sum(chart_values(driver.execute_script(SPARK, "mypy"))) == 3  # and pytest-run's 20 min old run:
    assert sum(chart_values(driver.execute_script(SPARK, "pytest-run"))) == 1
    # One request per skill shown, for the last hour per minute; no more while nothing changes.
    asked = sent(driver, "get_history")
    assert sorted(m["skill_name"] for m in asked) == sorted(driver.execute_script(ROW_SKILLS))
    assert {(m["window"], m["step"]) for m in asked} == {(3600, 60)}
    seq = server.latest_seq()
    poll(lambda: server.latest_seq() >= seq + 3, message="three more updates")
    assert len(sent(driver, "get_history")) == len(asked)
    assert severe_console_entries(driver, server) == []


def test_the_drill_down_shows_24_hours(tapped, live, tmp_path: Path) -> None:
    """The drill-down's charts hold the last 24 h in 96 buckets of 15 min: invocations, and the
    completed share of each bucket (none where nothing ran)."""
    driver = tapped
    db = seed_db(tmp_path / "skills.db")
    server = serve(live, db.path)
    open_dashboard(driver, server)
    driver.find_element("css selector", '#skills-body tr[data-skill="pytest-run"]').click()
    count = wait_chart(driver, DAY_CHART, "chart-count", DAY_BUCKETS)
    rate = wait_chart(driver, DAY_CHART, "chart-rate", DAY_BUCKETS)
    assert count["step"] == rate["step"] == 900 and count["start"] == rate["start"]
    assert count["points"] == DAY_BUCKETS  # a count in every bucket, empty ones too
    rows = [(inv, at) for inv, at in db.rows if inv.skill == "pytest-run"]
    want = histogram([at for _, at in rows], count["start"], 900, DAY_BUCKETS)
    assert chart_values(count) == want and sum(want) == db.expected_entry("pytest-run")["invocation_count"]
    done = histogram([at for inv, at in rows if inv.completed], count["start"], 900, DAY_BUCKETS)
    assert chart_values(rate) == [d / n if n else None for d, n in zip(done, want)]
    assert 0.0 in chart_values(rate)  # the run 6 h ago that did not complete
    assert [(m["skill_name"], m["window"], m["step"]) for m in sent(driver, "get_history")
            if m["window"] == 86400] == [("pytest-run", 86400, 900)]


def test_a_dropped_connection_is_resumed_without_a_gap(tapped, live, tmp_path: Path) -> None:
    """The network drops the page's connection (a proxy between the two cuts it) while the server
    keeps broadcasting. The page reconnects with since, the server replays what it missed, and
    the page shows every update exactly once, in order."""
    driver = tapped
    db = seed_db(tmp_path / "skills.db")
    server = serve(live, db.path)
    proxy = server.proxy()
    driver.get(f"{server.http_url}/?ws=ws://127.0.0.1:{proxy.port}/")
    wait_js(driver, STATUS + " === 'live'", message="status live")
    wait_chart(driver, SPARK, "pytest-run", SPARK_BUCKETS)
    driver.execute_script(SEQ_LOG)
    wait_js(driver, SHOWN_SEQS + ".length >= 3", message="three updates shown")

    assert server.run(proxy.cut) == 1
    wait_js(driver, STATUS + " === 'reconnecting'", message="status reconnecting")
    shown_before = driver.execute_script(SHOWN_SEQS)
    poll(lambda: server.latest_seq() >= shown_before[-1] + 4, message="four updates broadcast while cut")
    server.call(proxy.restore)
    target = server.latest_seq()

    wait_js(driver, STATUS + " === 'live'", message="status live again")
    notice = wait_js(driver, "const n = document.getElementById('recovery');"
                             "return !n.hidden && n.dataset.state && {state: n.dataset.state, text: n.textContent}",
                     message="a notice about the reconnect")
    assert notice["state"] == "recovered", notice
    missed = int(notice["text"].split("Reconnected: ")[1].split()[0])
    assert missed >= 4 and "nothing lost" in notice["text"]
    wait_js(driver, SHOWN_SEQS + ".slice(-1)[0] >= arguments[0]", target, message=f"seq {target} shown")
    shown = driver.execute_script(SHOWN_SEQS)
    assert shown == list(range(shown[0], shown[-1] + 1)), shown  # no gap, no repeat
    resume = sent(driver, "subscribe")[-1]
    assert resume["since"] == {"epoch": server.server.epoch, "seq": shown_before[-1]}
    assert proxy.accepted >= 2 and len(sent(driver, "get_history")) == 6  # the charts were kept
    assert chart_values(driver.execute_script(SPARK, "pytest-run")).count(1) == 1


def test_the_browser_client_example_shows_the_skills(driver, live, tmp_path: Path) -> None:
    db = seed_db(tmp_path / "skills.db")
    # A page opened from disk sends "Origin: null", which must be allowed explicitly.
    server = serve(live, db.path, allowed_origins=["null"])
    page = (ROOT / "examples" / "browser_client.html").as_uri() + "?url=" + server.ws_url
    driver.get(page)
    wait_js(driver, "return Array.from(document.querySelectorAll('#skills tr[data-skill]')).map(r => r.dataset.skill).join('\\n') === arguments[0]",
            "\n".join(EXPECTED_ORDER), message="the example's table")
    counts = driver.execute_script(
        "return Array.from(document.querySelectorAll('#skills tr[data-skill]')).map(r => r.children[1].textContent)")
    assert counts == [str(db.expected_entry(s)["invocation_count"]) for s in EXPECTED_ORDER]


def test_the_graphql_example_subscribes_and_renders(driver, live, tmp_path: Path) -> None:
    """examples/graphql_client.html speaks graphql-transport-ws from Chromium itself."""
    db = seed_db(tmp_path / "skills.db")
    server = serve(live, db.path, allowed_origins=["null"])
    page = (ROOT / "examples" / "graphql_client.html").as_uri() + "?url=" + server.ws_url
    driver.get(page)
    rows = "return Array.from(document.querySelectorAll('#skills tr[data-skill]')).map(r => r.dataset.skill).join('\\n')"
    wait_js(driver, rows + " === arguments[0]", "\n".join(EXPECTED_ORDER), message="the GraphQL example's table")
    first = int(driver.execute_script("return document.getElementById('seq').textContent"))
    wait_js(driver, "return Number(document.getElementById('seq').textContent) > arguments[0]", first,
            message="a later update rendered")
    counts = driver.execute_script(
        "return Array.from(document.querySelectorAll('#skills tr[data-skill]')).map(r => r.children[1].textContent)")
    assert counts == [str(db.expected_entry(s)["invocation_count"]) for s in EXPECTED_ORDER]
    assert driver.execute_script("return document.getElementById('status').textContent") == "live"
