"""Input validation and the value codec: everything checked once, above the engines.

Values are stored as compact JSON text. ``json.dumps`` alone is lossy (tuples become lists,
``{1: "a"}`` becomes ``{"1": "a"}``), so containers are checked first; scalars take the fast path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, NoReturn

from .errors import InvalidInput, InvalidKey, UnsupportedValue, ValueTooLarge

MAX_NAME_CHARS = 512
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024


def _not_json(value: Any) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


try:  # the C encoder, built once: json.dumps builds one on every call
    from json.encoder import c_encode_basestring as _quote  # type: ignore[attr-defined]
    from json.encoder import c_make_encoder  # type: ignore[attr-defined]

    # No markers: a value that contains itself ends in RecursionError, reported as InvalidInput.
    _iterencode = c_make_encoder(None, _not_json, _quote, None, ":", ",", False, False, False)

    def _dumps(value: Any) -> str:
        return _quote(value) if type(value) is str else "".join(_iterencode(value, 0))

except ImportError:  # pragma: no cover - interpreters without the C accelerator
    _dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode  # type: ignore[assignment]  # noqa: E501
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode(text: str) -> Any:
    """Decode JSON text written by ``encode`` (compact, so no whitespace to skip)."""
    return _scan(text, 0)[0]


_SCALARS = (str, int, float, bool, type(None))


def check_name(name: object, what: str = "key") -> str:
    """Return ``name`` if it is a valid key / namespace / log name, else raise ``InvalidKey``."""
    if type(name) is not str:
        raise InvalidKey(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidKey(f"{what} must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidKey(f"{what} is {len(name)} characters; the limit is {MAX_NAME_CHARS}")
    if "\x00" in name:
        raise InvalidKey(f"{what} must not contain a NUL character")
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidKey(f"{what} contains a lone surrogate, which cannot be stored") from None
    return name


def check_names(names: Iterable[object], what: str = "key") -> tuple[str, ...]:
    if isinstance(names, (str, bytes)):
        raise InvalidKey(f"expected an iterable of {what}s, not a single {type(names).__name__}")
    return tuple(check_name(n, what) for n in names)


def encode(value: Any, limit: int, name: str = "value") -> str:
    """Encode one value to JSON text, or raise without side effects. ``name`` (the key, say)
    starts the path that error messages give to the offending part of the value."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        text = _dumps(value)
    else:
        text = _dumps_checked(value, name)
        if kind is not float and kind is not int:
            _check_tree(value, name)
    if len(text) * 4 > limit or not text.isascii():
        size = _utf8_size(text)
        if size > limit:
            raise ValueTooLarge(size, limit, name)
    return text


def _dumps_checked(value: Any, name: str) -> str:
    try:
        return _dumps(value)
    except TypeError:
        _explain(value, name)
    except ValueError as exc:  # NaN, infinity, a container that contains itself
        raise InvalidInput(f"{name} cannot be stored as JSON: {exc}; nothing was stored") from None
    except RecursionError:
        raise InvalidInput(f"{name} is nested too deeply to store") from None


def _utf8_size(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("value contains a lone surrogate, which cannot be stored") from None


def _check_tree(value: Any, name: str) -> None:
    """What ``json.dumps`` accepts but would not give back (tuples, non-str keys) raises."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind in _SCALARS:
            continue
        if isinstance(node, dict):
            for k, v in node.items():
                if type(k) is not str:
                    _explain(value, name)
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
        else:
            _explain(value, name)


def _explain(value: Any, name: str) -> NoReturn:
    """Raise for the first part of ``value`` that is not JSON, named by its path
    (``ctx.orders[0].at``): walked again only once something was found wrong."""
    stack: list[tuple[Any, str, frozenset[int]]] = [(value, name, frozenset())]
    while stack:
        node, path, above = stack.pop()
        if type(node) in _SCALARS:
            continue
        if id(node) in above:
            raise InvalidInput(f"{path} contains itself; nothing was stored")
        above = above | {id(node)}
        if isinstance(node, dict):
            for k in node:
                if type(k) is not str:
                    raise UnsupportedValue(
                        f"{path}: dict keys must be str, not {type(k).__name__} ({k!r}); "
                        "nothing was stored"
                    )
            stack.extend((v, _child(path, k), above) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", above) for i, v in reversed(list(enumerate(node))))
        else:
            raise UnsupportedValue(
                f"{path}: {type(node).__name__} is not a JSON value (use str, int, float, bool, "
                "None, list or dict with str keys); nothing was stored"
            )
    raise UnsupportedValue(f"{name} is not a JSON value; nothing was stored")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def check_ttl(ttl: object) -> float | None:
    if ttl is None:
        return None
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 < ttl < math.inf:
        raise InvalidInput(f"ttl must be a positive number of seconds, not {ttl!r}")
    return float(ttl)


def check_int(value: object, what: str, *, minimum: int | None = None) -> int:
    if type(value) is not int:
        raise InvalidInput(f"{what} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, not {value}")
    return value
