"""The HTTP engine: the client of a botwire server (``BOTWIRE_URL=http://KEY@host:8421``).

Each op becomes one request to the server's ``/v1`` API (a few become several: paged reads,
batches over 1000 keys). As in ``sql.py``, an op's *handler* is a generator that yields
``Req`` records and receives each answer, so the sync and async clients share every line but
the one that sends.

- One keep-alive connection pool per process (a fresh one after ``fork``) and per event loop.
- The API key comes from the URL's user (or password) part, ``api_key=`` or ``BOTWIRE_API_KEY``.
- URL options: ``timeout`` (seconds per request, default 10), ``connect_timeout`` (default 5),
  ``retries`` (default 3).
- Retries with exponential backoff: on connection errors before the request was sent, for
  every op; after that (a lost answer) and on 503, only for idempotent ops (reads, plain
  writes of a value, deletes) - never for ``incr``, ``append`` or compare-and-set.
- Error answers become the exceptions the embedded engines raise (``_wire.CODES``); a 429
  raises ``QuotaExceeded`` with ``retry_after`` from the ``Retry-After`` header.
- A path in the URL is the server's base (a proxy's prefix): ``http://KEY@host/api`` sends
  ``/api/v1/...``. A 404 is a missing key only when its body is botwire's ``not_found``
  (a ``HEAD`` has no body: its ``X-Botwire-Error: not_found`` header says so, and without it
  ``info`` asks again with ``GET``); any other 404 raises
  ``ConfigurationError``: the URL does not reach a botwire server. A 401 says how to give a key.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
import weakref
from collections.abc import Generator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from .._codec import _dumps
from .._version import __version__
from .._wire import error_of, make_cursor, raise_for_error, redact, segment
from ..errors import AuthenticationFailed, ConfigurationError, StorageUnavailable
from . import _fork
from . import base as ops
from .base import Entry, Op, Row, adrive, drive

_BATCH = 1000
_OPTIONS = {"timeout": 10.0, "connect_timeout": 5.0, "retries": 3.0}
_BACKOFF = 0.05  # first pause; doubled after each failed attempt, at most 2 s


def _asked_again(status: int) -> bool:
    """A HEAD's refusal (403, a proxy's 404) the GET's body explains; not when the server is
    away or busy (5xx, 429), where the status says enough."""
    return status < 500 and status != 429


# base URL -> (sync transport, async transport): servers mounted in this process
_MOUNTS: dict[str, tuple[httpx.BaseTransport, httpx.AsyncBaseTransport]] = {}


def mount(
    base_url: str, transport: httpx.BaseTransport, atransport: httpx.AsyncBaseTransport
) -> None:
    """Send requests for ``base_url`` through these transports (see ``server.inprocess``).
    Engines opened afterwards use them."""
    _MOUNTS[base_url.rstrip("/")] = (transport, atransport)


def unmount(base_url: str) -> None:
    _MOUNTS.pop(base_url.rstrip("/"), None)


class Req(NamedTuple):
    method: str
    path: str
    params: dict[str, Any] | None = None
    content: str | None = None
    headers: dict[str, str] | None = None
    idempotent: bool = True
    missing_ok: bool = False  # a 404 is an answer (a missing key), not an error
    key: str = ""  # for error messages


Handler = Generator[Req, Any, Any]  # sent: the httpx.Response to each Req


def split_url(url: str, api_key: str | None) -> tuple[str, str | None, dict[str, float]]:
    """The base URL without credentials or options, the API key, and the options."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad IPv6 address or port
        raise ConfigurationError(f"bad server URL {redact(url)!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigurationError(f"{redact(url)!r} has no host: use http(s)://KEY@host:8421")
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = {k for k, _ in query} - set(_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown options {sorted(unknown)} in {redact(url)!r}")
    try:
        options = {**_OPTIONS, **{k: float(v) for k, v in query}}
    except ValueError:
        raise ConfigurationError(f"bad option value in {redact(url)!r}") from None
    from_url = unquote(parts.username or "") or unquote(parts.password or "")
    key = api_key or from_url or os.environ.get("BOTWIRE_API_KEY") or None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port:
        netloc += f":{port}"
    base = parts._replace(netloc=netloc, query="", fragment="").geturl().rstrip("/")
    return base, key, options


class HttpEngine:
    """Engine over a botwire server's HTTP API."""

    def __init__(self, url: str, *, api_key: str | None = None) -> None:
        self.base, self._key, options = split_url(url, api_key)
        self.url = self.base
        self.timeout = httpx.Timeout(options["timeout"], connect=options["connect_timeout"])
        self.retries = int(options["retries"])
        self._lock = threading.Lock()
        _fork.renew_after_fork(self)
        self._pid = os.getpid()
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._aclients = weakref.WeakKeyDictionary()
        self._closed = False

    # -- the I/O edge ---------------------------------------------------------------------------

    def execute(self, op: Op) -> Any:
        return drive(_handler(op), self._send)

    async def aexecute(self, op: Op) -> Any:
        return await adrive(_handler(op), self._asend)

    def _send(self, req: Req) -> httpx.Response:
        client = self._sync_client()
        for attempt in itertools.count():
            try:
                outcome: Any = client.request(
                    req.method,
                    req.path,
                    params=req.params,
                    content=req.content,
                    headers=req.headers,
                )
            except httpx.HTTPError as exc:
                outcome = exc
            pause = self._settle(req, attempt, outcome)
            if isinstance(pause, httpx.Response):
                return pause
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _asend(self, req: Req) -> httpx.Response:
        client = self._async_client()
        for attempt in itertools.count():
            try:
                outcome: Any = await client.request(
                    req.method,
                    req.path,
                    params=req.params,
                    content=req.content,
                    headers=req.headers,
                )
            except httpx.HTTPError as exc:
                outcome = exc
            pause = self._settle(req, attempt, outcome)
            if isinstance(pause, httpx.Response):
                return pause
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _settle(self, req: Req, attempt: int, outcome: Any) -> httpx.Response | float:
        """The answer (checked: an error answer raises), or the pause before trying again."""
        if attempt < self.retries:
            if isinstance(outcome, httpx.Response):
                retry = outcome.status_code == 503 and req.idempotent
            elif isinstance(outcome, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
                retry = True  # the request never left
            else:
                retry = req.idempotent and isinstance(outcome, httpx.TransportError)
            if retry:
                return min(_BACKOFF * 2**attempt, 2.0)
        if isinstance(outcome, Exception):
            raise self._unavailable(outcome) from outcome
        return self._checked(req, outcome)

    def _checked(self, req: Req, resp: httpx.Response) -> httpx.Response:
        """``resp`` if it is an answer; an error answer raises. A 404 is a missing key only
        when a botwire server says so (a HEAD answer has no body: ``info`` checks its header)."""
        status = resp.status_code
        if status < 400 or (req.missing_ok and req.method == "HEAD" and _asked_again(status)):
            return resp  # a HEAD's error has no body: ``info`` asks again with GET
        err = error_of(resp.content)
        if status == 404 and (err is None or err["code"] == "no_such_route"):
            raise self._not_botwire(req)
        if status == 404 and req.missing_ok and err is not None and err["code"] == "not_found":
            return resp
        try:
            raise_for_error(status, resp.content, resp.headers, key=req.key)
        except AuthenticationFailed as exc:
            if status != 401:
                raise
            raise AuthenticationFailed(f"{exc}; {self._key_hint()}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _not_botwire(self, req: Req) -> ConfigurationError:
        return ConfigurationError(
            f"{redact(self.base)} answered {req.method} {req.path} with a 404 that is not "
            "botwire's \"no such key\": the server at that URL is not a botwire server (or "
            "not at that path). Check the path in the URL: it is where the server's /v1 API "
            "lives (http(s)://KEY@host:8421, or "
            "http(s)://KEY@host/prefix behind a proxy that serves botwire under /prefix)"
        )

    def _key_hint(self) -> str:
        why = "the API key given is not valid" if self._key else "no API key was given"
        return (
            f"the botwire server at {redact(self.base)} refused the request because {why}: "
            "set BOTWIRE_API_KEY, pass api_key=..., or put the key in the URL "
            "(http(s)://KEY@host:8421)"
        )

    def _unavailable(self, exc: Exception) -> StorageUnavailable:
        return StorageUnavailable(f"botwire server at {self.base}: {type(exc).__name__}: {exc}")

    # -- clients ---------------------------------------------------------------------------------

    def _client_options(self, sync: bool) -> dict[str, Any]:
        headers = {"User-Agent": f"botwire/{__version__}", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        options = {
            "base_url": self.base,
            "headers": headers,
            "timeout": self.timeout,
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=32),
        }
        mounted = _MOUNTS.get(self.base)
        if mounted is not None:
            options["transport"] = mounted[0 if sync else 1]
        return options

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            self._check_open()
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._pid, self._client = os.getpid(), None
                self._aclients = weakref.WeakKeyDictionary()
            if self._client is None:
                self._client = httpx.Client(**self._client_options(sync=True))
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop) if self._pid == os.getpid() else None
        if client is not None:
            return client
        with self._lock:
            self._check_open()
            if self._pid != os.getpid():
                self._pid, self._client = os.getpid(), None
                self._aclients = weakref.WeakKeyDictionary()
            client = self._aclients.get(loop)
            if client is None:
                client = self._aclients[loop] = httpx.AsyncClient(
                    **self._client_options(sync=False)
                )
            return client

    def _check_open(self) -> None:
        if self._closed:
            raise StorageUnavailable(f"the engine for {self.base} is closed")

    def _after_fork(self) -> None:
        """In a child right after fork: a lock of our own (a parent's thread may hold it)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    async def aclose(self) -> None:
        client = self._aclients.pop(asyncio.get_running_loop(), None)
        self.close()
        if client is not None:
            await client.aclose()


# -- one handler per op --------------------------------------------------------------------------


def _ns(ns: str) -> str:
    return f"/v1/namespaces/{segment(ns)}"


def _key(ns: str, key: str) -> str:
    return f"{_ns(ns)}/keys/{segment(key)}"


def _log(ns: str, log: str) -> str:
    return f"{_ns(ns)}/logs/{segment(log)}"


def _body(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _row(item: dict[str, Any], value: str | None = None) -> Row:
    return Row(
        item["key"],
        value,
        item["version"],
        item["created_at"],
        item["updated_at"],
        item["expires_at"],
        item["size"],
    )


def get(op: ops.Get) -> Handler:
    if len(op.keys) == 1:
        key = op.keys[0]
        resp = yield Req("GET", _key(op.ns, key), missing_ok=True, key=key)
        return [None if resp.status_code == 404 else resp.text]
    found: dict[str, str] = {}
    for start in range(0, len(op.keys), _BATCH):
        chunk = list(op.keys[start : start + _BATCH])
        resp = yield Req("POST", f"{_ns(op.ns)}/batch/get", content=_body({"keys": chunk}))
        found.update((k, _dumps(v)) for k, v in resp.json()["items"].items())
    return [found.get(k) for k in op.keys]


def info(op: ops.Info) -> Handler:
    if len(op.keys) == 1 and not op.values:
        key = op.keys[0]
        resp = yield Req("HEAD", _key(op.ns, key), missing_ok=True, key=key)
        if resp.status_code >= 400 and resp.headers.get("x-botwire-error") != "not_found":
            # an error (403, say), or not botwire's "no such key" (a proxy's 404 has no such
            # header): a HEAD answer has no body to say which, the GET's does
            resp = yield Req("GET", _key(op.ns, key), missing_ok=True, key=key)
        if resp.status_code == 404:
            return [None]
        h = resp.headers
        expires = h.get("x-botwire-expires-at")
        return [
            Row(
                key,
                None,
                int(h["x-botwire-version"]),
                float(h["x-botwire-created-at"]),
                float(h["x-botwire-updated-at"]),
                float(expires) if expires else None,
                int(h["x-botwire-size"]),
            )
        ]
    found: dict[str, Row] = {}
    for start in range(0, len(op.keys), _BATCH):
        chunk = list(op.keys[start : start + _BATCH])
        body = _body({"keys": chunk, "meta": True})
        resp = yield Req("POST", f"{_ns(op.ns)}/batch/get", content=body)
        found.update((k, _row(item)) for k, item in resp.json()["items"].items())
    return [found.get(k) for k in op.keys]


def put(op: ops.Put) -> Handler:
    if not op.items:
        return []
    params = None if op.ttl is None else {"ttl": repr(op.ttl)}
    if len(op.items) == 1:
        ((key, text),) = op.items
        headers = {"Content-Type": "application/json"}
        if op.if_version == 0:
            headers["If-None-Match"] = "*"
        elif op.if_version is not None:
            headers["If-Match"] = f'"{op.if_version}"'
        resp = yield Req(
            "PUT",
            _key(op.ns, key),
            params,
            text,
            headers,
            idempotent=op.if_version is None,
            key=key,
        )
        return [resp.json()["version"]]
    pairs = ",".join(f"{_dumps(k)}:{t}" for k, t in op.items)
    body = f'{{"items":{{{pairs}}},"ttl":{"null" if op.ttl is None else repr(op.ttl)}}}'
    resp = yield Req("POST", f"{_ns(op.ns)}/batch/set", content=body)
    versions = resp.json()["versions"]
    return [versions[k] for k, _ in op.items]


def delete(op: ops.Delete) -> Handler:
    if op.if_version is not None:
        headers = {"If-Match": f'"{op.if_version}"'}
        yield Req("DELETE", _key(op.ns, op.key), headers=headers, idempotent=False, key=op.key)
        return True
    resp = yield Req("DELETE", _key(op.ns, op.key), missing_ok=True, key=op.key)
    return resp.status_code != 404


def incr(op: ops.Incr) -> Handler:
    resp = yield Req(
        "POST",
        f"{_key(op.ns, op.key)}/incr",
        content=_body({"by": op.by}),
        idempotent=False,
        key=op.key,
    )
    return resp.json()["value"]


def scan(op: ops.Scan) -> Handler:
    params: dict[str, Any] = {"limit": op.limit, "values": "true" if op.values else "false"}
    if op.prefix:
        params["prefix"] = op.prefix
    if op.after is not None:
        params["cursor"] = make_cursor(op.after)
    if op.internal:
        params["internal"] = "true"
    resp = yield Req("GET", f"{_ns(op.ns)}/keys", params)
    items = resp.json()["keys"]
    return [_row(i, _dumps(i["value"]) if op.values else None) for i in items]


def count(op: ops.Count) -> Handler:
    resp = yield Req("GET", _ns(op.ns), params={"internal": "true"} if op.internal else None)
    return resp.json()["keys"]


def clear(op: ops.Clear) -> Handler:
    resp = yield Req("DELETE", f"{_ns(op.ns)}/keys")
    return resp.json()["deleted"]


def append(op: ops.Append) -> Handler:
    if not op.entries:
        return []
    body = '{"entries":[' + ",".join(op.entries) + "]}"
    resp = yield Req("POST", _log(op.ns, op.log), content=body, idempotent=False)
    return resp.json()["seqs"]


def read(op: ops.Read) -> Handler:
    if op.last is not None:
        if op.last == 0:
            return []
        resp = yield Req("GET", _log(op.ns, op.log), {"last": op.last})
        return _entries(resp)
    out: list[Entry] = []
    after = op.after
    while op.limit is None or len(out) < op.limit:
        want = _BATCH if op.limit is None else min(_BATCH, op.limit - len(out))
        resp = yield Req("GET", _log(op.ns, op.log), {"after": after, "limit": want})
        page = _entries(resp)
        out += page
        if len(page) < want:
            break
        after = page[-1].seq
    return out


def _entries(resp: httpx.Response) -> list[Entry]:
    return [Entry(e["seq"], _dumps(e["value"]), e["ts"]) for e in resp.json()["entries"]]


def log_count(op: ops.LogCount) -> Handler:
    resp = yield Req("GET", f"{_log(op.ns, op.log)}/count")
    return resp.json()["count"]


def log_clear(op: ops.LogClear) -> Handler:
    resp = yield Req("DELETE", _log(op.ns, op.log))
    return resp.json()["deleted"]


def namespaces(op: ops.Namespaces) -> Handler:
    if op.limit == 0:
        return []
    params: dict[str, Any] = {"limit": min(op.limit, _BATCH)}
    if op.prefix:
        params["prefix"] = op.prefix
    if op.after is not None:
        params["cursor"] = make_cursor(op.after)
    if op.internal:
        params["internal"] = "true"
    resp = yield Req("GET", "/v1/namespaces", params)
    return resp.json()["namespaces"]


def forget(op: ops.Forget) -> Handler:
    resp = yield Req("DELETE", _ns(op.ns))
    return resp.json()["forgotten"]


def search(op: ops.Search) -> Handler:
    if not op.terms:
        return []
    params: dict[str, Any] = {"q": " ".join(op.terms), "limit": op.limit}
    if op.internal:
        params["internal"] = "true"
    resp = yield Req("GET", f"{_ns(op.ns)}/search", params)
    return [
        ops.Hit(h["key"], h["log"], h["seq"], _dumps(h["value"]), h["ts"], h["score"])
        for h in resp.json()["hits"]
    ]


def logs(op: ops.Logs) -> Handler:
    params: dict[str, Any] = {"limit": min(op.limit, _BATCH)}
    if op.after is not None:
        params["after"] = op.after
    if op.internal:
        params["internal"] = "true"
    resp = yield Req("GET", f"{_ns(op.ns)}/logs", params)
    return [ops.LogInfo(g["name"], g["last_seq"], g["count"]) for g in resp.json()["logs"]]


def floor(op: ops.Floor) -> Handler:
    resp = yield Req("GET", _ns(op.ns), {"internal": "true"})
    return resp.json()["version_floor"]


def restore(op: ops.Restore) -> Handler:
    from ..transfer import render  # the block's lines, as in an export file

    body = "\n".join(render(op)) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    params = {"replace": "true"} if op.replace else None
    resp = yield Req("POST", f"{_ns(op.ns)}/restore", params, body, headers, idempotent=True)
    return resp.json()["result"]


_HANDLERS = {
    ops.Get: get,
    ops.Info: info,
    ops.Put: put,
    ops.Delete: delete,
    ops.Incr: incr,
    ops.Scan: scan,
    ops.Count: count,
    ops.Clear: clear,
    ops.Append: append,
    ops.Read: read,
    ops.LogCount: log_count,
    ops.LogClear: log_clear,
    ops.Namespaces: namespaces,
    ops.Forget: forget,
    ops.Search: search,
    ops.Logs: logs,
    ops.Floor: floor,
    ops.Restore: restore,
}


def _batch(op: ops.Batch) -> Handler:
    """One request after the other (a batch endpoint would save the round trips)."""
    results = []
    for sub in ops.batch_ops(op):
        results.append((yield from _handler(sub)))
    return results


_HANDLERS[ops.Batch] = _batch


def _handler(op: Op) -> Handler:
    make = _HANDLERS.get(type(op))
    if make is None:
        raise ConfigurationError(
            f"{type(op).__name__} runs inside the botwire server, not through its HTTP client"
        )
    return make(op)  # type: ignore[operator]
