"""Fixtures for /console: the app in process (httpx, no browser) and a real ``botwire serve``
driven by Chromium through Playwright.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``BOTWIRE_TEST_CHROMIUM``),
never one downloaded by ``playwright install``. Without it the browser tests skip with the
reason, unless ``BOTWIRE_TEST_REQUIRE_BROWSER=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import pytest
from consolekit import VAPI, chromium_path, no_browser, start_console


@pytest.fixture
async def make_console(tmp_path):
    """``await make_console(**settings)``: an app of its own, closed after the test."""
    opened = []

    async def make(voice=None, base_url=None, **settings):
        console, lifespan = await start_console(
            tmp_path / f"c{len(opened)}", voice, base_url, **settings
        )
        opened.append((console, lifespan))
        return console

    yield make
    for console, lifespan in opened:
        await console.client.aclose()
        await lifespan.__aexit__(None, None, None)
        console.engine.close()


@pytest.fixture
async def console(make_console):
    return await make_console(voice=VAPI)


# -- a real server and a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Chromium from the system's packages, headless, for one module: Playwright's sync API
    holds an event loop on this thread while it runs, which async tests cannot share."""
    path = chromium_path()
    if path is None:
        no_browser(
            "no chromium at /usr/bin/chromium (apt-get install chromium): browser tests skipped"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        no_browser(f"playwright is not installed ({exc}): browser tests skipped")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``botwire serve`` on a SQLite file of the module's own."""
    from consolekit import Served

    home = tmp_path_factory.mktemp("console-server")
    server = Served(f"sqlite:///{home}/botwire.db", home).start()
    yield server
    server.close()
