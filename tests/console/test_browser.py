"""/console in Chromium against a real ``botwire serve`` on a real socket.

The screenshots in docs/console/ come from here: taken on every run, written into the docs when
``BOTWIRE_SCREENSHOTS=1`` (``make screenshots``), into the test's temporary directory otherwise.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from consolekit import SCREENSHOTS, Served, call, fill

from botwire._wire import segment
from botwire.voice import core, facts
from botwire.voice.records import CallEnd, Turn

pytestmark = pytest.mark.processes
CALLER = "phone:+14155550123"
PAGE = f"/console/callers/{segment(CALLER)}"
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def data(served):
    """A caller worth looking at, a few more, and two customers' prefixes."""
    m = served.memory(CALLER)
    analysis = facts.Origin("analysis", "vapi", "call-0005")
    core.run(
        facts.write(
            {"customer_name": "Ada Lovelace", "email": "ada@example.com", "plan": "premium"},
            facts.Origin("tool", "vapi", "call-0002"),
        ),
        m,
    )
    core.run(facts.write({"allergies": ["peanuts"], "preferred_time": "mornings"}, analysis), m)
    for n in range(1, 7):
        core.run(core.end_call(_call(n)), m)
    core.run(facts.write({"plan": "business"}, facts.Origin("tool", "retell", "call-0006")), m)
    m.set("open:refund", "refund for order A-1042 pending approval")
    core.run(core.remember_fact("prefers to be called Ada", "call-0004"), m)
    core.run(core.remember_fact("asked for invoices by email", "call-0006"), m)
    for i in range(1, 9):
        fill(served.memory(f"phone:+1415555{i:04d}"), calls=i % 3)
    for ns in ("acme:1", "acme:2", "globex:1"):
        served.memory(ns).set("customer_name", f"customer of {ns.split(':')[0]}")
    return served


def _call(n: int) -> CallEnd:
    base = call(n)
    said = {
        1: ("I'd like to order a blue kettle.", "Done: order A-1042, arriving Friday."),
        2: ("Can you email me the invoice?", "Sent to ada@example.com."),
        3: ("The kettle arrived damaged.", "Sorry! I've opened a refund for A-1042."),
    }.get(n % 4, ("Any news on my refund?", "It is waiting for approval; I'll call back."))
    ended = base.ended_at or 0
    turns = (Turn("user", said[0], ended - 60), Turn("assistant", said[1], ended - 50))
    summary = f"{said[0]} {said[1]}"
    return CallEnd(
        "retell" if n % 2 else "vapi",
        base.call_id,
        base.caller,
        started_at=base.started_at,
        ended_at=ended,
        duration_s=95 + n * 7,
        summary=summary,
        outcome=base.outcome,
        successful=base.successful,
        turns=turns,
        extracted={"last_order": "A-1042", "sentiment": "positive" if n % 3 else "neutral"},
        evaluation={"resolved": n % 3 != 0},
    )


def shot(page, name: str, tmp_path, **options) -> None:
    where = SCREENSHOTS if os.environ.get("BOTWIRE_SCREENSHOTS") == "1" else tmp_path
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), **options)


@pytest.fixture
def open_page(browser, data):
    """``open_page(key)``: a page of a fresh browser context, signed in with ``key``."""
    contexts = []

    def make(key: str | None = None, viewport=(1280, 860)):
        context = browser.new_context(
            base_url=data.base, viewport={"width": viewport[0], "height": viewport[1]}
        )
        contexts.append(context)
        page = context.new_page()
        page.problems = []  # CSP violations, script errors, files that did not load
        page.on("console", lambda m: "Refused" in m.text and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.on("response", lambda r: _failed_file(r) and page.problems.append(r.url))
        if key is not False:
            sign_in(page, key or data.admin)
        return page

    yield make
    for context in contexts:
        context.close()


def _failed_file(response) -> bool:
    return response.request.resource_type != "document" and response.status >= 400


def sign_in(page, key: str) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/callers$"))


# -- signing in -----------------------------------------------------------------------------------


def test_sign_in_and_out(open_page, data, tmp_path):
    page = open_page(False)
    page.goto("/console/callers")
    assert page.url.endswith("/console/sign-in")
    shot(page, "sign-in", tmp_path)
    page.get_by_label("API key").fill("bw_wrong")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    page.get_by_label("API key").fill(data.admin)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/callers$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "botwire_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert data.admin not in page.content()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/sign-in\?signed_out=1$"))
    assert "signed out" in page.get_by_role("status").inner_text()
    page.goto("/console/callers")
    assert page.url.endswith("/console/sign-in")
    assert page.problems == []


def test_a_session_expires(browser, tmp_path_factory):
    home = tmp_path_factory.mktemp("console-expiry")
    server = Served(f"sqlite:///{home}/botwire.db", home, console_idle=1.5).start()
    try:
        context = browser.new_context(base_url=server.base)
        page = context.new_page()
        sign_in(page, server.admin)
        time.sleep(2.0)
        page.reload()
        assert re.search(r"/console/sign-in\?expired=1$", page.url)
        assert "Your session ended" in page.get_by_role("status").inner_text()
        context.close()
    finally:
        server.close()


def test_keyboard_and_labels(open_page):
    page = open_page()
    page.goto(PAGE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
           .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
           .map(e => e.name)"""
    )
    assert unlabelled == []
    summary = page.locator("details.transcript summary").first  # a transcript by keyboard
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("details.transcript").first.get_attribute("open") is not None


# -- scopes and rights ----------------------------------------------------------------------------


def test_a_scoped_key_never_sees_other_prefixes(open_page, data):
    page = open_page(data.key(["acme:"], "admin"))
    rows = page.locator("tbody th").all_inner_texts()
    assert rows == ["acme:1", "acme:2"]
    page.get_by_label("Phone number or namespace prefix").fill("globex")
    page.get_by_role("button", name="Search").click()
    assert "globex:1" not in page.content()
    response = page.goto(f"/console/callers/{segment('globex:1')}")
    assert response.status == 403 and "customer of globex" not in page.content()
    response = page.goto(f"/console/callers/{segment('globex:1')}/search?q=customer")
    assert response.status == 403
    assert page.goto(f"/console/callers/{segment('globex:1')}/export").status == 403


def test_a_read_key_has_no_edit_controls_and_its_posts_are_refused(open_page, data):
    page = open_page(data.key(["phone:"], "read"))
    page.goto(PAGE)
    assert page.get_by_text("Ada Lovelace").count() >= 1
    assert page.locator("form[method=post]").count() == 1  # signing out, nothing else
    assert page.get_by_text("Edit", exact=True).count() == 0
    assert page.get_by_text("Forget this caller").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    version = str(data.memory(CALLER).info("email").version)
    form = {
        "csrf": csrf,
        "key": "email",
        "value": "eve@example.com",
        "format": "text",
        "version": version,
    }
    answer = page.request.post(f"{data.base}{PAGE}/facts", form=form)
    assert answer.status == 403
    assert data.memory(CALLER).get("email") == "ada@example.com"


def test_a_post_without_the_csrf_token_is_refused(open_page, data):
    page = open_page()
    page.goto(PAGE)
    form = {"key": "email", "value": "eve@example.com", "format": "text", "version": "1"}
    assert page.request.post(f"{data.base}{PAGE}/facts", form=form).status == 403
    assert page.request.post(f"{data.base}{PAGE}/forget", form={"confirm": CALLER}).status == 403
    assert data.memory(CALLER).get("email") == "ada@example.com"


# -- facts -----------------------------------------------------------------------------------


def test_editing_a_fact_and_a_conflict_between_two_browsers(open_page, data, tmp_path):
    first, second = open_page(), open_page()
    for page in (first, second):
        page.goto(PAGE)
    shot(first, "caller", tmp_path, full_page=True)
    row = first.locator("tr", has=first.get_by_role("rowheader", name="preferred_time"))
    row.get_by_text("Edit").click()
    row.get_by_label("New value of preferred_time").fill("afternoons, after 2 pm")
    row.get_by_role("button", name="Save preferred_time").click()
    assert "Saved preferred_time" in first.get_by_role("status").first.inner_text()
    row = first.locator("tr", has=first.get_by_role("rowheader", name="preferred_time"))
    assert "console" in row.inner_text() and "afternoons" in row.inner_text()

    row = second.locator("tr", has=second.get_by_role("rowheader", name="preferred_time"))
    row.get_by_text("Edit").click()
    row.get_by_label("New value of preferred_time").fill("evenings")
    row.get_by_role("button", name="Save preferred_time").click()
    alert = second.get_by_role("alert")
    assert "changed meanwhile" in alert.inner_text()
    assert "afternoons, after 2 pm" in alert.inner_text() and "evenings" in alert.inner_text()
    alert.scroll_into_view_if_needed()
    shot(second, "conflict", tmp_path)
    assert data.memory(CALLER).get("preferred_time") == "afternoons, after 2 pm"
    assert first.problems == [] and second.problems == []


def test_a_script_in_a_value_is_text(open_page, data):
    data.memory("test:markup").set("evil", EVIL)
    page = open_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(f"/console/callers/{segment('test:markup')}")
        assert page.get_by_text(EVIL, exact=True).count() >= 1
        assert page.locator("script").count() == 1  # the console's own
        assert dialogs == []
    finally:
        data.memory("test:markup").clear()


def test_forget_with_confirmation(open_page, data):
    data.memory("phone:+19995550100").set("customer_name", "To Be Forgotten")
    page = open_page()
    page.goto(f"/console/callers/{segment('phone:+19995550100')}")
    page.get_by_text("Forget this caller…").click()
    button = page.get_by_role("button", name="Forget this caller")
    assert button.is_disabled()  # the script waits for the namespace, typed exactly
    page.get_by_label("Type phone:+19995550100 to confirm").fill("phone:+1999555010")
    assert button.is_disabled()
    page.get_by_label("Type phone:+19995550100 to confirm").fill("phone:+19995550100")
    button.click()
    page.wait_for_url(re.compile(r"/console/callers\?forgotten="))
    assert (
        "Forgot everything stored for phone:+19995550100" in page.get_by_role("status").inner_text()
    )
    assert data.memory("phone:+19995550100").get("customer_name") is None


# -- keys, the other pages, screenshots ----------------------------------------------------


def test_a_new_keys_secret_is_shown_once(open_page, data, tmp_path):
    page = open_page()
    page.goto("/console/keys")
    page.get_by_text("Create a key").click()
    page.get_by_label("Name", exact=True).fill("acme voice agent")
    page.get_by_label("Namespace prefixes, one a line").fill("acme:")
    page.get_by_label("Rights").select_option("write")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("bw_")
    assert page.get_by_role("button", name="Copy").is_visible()
    shot(page, "keys", tmp_path, mask=[page.get_by_label("Secret")], mask_color="#d0d7de")
    page.goto("/console/keys")
    assert secret not in page.content()
    agent = open_page(secret)
    assert agent.locator("tbody th").all_inner_texts() == ["acme:1", "acme:2"]


def test_the_other_pages(open_page, tmp_path):
    page = open_page()
    shot(page, "callers", tmp_path)
    page.goto(PAGE)
    page.locator("details.transcript summary").first.click()
    page.locator("#calls-h").scroll_into_view_if_needed()
    shot(page, "timeline", tmp_path)
    page.goto(f"{PAGE}/search?q=refund")
    assert "refund" in page.locator("pre.memory").inner_text()
    shot(page, "search", tmp_path)
    page.goto("/console/usage")
    shot(page, "usage", tmp_path)
    page.goto("/console/status")
    assert "/voice/vapi" in page.content()
    shot(page, "status", tmp_path)
    phone = open_page(viewport=(390, 844))
    phone.goto(PAGE)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the screen; tables scroll inside their box
    shot(phone, "caller-phone", tmp_path)
    assert page.problems == [] and phone.problems == []
