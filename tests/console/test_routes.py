"""/console without a browser: the app in process over a real SQLite file, through httpx."""

from __future__ import annotations

import sqlite3

import asyncio
import hashlib
import json

import pytest
from consolekit import START, VAPI, call, field, fill

from botwire import Memory
from botwire._wire import segment
from botwire.server.console.sessions import NAMESPACE
from botwire.voice import core, facts

CALLER = "phone:+14155550123"
PAGE = f"/console/callers/{segment(CALLER)}"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def memory(console, ns: str = CALLER) -> Memory:
    return Memory(ns, engine=console.engine)


def assert_secure(response) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] in ("same-origin", "no-referrer")
    assert headers["x-frame-options"] == "DENY"


# -- signing in ---------------------------------------------------------------------------------


async def test_pages_need_a_session(console):
    for path in ("/console", "/console/callers", PAGE, "/console/keys", "/console/status"):
        r = await console.page(path)
        assert r.status_code == 303, path
        assert r.headers["location"] == "/console/sign-in"
        assert_secure(r)


async def test_every_answer_carries_the_security_headers(console):
    await console.sign_in()
    for path in (
        "/console/sign-in",
        "/console/callers",
        PAGE,
        "/console/static/console.css",
        "/console/static/console.js",
        "/console/no-such-page",
        "/console/static/x",
    ):
        r = await console.page(path)
        assert_secure(r)
        if not path.startswith("/console/static/console."):
            assert r.headers["cache-control"] == "no-store", path
    assert (await console.page("/console/no-such-page")).status_code == 404


async def test_sign_in_opens_a_session_kept_hashed_in_the_database(console):
    r = await console.sign_in()
    assert r.status_code == 303 and r.headers["location"] == "/console/callers"
    cookie = next(
        v
        for k, v in r.headers.multi_items()
        if k == "set-cookie" and v.startswith("botwire_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http; see the https test below
    session_id = console.client.cookies["botwire_console"]
    stored = dict(memory(console, NAMESPACE).items())
    assert hashlib.sha256(session_id.encode()).hexdigest() in stored
    assert session_id not in json.dumps(stored) and console.admin not in json.dumps(stored)
    page = await console.page("/console/callers")
    assert page.status_code == 200 and "Sign out" in page.text
    assert console.admin not in page.text


async def test_cookies_are_secure_over_https(make_console):
    console = await make_console(base_url="https://botwire.test")
    r = await console.sign_in()
    cookies = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
    assert all("Secure" in c for c in cookies if c.startswith("botwire_console="))


async def test_a_wrong_key_is_refused_and_guessing_is_throttled(make_console):
    console = await make_console(auth_failures=3, auth_window=60)
    for _ in range(3):
        r = await console.sign_in("bw_not-a-key")
        assert r.status_code == 401 and "not valid" in r.text
        assert "botwire_console" not in console.client.cookies
    r = await console.sign_in("bw_not-a-key")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert (await console.sign_in()).status_code == 303  # a valid key is never refused


async def test_the_sign_in_form_needs_its_own_token(console):
    r = await console.client.post("/console/sign-in", data={"api_key": console.admin})
    assert r.status_code == 403 and "botwire_console" not in console.client.cookies


async def test_sign_out_ends_the_session_everywhere(console):
    await console.sign_in()
    session_id = console.client.cookies["botwire_console"]
    assert (await console.post("/console/sign-out", {}, csrf=False)).status_code == 403
    r = await console.post("/console/sign-out", {})
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?signed_out=1"
    other = console.new_client()
    other.cookies.set("botwire_console", session_id, path="/console")
    assert (await other.get("/console/callers")).status_code == 303
    assert list(memory(console, NAMESPACE).keys()) == []


async def test_sessions_end_when_idle(make_console):
    console = await make_console(console_idle=0.6)
    await console.sign_in()
    for _ in range(3):  # use keeps it alive past the idle time
        await asyncio.sleep(0.3)
        assert (await console.page("/console/callers")).status_code == 200
    await asyncio.sleep(0.8)
    r = await console.page("/console/callers")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?expired=1"
    assert "ended" in (await console.page("/console/sign-in?expired=1")).text


async def test_sessions_end_at_their_max_age_however_busy(make_console):
    console = await make_console(console_idle=60, console_max_age=2.0)
    await console.sign_in()
    for _ in range(4):
        await asyncio.sleep(0.25)
        assert (await console.page("/console/callers")).status_code == 200
    await asyncio.sleep(1.2)
    assert (await console.page("/console/callers")).status_code == 303


async def test_a_revoked_key_ends_its_sessions(console):
    key = console.make_key(["acme:"], "read")
    await console.sign_in(key)
    admin = console.new_client()
    await console.sign_in(client=admin)
    listed = (await console.page("/console/keys", admin)).text
    key_id = next(line for line in listed.split('action="/console/keys/')[1:]).split("/")[0]
    await console.post(f"/console/keys/{key_id}/revoke", {}, client=admin)
    assert (await console.page("/console/callers")).status_code == 303


# -- CSRF, rights and scopes --------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_refused(console):
    fill(memory(console), calls=1)
    await console.sign_in()
    data = {"key": "customer_name", "value": "Mallory", "format": "text", "version": "0"}
    r = await console.post(f"{PAGE}/facts", data, csrf=False)
    assert r.status_code == 403
    r = await console.post(f"{PAGE}/facts", {**data, "csrf": "forged"}, csrf=False)
    assert r.status_code == 403
    assert memory(console).get("customer_name") is None
    r = await console.post(f"{PAGE}/forget", {"confirm": CALLER}, csrf=False)
    assert r.status_code == 403 and memory(console).get("last_call") is not None


async def test_a_csrf_token_belongs_to_its_session(console):
    await console.sign_in()
    mine = await console.csrf()
    other = console.new_client()
    await console.sign_in(client=other)
    data = {"csrf": mine, "key": "k", "value": "v", "format": "text", "version": "0"}
    assert (await other.post(f"{PAGE}/facts", data=data)).status_code == 403


async def test_a_scoped_key_never_sees_other_prefixes(console):
    for ns in ("acme:1", "acme:2", "globex:1"):
        memory(console, ns).set("customer_name", "Ada")
    key = console.make_key(["acme:"], "admin")
    await console.sign_in(key)
    listed = (await console.page("/console/callers")).text
    assert "acme:1" in listed and "acme:2" in listed and "globex" not in listed
    searched = (await console.page("/console/callers?q=globex")).text
    assert "globex:1" not in searched
    assert "globex:1" not in (await console.page("/console/usage")).text
    other = f"/console/callers/{segment('globex:1')}"
    for path in (other, f"{other}/search?q=Ada", f"{other}/export", f"{other}/forget"):
        r = await console.page(path)
        assert r.status_code == 403, path
        assert "Ada" not in r.text
    data = {"key": "customer_name", "value": "Eve", "format": "text", "version": "1"}
    assert (await console.post(f"{other}/facts", data)).status_code == 403
    assert (await console.post(f"{other}/forget", {"confirm": "globex:1"})).status_code == 403
    assert memory(console, "globex:1").get("customer_name") == "Ada"


async def test_a_read_key_gets_no_edit_controls_and_its_posts_are_refused(console):
    fill(memory(console), calls=1)
    key = console.make_key(["phone:"], "read")
    await console.sign_in(key)
    page = (await console.page(PAGE)).text
    assert "last_order" in page
    for control in ('/facts"', "/facts/delete", "Add a fact", "/forget", "Edit"):
        assert control not in page, control
    assert "Keys" not in (await console.page("/console/callers")).text.split("</nav>")[0]
    version = memory(console).info("last_order").version
    data = {"key": "last_order", "value": "X", "format": "text", "version": str(version)}
    assert (await console.post(f"{PAGE}/facts", data)).status_code == 403
    data = {"key": "last_order", "version": str(version)}
    assert (await console.post(f"{PAGE}/facts/delete", data)).status_code == 403
    assert (await console.post(f"{PAGE}/forget", {"confirm": CALLER})).status_code == 403
    assert (await console.page("/console/keys")).status_code == 403
    assert (await console.post("/console/keys", {"prefixes": "phone:"})).status_code == 403
    assert memory(console).get("last_order") == "A-1"


# -- facts ----------------------------------------------------------------------------------------


async def test_an_edit_is_a_compare_and_set_through_facts_write(console):
    fill(memory(console), calls=1)
    await console.sign_in()
    page = (await console.page(PAGE)).text
    assert "analysis" in page and "call-0001" in page  # the extracted fact's provenance
    version = memory(console).info("last_order").version
    data = {"key": "last_order", "value": "A-77", "format": "text", "version": str(version)}
    r = await console.post(f"{PAGE}/facts", data)
    assert r.status_code == 303 and "saved=last_order" in r.headers["location"]
    assert memory(console).get("last_order") == "A-77"
    now = core.run(facts.fact("last_order"), memory(console))
    assert (now.source, now.platform, now.call_id) == ("console", None, None)
    history = core.run(facts.history("last_order"), memory(console))
    assert [h.source for h in history] == ["console", "analysis"]
    # the same form again: its version is stale, so nothing is written
    r = await console.post(f"{PAGE}/facts", {**data, "value": "A-88"})
    assert r.status_code == 409
    assert "changed meanwhile" in r.text and "A-77" in r.text and "A-88" in r.text
    assert memory(console).get("last_order") == "A-77"
    assert len(core.run(facts.history("last_order"), memory(console))) == 2


async def test_json_values_and_new_facts(console):
    await console.sign_in()
    data = {"key": "allergies", "value": '["nuts", "milk"]', "format": "json", "version": "0"}
    assert (await console.post(f"{PAGE}/facts", data)).status_code == 303
    assert memory(console).get("allergies") == ["nuts", "milk"]
    # adding a fact that exists meanwhile is a conflict too
    assert (await console.post(f"{PAGE}/facts", data)).status_code == 409
    bad = {**data, "key": "other", "value": "[nuts"}
    r = await console.post(f"{PAGE}/facts", bad)
    assert r.status_code == 400 and "not valid JSON" in r.text
    for key in ("~fact/x", "last_call", "open:refund"):
        r = await console.post(f"{PAGE}/facts", {**data, "key": key})
        assert r.status_code == 400, key


async def test_deleting_a_fact_keeps_its_history(console):
    memory(console).set("customer_name", "Ada")
    await console.sign_in()
    version = memory(console).info("customer_name").version
    r = await console.post(f"{PAGE}/facts/delete", {"key": "customer_name", "version": "99"})
    assert r.status_code == 409 and memory(console).get("customer_name") == "Ada"
    r = await console.post(f"{PAGE}/facts/delete", {"key": "customer_name", "version": "0"})
    assert r.status_code == 400 and "reload the page" in r.text
    assert memory(console).get("customer_name") == "Ada"
    # nothing of a failed delete reaches the fact's history
    assert core.run(facts.history("customer_name"), memory(console)) == []
    data = {"key": "customer_name", "version": str(version)}
    assert (await console.post(f"{PAGE}/facts/delete", data)).status_code == 303
    assert memory(console).get("customer_name") is None
    history = core.run(facts.history("customer_name"), memory(console))
    assert history[0].deleted and history[0].source == "console"


async def test_a_script_in_a_value_is_shown_as_text(console):
    evil = "<script>alert(1)</script>"
    m = memory(console)
    core.run(facts.write({"evil": evil, evil: "key too"}, facts.Origin("tool", evil, evil)), m)
    core.run(core.remember_fact(evil, evil), m)
    ended = call(1)
    core.run(core.end_call(ended.__class__(**{**ended.__dict__, "summary": evil})), m)
    await console.sign_in()
    for path in (PAGE, f"{PAGE}/search?q=script+alert", "/console/callers"):
        html = (await console.page(path)).text
        assert "<script>alert" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await console.page(PAGE)).text


# -- the caller's page ----------------------------------------------------------------------------


async def test_the_memory_shown_is_what_the_next_call_receives(console):
    m = memory(console)
    fill(m, calls=3)
    m.set("open:refund", "refund for A-2 pending")
    await console.sign_in()
    html = (await console.page(PAGE)).text
    brief = core.run(core.briefing(), m)
    shown = html.split('aria-label="memory text">')[1].split("</pre>")[0]
    assert shown.replace("&#39;", "'").replace("&amp;", "&") == brief.memory
    assert "refund for A-2 pending" in html.split('id="open-h"')[1]


async def test_the_timeline_pages_back_with_each_calls_transcript(console):
    m = memory(console)
    fill(m, calls=45)
    m.log("conversation").append(
        {
            "role": "user",
            "text": "a call without a record yet",
            "call_id": "call-9999",
            "platform": "vapi",
            "ts": START + 10**7,  # newer than every call: skipped
        }
    )
    await console.sign_in()
    seen: list[str] = []
    path = PAGE
    for expected in (20, 20, 5):
        html = (await console.page(path)).text
        calls = html.split('<ol class="calls">')[1].split("</ol>\n  <nav")[0]
        items = calls.split("<article")[1:]
        assert len(items) == expected
        for item in items:
            n = int(item.split("call <code>call-")[1][:4])
            seen.append(n)
            assert f"Where is order A-{n}?" in item and f"Order A-{n} ships tomorrow." in item
            assert item.count("<li class=") == 2
        older = html.split("?before=")
        path = f"{PAGE}?before={older[1].split('#')[0]}" if len(older) > 1 else ""
    assert seen == list(range(45, 0, -1)) and path == ""


async def test_search_within_a_caller_is_the_recall_tool(console):
    m = memory(console)
    fill(m, calls=3)
    await console.sign_in()
    html = (await console.page(f"{PAGE}/search?q=order+A-2")).text
    recall = core.run(core.recall("order A-2", 10), m)
    assert recall.splitlines()[0].replace("'", "&#39;") in html
    assert "A-2" in html.split('id="hits-h"')[1]


async def test_export_is_a_json_download_of_everything(console):
    m = memory(console)
    fill(m, calls=2)
    await console.sign_in()
    r = await console.page(f"{PAGE}/export")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "no-store"
    data = r.json()
    assert data["namespace"] == CALLER
    assert data["keys"]["last_order"] == "A-2"
    assert "~fact/last_order" in data["fact_records"]
    assert [e["value"]["call_id"] for e in data["logs"]["calls"]] == ["call-0001", "call-0002"]
    assert len(data["logs"]["conversation"]) == 4


async def test_forget_needs_the_namespace_typed_and_admin(console):
    m = memory(console)
    fill(m, calls=1)
    writer = console.new_client()
    await console.sign_in(console.make_key(["phone:"], "write"), client=writer)
    assert "/forget" not in (await console.page(PAGE, writer)).text
    assert (await console.post(f"{PAGE}/forget", {"confirm": CALLER}, writer)).status_code == 403
    await console.sign_in()
    r = await console.post(f"{PAGE}/forget", {"confirm": "phone:+1415555012"})
    assert r.status_code == 400 and m.get("last_call") is not None
    r = await console.post(f"{PAGE}/forget", {"confirm": CALLER})
    assert r.status_code == 303 and m.get("last_call") is None
    assert m.log("calls").count() == 0
    assert CALLER not in (await console.page("/console/callers")).text.split("<table")[-1]


# -- the callers' list --------------------------------------------------------------------------


async def test_the_callers_list_pages_with_a_cursor(console):
    for i in range(120):
        memory(console, f"phone:+1415555{i:04d}").set("customer_name", f"caller {i}")
    fill(memory(console, "phone:+14155550007"), calls=2)
    await console.sign_in()
    names: list[str] = []
    path = "/console/callers"
    while path:
        html = (await console.page(path)).text
        rows = html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
        names += [row.split("</a>")[0].rsplit(">", 1)[1] for row in rows]
        if "phone:+14155550007</a>" in html:
            row = html.split("phone:+14155550007</a>")[1].split("</tr>")[0]
            cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
            assert cells == ["2", "2"]  # customer_name and last_order; two call records
        more = html.split("cursor=")
        path = "/console/callers?cursor=" + more[1].split('"')[0] if len(more) > 1 else ""
    assert names == sorted(f"phone:+1415555{i:04d}" for i in range(120))


async def test_the_callers_list_finds_phone_numbers(make_console):
    console = await make_console(voice={"default_country": "1"})
    for ns in ("phone:+14155550123", "phone:+14155550999", "phone:+442079460958", "acme:1"):
        memory(console, ns).set("customer_name", "x")
    await console.sign_in()

    async def listed(q: str) -> list[str]:
        html = (await console.page(f"/console/callers?q={q}")).text
        return [
            n
            for n in ("phone:+14155550123", "phone:+14155550999", "phone:+442079460958", "acme:1")
            if f">{n}</a>" in html
        ]

    assert await listed("%2B1+(415)+555-0123") == ["phone:+14155550123"]
    assert await listed("415+555+0123") == ["phone:+14155550123"]  # national, default_country 1
    assert await listed("%2B1415") == ["phone:+14155550123", "phone:+14155550999"]
    assert await listed("0044") == ["phone:+442079460958"]
    assert await listed("acme") == ["acme:1"]


# -- keys, usage, status --------------------------------------------------------------------------


async def test_a_new_keys_secret_is_shown_once(console):
    await console.sign_in()
    r = await console.post(
        "/console/keys", {"name": "agent", "prefixes": "acme:", "rights": "write"}
    )
    assert r.status_code == 201
    secret = r.text.split('id="new-secret" class="secret-value" value="')[1].split('"')[0]
    assert secret.startswith("bw_")
    assert secret not in (await console.page("/console/keys")).text
    agent = console.new_client()
    assert (await console.sign_in(secret, client=agent)).status_code == 303
    assert (await console.page("/console/keys", agent)).status_code == 403  # write, not admin


async def test_keys_are_managed_within_the_makers_prefixes(console):
    scoped = console.make_key(["acme:"], "admin")
    console.make_key(["globex:"], "write")
    await console.sign_in(scoped)
    listed = (await console.page("/console/keys")).text
    assert "globex:" not in listed
    r = await console.post("/console/keys", {"prefixes": "globex:", "rights": "read"})
    assert r.status_code == 403
    r = await console.post("/console/keys", {"prefixes": "acme:east", "rights": "admin"})
    assert r.status_code == 201
    r = await console.post("/console/keys", {"prefixes": "acme:", "writes_per_day": "0"})
    assert r.status_code == 403  # no more quota than its maker (0 is unlimited)


async def test_usage_against_quotas(make_console):
    console = await make_console(writes_per_day=500)
    m = memory(console, "acme:1")
    await console.sign_in()
    data = {"key": "customer_name", "value": "Ada", "format": "text", "version": "0"}
    await console.post(f"/console/callers/{segment('acme:1')}/facts", data)
    html = (await console.page("/console/usage")).text
    row = html.split(">acme:1</a>")[1].split("</tr>")[0]
    assert "1 of 500" in row and "500 writes a day" in html
    assert m.get("customer_name") == "Ada"
    # reading the page writes nothing: a caller written around the quotas shows 0 and has no
    # usage row of its own afterwards
    memory(console, "acme:2").set("k", "v")
    html = (await console.page("/console/usage")).text
    assert "0 of 500" in html.split(">acme:2</a>")[1].split("</tr>")[0]
    conn = sqlite3.connect(console.engine.url.removeprefix("sqlite:///"))
    days = conn.execute("SELECT ns, writes FROM botwire_usage ORDER BY ns").fetchall()
    conn.close()
    assert days == [("acme:1", 1)]


async def test_status_shows_the_platforms_and_a_redacted_database(make_console):
    console = await make_console(voice=VAPI)
    await console.sign_in()
    html = (await console.page("/console/status")).text
    assert "http://botwire.test/voice/vapi" in html
    assert "console-test-secret" not in html
    assert "sqlite:///" in html and "answering" in html
    scoped = console.new_client()
    await console.sign_in(console.make_key(["acme:"], "admin"), client=scoped)
    assert "sqlite:///" not in (await console.page("/console/status", scoped)).text


async def test_the_console_can_be_turned_off(make_console):
    console = await make_console(console=False)
    r = await console.page("/console/sign-in")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_route"


@pytest.mark.parametrize("before", ["x", "1.2.3", "-5.", "99999999999999999999.1"])
async def test_a_bad_timeline_cursor_starts_from_the_newest(console, before):
    fill(memory(console), calls=1)
    await console.sign_in()
    r = await console.page(f"{PAGE}?before={before}")
    assert r.status_code == 200 and "call-0001" in r.text
    assert field(r.text, "csrf")
