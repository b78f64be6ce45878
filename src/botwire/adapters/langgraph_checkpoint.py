"""LangGraph checkpoints: ``BotWireSaver``, a ``BaseCheckpointSaver`` kept in botwire.

One botwire namespace per thread, ``<prefix>/<thread_id>`` (prefix ``"langgraph-threads"``
unless told otherwise), so ``delete_thread`` is one ``botwire.forget``. Inside it, with every
segment escaped like store labels (``%`` -> ``%25``, ``/`` -> ``%2F``)::

    checkpoint/<checkpoint_ns>/<checkpoint_id>        {"checkpoint": T, "metadata": T, "parent": id}
    blob/<checkpoint_ns>/<channel>/<version>          T, a channel's value at that version
    write/<checkpoint_ns>/<checkpoint_id>/<task>/<idx>  {"task_id", "channel", "value": T, ...}
    latest/<checkpoint_ns>                            the id of the newest checkpoint

where ``T`` is ``[type, base64 of bytes]`` from ``serde.dumps_typed``. A checkpoint and the
channel values new in it are one ``set_many``: stored together or not at all. Checkpoint ids
grow with time, so the key order of ``checkpoint/<ns>/`` is the order of the thread's history.
"""

from __future__ import annotations

from . import require

require("langgraph", "langgraph", "botwire.adapters.langgraph")

import base64  # noqa: E402
import builtins  # noqa: E402
import random  # noqa: E402
from collections.abc import AsyncIterator, Iterator, Sequence  # noqa: E402
from itertools import groupby  # noqa: E402
from typing import Any  # noqa: E402

from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.checkpoint.base import (  # noqa: E402
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)

from .._codec import check_name  # noqa: E402
from . import Closing  # noqa: E402
from .langgraph import Call, Plan, PlanRunner, esc, unesc  # noqa: E402

List = builtins.list  # the saver's own `list` method hides the builtin inside the class

__all__ = ["BotWireSaver", "DEFAULT_SAVER_PREFIX"]

DEFAULT_SAVER_PREFIX = "langgraph-threads"

_EMPTY = ["empty", ""]  # a channel in new_versions without a value (InMemorySaver's marker)
_PAGE = 50  # checkpoints read per call while listing
_COPY_PAGE = 500  # items written per call while copying a thread

Located = tuple[str, str, str]  # (thread_id, checkpoint_ns, checkpoint_id)


def _checkpoint_key(ns: str, checkpoint_id: str) -> str:
    return f"checkpoint/{esc(ns)}/{esc(checkpoint_id)}"


def _blob_key(ns: str, channel: str, version: Any) -> str:
    return f"blob/{esc(ns)}/{esc(channel)}/{esc(str(version))}"


def _writes_prefix(ns: str, checkpoint_id: str) -> str:
    return f"write/{esc(ns)}/{esc(checkpoint_id)}/"


def _latest_key(ns: str) -> str:
    return f"latest/{esc(ns)}"


def _parse_checkpoint_key(key: str) -> tuple[str, str] | None:
    """(checkpoint_ns, checkpoint_id) of a ``checkpoint/`` key, else None."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "checkpoint":
        return None
    ns, checkpoint_id = unesc(parts[1]), unesc(parts[2])
    return None if ns is None or not checkpoint_id else (ns, checkpoint_id)


class BotWireSaver(Closing, BaseCheckpointSaver[str]):
    """LangGraph's checkpointer kept in botwire: a drop-in for ``InMemorySaver``.

    ``BotWireSaver()`` keeps every thread in the default storage under the namespace prefix
    ``"langgraph-threads"``; ``url`` / ``api_key`` pick PostgreSQL or a botwire server like
    :class:`botwire.Memory`. Threads survive restarts and are shared by every process on the
    same storage. Sync methods run through ``Memory``, async ones through ``AsyncMemory``.

    >>> graph = builder.compile(checkpointer=BotWireSaver(url="postgresql://..."))  # doctest: +SKIP
    """

    def __init__(
        self,
        namespace: str = DEFAULT_SAVER_PREFIX,
        *,
        url: str | None = None,
        api_key: str | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.prefix = check_name(namespace, "namespace")
        self._io = self._held = PlanRunner(self.prefix, url, api_key)

    def thread_namespace(self, thread_id: Any) -> str:
        """The botwire namespace holding the thread ``thread_id``."""
        return f"{self.prefix}/{thread_id}"

    # -- the saver's methods, sync and async ------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._io.run(self._get_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._io.arun(self._get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (thread by thread when ``config`` is None)."""
        found = self._io.run(self._find(config, before))
        for page in _pages(found, filter, limit):
            tuples = self._io.run(self._load(page, filter, limit))
            yield from tuples
            if limit is not None and (limit := limit - len(tuples)) <= 0:
                return

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await self._io.arun(self._find(config, before))
        for page in _pages(found, filter, limit):
            tuples = await self._io.arun(self._load(page, filter, limit))
            for tup in tuples:
                yield tup
            if limit is not None and (limit := limit - len(tuples)) <= 0:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._io.run(self._put(config, checkpoint, metadata, new_versions))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._io.arun(self._put(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._io.run(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._io.arun(self._put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of the thread: one ``botwire.forget``."""
        self._io.run(self._delete_thread(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._io.arun(self._delete_thread(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every item of the source thread into the target thread (overwriting)."""
        self._io.run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._io.arun(self._copy_thread(source_thread_id, target_thread_id))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``InMemorySaver``'s versions: a zero-padded counter and a random tie-breaker."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- plans ------------------------------------------------------------------------------

    def _get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        name = self.thread_namespace(thread_id)
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            checkpoint_id = yield Call(name, "get", (_latest_key(ns),))
            if checkpoint_id is None:
                return None
        record = yield Call(name, "get", (_checkpoint_key(ns, checkpoint_id),))
        if record is None:
            return None
        metadata = self._unpack(record["metadata"])
        return (yield from self._tuple((thread_id, ns, checkpoint_id), record, metadata))

    def _tuple(
        self, where: Located, record: dict[str, Any], metadata: CheckpointMetadata
    ) -> Plan[CheckpointTuple]:
        """The full tuple of a stored checkpoint: its channel values and pending writes."""
        thread_id, ns, checkpoint_id = where
        name = self.thread_namespace(thread_id)
        checkpoint: Checkpoint = self._unpack(record["checkpoint"])
        blob_keys = {
            channel: _blob_key(ns, channel, version)
            for channel, version in checkpoint["channel_versions"].items()
        }
        blobs = (yield Call(name, "get_many", (List(blob_keys.values()),))) if blob_keys else {}
        values = {}
        for channel, key in blob_keys.items():
            blob = blobs.get(key)
            if blob is not None and blob[0] != _EMPTY[0]:
                values[channel] = self._unpack(blob)
        stored = yield Call(name, "items", (_writes_prefix(ns, checkpoint_id), None))
        writes = sorted(
            (w for _, w in stored),
            key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]),
        )
        parent = record["parent"]
        full = checkpoint.copy()
        full["channel_values"] = values
        return CheckpointTuple(
            config=_config(thread_id, ns, checkpoint_id),
            checkpoint=full,
            metadata=metadata,
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=[(w["task_id"], w["channel"], self._unpack(w["value"])) for w in writes],
        )

    def _find(self, config: RunnableConfig | None, before: RunnableConfig | None) -> Plan[
        List[Located]
    ]:
        """Where the checkpoints ``list`` may return are: per thread, newest first."""
        if config is None:
            start = self.prefix + "/"
            threads = [n[len(start) :] for n in (yield Call(start, "namespaces"))]
            ns_wanted, id_wanted = None, None
        else:
            conf = config["configurable"]
            threads, ns_wanted = [conf["thread_id"]], conf.get("checkpoint_ns")
            id_wanted = get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        prefix = "checkpoint/" if ns_wanted is None else f"checkpoint/{esc(ns_wanted)}/"
        found: List[Located] = []
        for thread_id in threads:
            keys = yield Call(self.thread_namespace(thread_id), "keys", (prefix,))
            here = []
            for ns, checkpoint_id in filter(None, map(_parse_checkpoint_key, keys)):
                if id_wanted and checkpoint_id != id_wanted:
                    continue
                if before_id and checkpoint_id >= before_id:
                    continue
                here.append((checkpoint_id, ns))
            found.extend((thread_id, ns, cid) for cid, ns in sorted(here, reverse=True))
        return found

    def _load(
        self, page: List[Located], filter: dict[str, Any] | None, limit: int | None
    ) -> Plan[List[CheckpointTuple]]:
        """The tuples of ``page`` whose metadata matches ``filter``, at most ``limit``."""
        tuples: List[CheckpointTuple] = []
        for thread_id, located in groupby(page, key=lambda w: w[0]):
            wanted = List(located)
            keys = [_checkpoint_key(ns, cid) for _, ns, cid in wanted]
            records = yield Call(self.thread_namespace(thread_id), "get_many", (keys,))
            for where, key in zip(wanted, keys, strict=False):
                if key not in records:
                    continue  # deleted since it was listed
                metadata = self._unpack(records[key]["metadata"])
                if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                    continue
                tuples.append((yield from self._tuple(where, records[key], metadata)))
                if limit is not None and len(tuples) >= limit:
                    return tuples
        return tuples

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        bare = dict(checkpoint)
        values: dict[str, Any] = bare.pop("channel_values", {})  # type: ignore[assignment]
        items: dict[str, Any] = {
            _blob_key(ns, channel, version): (
                self._pack(values[channel]) if channel in values else _EMPTY
            )
            for channel, version in new_versions.items()
        }
        items[_checkpoint_key(ns, checkpoint["id"])] = {
            "checkpoint": self._pack(bare),
            "metadata": self._pack(get_checkpoint_metadata(config, metadata)),
            "parent": conf.get("checkpoint_id"),
        }
        items[_latest_key(ns)] = checkpoint["id"]
        yield Call(self.thread_namespace(thread_id), "set_many", (items,))
        return _config(thread_id, ns, checkpoint["id"])

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> Plan[None]:
        """Store writes; a regular write already stored is kept, a special one replaced."""
        conf = config["configurable"]
        ns, checkpoint_id = conf.get("checkpoint_ns", ""), conf["checkpoint_id"]
        name = self.thread_namespace(conf["thread_id"])
        records: dict[str, Any] = {}
        for i, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, i)
            key = f"{_writes_prefix(ns, checkpoint_id)}{esc(task_id)}/{idx}"
            records[key] = {
                "task_id": task_id,
                "channel": channel,
                "value": self._pack(value),
                "task_path": path,
                "idx": idx,
            }
        regular = [key for key, record in records.items() if record["idx"] >= 0]
        if regular:
            stored = yield Call(name, "get_many", (regular,))
            records = {key: record for key, record in records.items() if key not in stored}
        if records:
            yield Call(name, "set_many", (records,))

    def _delete_thread(self, thread_id: str) -> Plan[None]:
        yield Call(self.thread_namespace(thread_id), "forget")

    def _copy_thread(self, source: str, target: str) -> Plan[None]:
        items = yield Call(self.thread_namespace(source), "items", ("", None))
        for start in range(0, len(items), _COPY_PAGE):
            page = dict(items[start : start + _COPY_PAGE])
            yield Call(self.thread_namespace(target), "set_many", (page,))

    # -- serialization ----------------------------------------------------------------------

    def _pack(self, value: Any) -> List[str]:
        kind, data = self.serde.dumps_typed(value)
        return [kind, base64.b64encode(data).decode("ascii")]

    def _unpack(self, packed: List[str]) -> Any:
        return self.serde.loads_typed((packed[0], base64.b64decode(packed[1])))


def _config(thread_id: Any, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _pages(
    found: list[Located], filter: dict[str, Any] | None, limit: int | None
) -> Iterator[list[Located]]:
    """``found`` in pages to load; as small as ``limit`` when every checkpoint will count."""
    if limit is not None and limit <= 0:
        return
    size = min(limit, _PAGE) if limit is not None and not filter else _PAGE
    for start in range(0, len(found), size):
        yield found[start : start + size]
