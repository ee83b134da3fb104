"""The dashboard at GET /, in real headless Chromium (Debian's chromium + chromedriver, driven by
selenium): it loads from the server, shows the seeded skills, follows new invocations, highlights
an anomaly, drills down into one skill, and reconnects after the server restarts.

A screenshot of the page with an anomaly goes to test-artifacts/dashboard.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skills_seed import insert_anomaly, store_invocation, utc_now
from wsutil import wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A loaded 2-core machine runs a browser slowly; these are ceilings, not expectations.
PAGE_TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (make setup installs them)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    # Under `make asan` this process runs with the sanitizer runtime preloaded; the browser
    # must not inherit it.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC")}
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def until(check: Callable[[], Any], what: str, timeout: float = PAGE_TIMEOUT) -> Any:
    """Poll a browser-side check from the asyncio loop (which keeps serving the server)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value {last!r}")


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def rows(driver: Any) -> list[dict[str, Any]]:
    return js(driver, """
        return [...document.querySelectorAll('#skills tbody tr')].map(tr => ({
            skill: tr.dataset.skill, count: tr.cells[2].textContent,
            anomalous: tr.classList.contains('anomalous'),
            spark: tr.querySelector('polyline') ? tr.querySelector('polyline').getAttribute('points') : ''}));""")


def status(driver: Any) -> str:
    return js(driver, "return document.getElementById('status').dataset.state")


async def open_page(driver: Any, server: Any) -> None:
    await asyncio.to_thread(driver.get, f"http://127.0.0.1:{server.port}/")


async def test_page_shows_the_seeded_skills_and_follows_new_invocations(server_factory, seeded_db, browser) -> None:
    server = await server_factory(host="127.0.0.1")
    await open_page(browser, server)
    assert await asyncio.to_thread(lambda: browser.title) == "Session-Buddy · live skills"
    await until(lambda: status(browser) == "live", "the live status")
    shown = await until(lambda: [r["skill"] for r in rows(browser)] or None, "skill rows")
    assert shown == seeded_db.expected_order

    before = {r["skill"]: r["count"] for r in rows(browser)}["black"]
    for _ in range(3):
        store_invocation(seeded_db.path, "black", utc_now(), completed=True, duration=1.0)
    await until(lambda: {r["skill"]: r["count"] for r in rows(browser)}["black"] == str(int(before) + 3),
                "black's 24 h count to grow by 3")
    # Sparklines fill in from successive updates.
    await until(lambda: all(r["spark"] for r in rows(browser)), "a sparkline on every row")


async def test_injected_anomaly_is_highlighted_with_its_z_score(server_factory, seeded_db, browser) -> None:
    server = await server_factory(host="127.0.0.1")
    await open_page(browser, server)
    await until(lambda: status(browser) == "live", "the live status")
    insert_anomaly(seeded_db.path, "mypy", "performance_drop", 0.8, 0.3, -2.8)

    item = await until(lambda: js(browser, """
        const li = document.querySelector('#anomalies li[data-skill="mypy"]');
        return li && {text: li.textContent, type: li.dataset.type};"""), "the anomaly in the list")
    assert item["type"] == "performance_drop"
    assert "z -2.80" in item["text"] and "baseline 80.0% → observed 30.0%" in item["text"]
    assert js(browser, "return document.getElementById('anomaly-count').textContent") == "1"
    await until(lambda: any(r["skill"] == "mypy" and r["anomalous"] for r in rows(browser)),
                "mypy's row highlighted")
    assert not any(r["anomalous"] for r in rows(browser) if r["skill"] != "mypy")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert await asyncio.to_thread(browser.save_screenshot, str(shot))
    assert shot.stat().st_size > 10_000


async def test_drill_down_subscribes_to_one_skill_and_shows_get_metrics(server_factory, seeded_db, browser) -> None:
    server = await server_factory(host="127.0.0.1")
    await open_page(browser, server)
    await until(lambda: len(rows(browser)) == len(seeded_db.expected_order), "all rows")
    js(browser, "document.querySelector('#skills tbody tr[data-skill=\"ruff-check\"]').click()")

    await until(lambda: [r["skill"] for r in rows(browser)] == ["ruff-check"], "only ruff-check listed")
    fields = await until(lambda: js(browser, """
        if (document.getElementById('detail').hidden) return null;
        const out = {};
        for (const dt of document.querySelectorAll('#detail-fields dt')) out[dt.textContent] = dt.nextSibling.textContent;
        return Object.keys(out).length ? out : null;"""), "the get_metrics details")
    expected = seeded_db.expected_entry("ruff-check")
    assert fields["invocations, all time"] == str(expected["total_invocations"])
    assert fields["invocations, 24 h"] == str(expected["invocation_count"])
    assert fields["anomalous"] == "no"
    # The server sees the subscription too.
    await wait_until(lambda: [c.subscription_skill for c in server.clients] == ["ruff-check"],
                     message="the page subscribed to ruff-check")

    js(browser, "document.getElementById('back').click()")
    await until(lambda: len(rows(browser)) == len(seeded_db.expected_order), "all skills again")
    await wait_until(lambda: [(c.subscribed, c.subscription_skill) for c in server.clients] == [(True, None)],
                     message="the page subscribed to all skills")


async def test_page_reconnects_after_the_server_restarts(server_factory, seeded_db, browser) -> None:
    first = await server_factory(host="127.0.0.1")
    port = first.port
    await open_page(browser, first)
    await until(lambda: status(browser) == "live", "the live status")
    await first.stop()
    await until(lambda: status(browser) == "reconnecting", "the reconnecting status")

    second = await server_factory(host="127.0.0.1", port=port)
    await until(lambda: status(browser) == "live", "live again on the new server")
    await wait_until(lambda: len(second.clients) == 1, message="the page connected to the new server")
    seq = js(browser, "return document.getElementById('updated').textContent")
    await until(lambda: js(browser, "return document.getElementById('updated').textContent") != seq,
                "updates from the new server")


async def test_browser_client_example_fills_its_table(server_factory, seeded_db, browser) -> None:
    """examples/browser_client.html, opened from disk, talks to the server given by ?url=."""
    server = await server_factory(host="127.0.0.1")
    insert_anomaly(seeded_db.path, "black", "performance_drop", 0.95, 0.4, -2.5)
    page = Path(__file__).resolve().parents[2] / "examples" / "browser_client.html"
    await asyncio.to_thread(browser.get, f"{page.as_uri()}?url=ws://127.0.0.1:{server.port}")
    shown = await until(lambda: js(browser, """
        return [...document.querySelectorAll('#top-skills tr')].map(tr => tr.dataset.skill);""") or None,
        "the example's table")
    assert shown == seeded_db.expected_order
    await until(lambda: js(browser, """
        const tr = document.querySelector('#top-skills tr[data-skill="black"]');
        return tr && tr.className === 'anomaly' && document.querySelector('#anomalies li') !== null;"""),
        "black highlighted as an anomaly")
