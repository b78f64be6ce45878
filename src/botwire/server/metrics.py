"""Prometheus metrics: one process's own, or the sum over every worker of ``botwire serve``.

With ``--workers N`` (N > 1), ``botwire serve`` makes a private directory and puts it in
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts (:func:`shared_by_workers`). The workers
are fresh interpreters (uvicorn spawns them) that inherit it, so prometheus_client, imported
after it is set, keeps each worker's values in files there; whichever worker answers
``/metrics`` reads them all (``MultiProcessCollector``): the answer is the sum over every worker,
including workers that died and were replaced. A process whose prometheus_client keeps its values
in memory (one worker; tests calling ``create_app``) reports its own application's.

Labels are bounded: route templates, never paths (``unmatched`` for a path no route takes), a
method from a fixed set, status codes, error codes, platform names and webhook outcomes.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ..errors import ConfigurationError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")
log = logging.getLogger("botwire.server")


def method_label(method: str) -> str:
    """The method, or ``OTHER``: a client may send any token as a method."""
    return method if method in METHODS else "OTHER"


class Metrics:
    """Every metric of one application; ``render`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.path = multiprocess_dir()
        own: CollectorRegistry | None = None  # the metrics' registry: none when in files
        if self.path is None:
            self.registry = own = CollectorRegistry()
        else:
            self.registry = _summed(self.path)  # what /metrics shows
        self.requests = Counter(
            "botwire_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "botwire_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=own,
        )
        self.errors = Counter(
            "botwire_errors", "Error answers, by error code.", ["code"], registry=own
        )
        self.quota_rejections = Counter(
            "botwire_quota_rejections",
            "Writes refused by a quota, by kind (writes per day or stored bytes).",
            ["kind"],
            registry=own,
        )
        self.webhooks = Counter(
            "botwire_webhooks",
            "Voice webhooks received, by platform, event and outcome.",
            ["platform", "event", "outcome"],
            registry=own,
        )
        self.workers = Gauge(
            "botwire_workers",
            "Worker processes serving; a worker that died stops counting at the next scrape.",
            multiprocess_mode="livesum",
            registry=own,
        )
        self.workers.set(1)

    def render(self) -> bytes:
        if self.path is not None:
            forget_dead(self.path)
        return generate_latest(self.registry)


def multiprocess_dir() -> str | None:
    """Where this process's prometheus_client keeps its values, or None (in memory). The mode
    is fixed when prometheus_client is imported: ``PROMETHEUS_MULTIPROC_DIR`` set later (or
    removed) does not change it."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path or values.ValueClass is values.MutexValue:
        return None
    if not os.path.isdir(path):
        raise ConfigurationError(f"{MULTIPROC_ENV}={path!r} is not a directory")
    return path


def _summed(path: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    return registry


def forget_dead(path: str) -> None:
    """Drop the live gauges of workers that are gone (uvicorn replaces a worker that dies);
    their counters and histograms stay in the sums."""
    for pid in {int(m[1]) for f in os.listdir(path) if (m := _LIVE_FILE.fullmatch(f))}:
        if not _alive(pid):
            with suppress(FileNotFoundError):  # another worker's scrape removed it first
                mark_process_dead(pid, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that pid
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:  # a zombie is dead, not yet reaped
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


@contextmanager
def shared_by_workers(workers: int) -> Iterator[str | None]:
    """For ``botwire serve``, around the whole run: the directory the workers keep their metrics
    in, set in ``PROMETHEUS_MULTIPROC_DIR`` for them, or None (one worker, in memory). A
    directory given in ``PROMETHEUS_MULTIPROC_DIR`` is used as it is, emptied of metrics at
    start (files from an earlier run would add to the counts) and at exit; otherwise, for more
    than one worker, a new private one is made in the temporary directory and removed at exit."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        _empty(given)
        try:
            yield given
        finally:
            _empty(given)
        return
    if workers <= 1:
        yield None
        return
    path = tempfile.mkdtemp(prefix="botwire-metrics-")  # mode 0700
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def _empty(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigurationError(f"{MULTIPROC_ENV}={path!r} is not a directory")
    os.makedirs(path, mode=0o700, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(path), "*.db")):
        os.remove(stale)
