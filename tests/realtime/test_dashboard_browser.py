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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from browser import LiveServer, browser_missing, make_driver, wait_js
from skills_seed import EXPECTED_ORDER, seed_db, store_invocation, utc_now

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

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = make_driver(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield d
    finally:
        d.quit()


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


def severe_console_entries(driver: Any) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


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
    assert severe_console_entries(driver) == []  # no script error, no missing file


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

    now = utc_now()
    for i in range(3):
        store_invocation(db.path, "mypy", now - timedelta(seconds=5 * i), completed=True, duration=2.0)
    # mypy: 7 in 24 h (3 in the last hour), 7 in total -> ahead of pytest-run (6, 8).
    wait_cell(driver, "mypy", "invocation_count", "7")
    wait_cell(driver, "mypy", "invocation_count_1h", "3")
    wait_js(driver, ROW_SKILLS + "[0] === 'mypy'", message="mypy ranked first")
    assert driver.execute_script(ROW_SKILLS)[:3] == ["mypy", "pytest-run", "ruff-check"]
    assert int(driver.execute_script("return document.getElementById('seq').dataset.value")) > first_seq
    # The sparkline grew from the updates the page received.
    wait_js(driver, "const s = document.querySelector('#skills-body tr[data-skill=\"mypy\"] svg.sparkline');"
                    "return Number(s.dataset.points) >= 3 && s.querySelector('polyline') !== null",
            message="a drawn sparkline")

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


def test_reconnects_after_a_restart_and_keeps_the_drill_down(driver, live, tmp_path: Path) -> None:
    db = seed_db(tmp_path / "skills.db")
    first = serve(live, db.path)
    open_dashboard(driver, first)
    wait_cell(driver, "ruff-check", "invocation_count", "4")
    driver.find_element("css selector", '#skills-body tr[data-skill="ruff-check"]').click()
    wait_detail(driver, "invocation_count_24h", "4")
    assert first.subscriptions() == ["ruff-check"]

    port = first.port
    first.stop()
    wait_js(driver, STATUS + " === 'reconnecting'", message="status reconnecting")
    assert driver.execute_script(DETAIL, "invocation_count_24h") == "4"  # the last figures stay up

    second = serve(live, db.path, port=port)
    wait_js(driver, STATUS + " === 'live'", timeout=40, message="status live again")
    # The page re-applied its drill-down subscription on the new connection.
    poll(lambda: second.subscriptions() == ["ruff-check"], message="the subscription re-applied")

    now = utc_now()
    store_invocation(db.path, "ruff-check", now, completed=True, duration=0.5)
    store_invocation(db.path, "ruff-check", now - timedelta(seconds=1), completed=True, duration=0.5)
    wait_detail(driver, "invocation_count_24h", "6")  # data flows after the restart

    driver.find_element("id", "back").click()
    wait_js(driver, ROW_SKILLS + ".length === 6", message="all skills again")
    poll(lambda: second.subscriptions() == [None], message="subscribed to all skills again")


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
