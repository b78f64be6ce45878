"""The product in one run: two phone calls through the real Vapi webhook, the second remembers
the first.

A botwire server starts in this process on a local port, over a SQLite file in a temporary
folder of its own (deleted afterwards; ``keep=True`` keeps it). Call 1 from a number goes through
``/voice/vapi`` as Vapi sends it (assistant-request, tool-calls, end-of-call-report). The server
is then stopped and a new one started (a deploy, the next day), and call 2 from the same number
gets an answer that carries call 1's summary and facts.

Given a ``database`` (``botwire demo --database URL``), the demo writes there, under a namespace
of its own made for the run (``botwire-demo-<random>:phone:+15555550123``), and forgets only that
namespace at the end (unless kept): nothing already stored is read, changed or deleted.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from . import forget
from ._wire import redact
from .errors import install_hint

PHONE = "+15555550123"
ASSISTANT = "demo-assistant"
CALL_1 = [
    ("bot", "Thanks for calling Kettle & Co. Who am I speaking with?"),
    ("user", "Hi, this is Ana. My blue kettle, ORDER-789, hasn't shipped."),
    ("bot", "Sorry about that, Ana. I've flagged ORDER-789 with the warehouse."),
    ("user", "Thanks. Please text me rather than call."),
]
SUMMARY = "Ana asked why ORDER-789 (blue kettle) has not shipped; flagged with the warehouse."


class DemoServer:
    """``botwire serve`` in a thread, on a free local port, answering Vapi with a fresh secret."""

    def __init__(self, database: str, namespace: str, secret: str) -> None:
        import uvicorn

        from .server import Settings, create_app
        from .voice.settings import VoiceSettings

        voice = VoiceSettings(vapi_secret=secret, vapi_assistant_id=ASSISTANT, namespace=namespace)
        app = create_app(Settings(database=database), voice_settings=voice)
        self.port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> DemoServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Vapi:
    """Sends what Vapi sends for one call."""

    def __init__(self, client: httpx.Client, call_id: str) -> None:
        self.client, self.call_id = client, call_id

    def send(self, kind: str, **fields: Any) -> Any:
        message = {
            "type": kind,
            "timestamp": int(time.time() * 1000),
            "call": {"id": self.call_id, "type": "inboundPhoneCall", "customer": {"number": PHONE}},
            "customer": {"number": PHONE},
            **fields,
        }
        resp = self.client.post("/voice/vapi", json={"message": message})
        resp.raise_for_status()
        return resp.json()

    def tool(self, name: str, **args: Any) -> str:
        call = {
            "id": f"tool_{secrets.token_hex(3)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        (result,) = self.send("tool-calls", toolCallList=[call])["results"]
        return str(result.get("result", result.get("error")))


def _step(text: str) -> None:
    print(f"  -> {text}", flush=True)


def _show(title: str, text: str) -> None:
    print(f"     {title}")
    for line in text.splitlines():
        print(f"       | {line}")


def call_one(client: httpx.Client) -> None:
    vapi = Vapi(client, "demo-call-1")
    answer = vapi.send("assistant-request")
    _step("assistant-request: Vapi asks which assistant answers, and with what memory")
    _show("memory sent to the assistant:", answer["assistantOverrides"]["variableValues"]["memory"])
    for role, text in CALL_1:
        print(f"     {'agent' if role == 'bot' else 'caller'}: {text}")
    for name, args in (
        ("remember", {"key": "customer_name", "value": "Ana"}),
        ("remember", {"key": "last_order", "value": "ORDER-789"}),
        ("remember", {"key": "open:ORDER-789", "value": "not shipped; flagged"}),
        ("remember_fact", {"text": "Prefers text messages to calls"}),
    ):
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        _step(f"tool-calls {name}({shown}): {vapi.tool(name, **args)}")
    vapi.send(
        "end-of-call-report",
        endedReason="customer-ended-call",
        startedAt=_iso(time.time() - 95),
        endedAt=_iso(time.time()),
        analysis={"summary": SUMMARY, "successEvaluation": "true"},
        artifact={"messages": [{"role": r, "message": t} for r, t in CALL_1]},
    )
    _step(f"end-of-call-report: transcript ({len(CALL_1)} turns) and summary stored")


def call_two(client: httpx.Client) -> bool:
    vapi = Vapi(client, "demo-call-2")
    answer = vapi.send("assistant-request")
    variables = answer["assistantOverrides"]["variableValues"]
    _step(f"assistant-request: answered with assistant {answer['assistantId']!r} and")
    for name in ("customer_name", "last_order", "last_call_summary"):
        print(f"       {{{{{name}}}}} = {variables.get(name, '')!r}")
    _show("{{memory}} =", variables["memory"])
    _step("tool-calls recall_memory(query='kettle'): the agent looks something up")
    _show("answer:", vapi.tool("recall_memory", query="kettle"))
    return (
        variables.get("customer_name") == "Ana"
        and SUMMARY in variables["memory"]
        and variables.get("last_order") == "ORDER-789"
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def run(database: str | None = None, *, keep: bool = False) -> int:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        print(f"botwire demo needs the server: {install_hint('server')}")
        return 2
    if database is not None and database.split(":", 1)[0].lower() in ("http", "https"):
        print(
            "botwire demo runs its own server: --database takes sqlite:///... or postgresql://..."
        )
        return 2
    with _place(database, keep) as (url, template):
        namespace = template.format(e164=PHONE)
        print(f"botwire demo: memory lives in {redact(url)}, namespace {namespace!r}")
        remembered = _calls(url, template)
    print()
    if remembered:
        print("Call 2's answer carries call 1's summary and facts: the caller was remembered.")
        return 0
    print("Call 2 did not get call 1's memory.")
    return 1


@contextmanager
def _place(database: str | None, keep: bool) -> Iterator[tuple[str, str]]:
    """Where the demo writes: ``(URL, caller namespace template)``, and the cleaning up."""
    if database is None:
        home = tempfile.mkdtemp(prefix="botwire-demo-")
        try:
            yield f"sqlite:///{home}/botwire.db", "phone:{e164}"
        finally:
            if keep:
                print(
                    f"\nKept: the demo's memory is in {home} (BOTWIRE_HOME={home} botwire "
                    f"ls phone:{PHONE})"
                )
            else:
                shutil.rmtree(home, ignore_errors=True)
        return
    template = f"botwire-demo-{secrets.token_hex(6)}:phone:{{e164}}"
    try:
        yield database, template
    finally:
        namespace = template.format(e164=PHONE)
        if keep:
            print(f"\nKept: the demo's memory is in namespace {namespace!r}")
        else:
            forget(namespace, url=database)  # the run's own namespace, nothing else


def _calls(database: str, template: str) -> bool:
    secret = secrets.token_urlsafe(24)
    remembered = False
    for title, call in (("Call 1", call_one), ("Call 2 (server restarted, same number)", call_two)):
        with DemoServer(database, template, secret) as server:
            base = f"http://127.0.0.1:{server.port}"
            print(f"\n{title}: {PHONE} calls; Vapi posts to {base}/voice/vapi")
            with httpx.Client(base_url=base, headers={"x-vapi-secret": secret}) as client:
                remembered = bool(call(client))
    return remembered


if __name__ == "__main__":
    raise SystemExit(run())
