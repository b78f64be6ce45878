"""The server's voice settings: each platform's secret and options, from ``BOTWIRE_*`` variables,
else ``$BOTWIRE_HOME/voice.json`` (written by ``botwire voice configure``, mode 0600).

A platform whose secret is not set has no webhook: its endpoints answer 404, never "accept
anything". Secrets never appear in a repr, a log line or an error message. A running server
follows the file (``LiveSettings``): ``botwire voice configure`` takes effect without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from ..engines import home_dir
from ..errors import ConfigurationError, InvalidInput
from .config import VoiceConfig, load_summarizer
from .facts import Policies
from .platforms import Option
from .platforms.registry import PLATFORMS

log = logging.getLogger("botwire.voice")
CONFIG_FILE = "voice.json"
RELOAD_SECONDS = 1.0  # how often a running server looks at the file, at most


CORE: dict[str, Any] = {  # the settings shared by every platform; each one's own are its options
    "public_url": "",  # https://memory.example.com, as the platforms reach this server
    "namespace": "phone:{e164}",
    "default_country": "",
    "budget": 2000,
    "variables": "customer_name",
    "summarizer": "",  # package.module:function
    "facts": "",  # what becomes of the platforms' extracted fields: ``voice.facts.Policies``
}


def _platform_options() -> dict[str, Option]:
    """Every platform's own settings (``<platform>_...``), by name, from the registry."""
    return {
        o.setting: o for p in PLATFORMS for o in p.options if o.setting.startswith(p.name + "_")
    }


class VoiceSettings:
    """The voice settings: the shared ones (``CORE``) as attributes, and every platform's own
    (``vapi_secret``, ``retell_api_key``, ...), declared by its options, read the same way.
    Immutable; unknown names and values that would not work are refused here, at load."""

    public_url: str
    namespace: str
    default_country: str
    budget: int
    variables: str
    summarizer: str
    facts: str

    def __init__(self, **values: Any) -> None:
        options = _platform_options()
        unknown = sorted(set(values) - set(CORE) - set(options))
        if unknown:
            raise ConfigurationError(f"unknown voice settings {', '.join(unknown)}")
        merged = {**CORE, **{n: o.default for n, o in options.items()}, **values}
        object.__setattr__(self, "_values", merged)
        self._check(options)

    def _check(self, options: dict[str, Option]) -> None:
        try:
            self.core()
            for platform in PLATFORMS:
                platform.check(self)
        except (InvalidInput, ValueError) as exc:
            raise ConfigurationError(f"voice settings: {exc}") from None
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"public_url must start with https:// (got {self.public_url!r})"
            )
        for name, option in options.items():
            if option.choices and self._values[name] not in option.choices:
                raise ConfigurationError(
                    f"voice setting {name} is {self._values[name]!r}; "
                    f"it takes {', '.join(option.choices)}"
                )

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"no voice setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("voice settings are immutable; use with_values()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VoiceSettings) and other._values == self._values

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if k not in SECRETS)
        return f"VoiceSettings({shown})"

    def values(self) -> dict[str, Any]:
        """Every setting by name, secrets included: never show it."""
        return dict(self._values)

    def core(self) -> VoiceConfig:
        return VoiceConfig(
            namespace=self.namespace,
            default_country=self.default_country or None,
            budget=self.budget,
            variables=tuple(v.strip() for v in self.variables.split(",") if v.strip()),
            summarizer=load_summarizer(self.summarizer) if self.summarizer else None,
            facts=Policies.parse(self.facts),
        )

    def enabled(self) -> dict[str, bool]:
        """Each platform and whether the setting that enables any of its routes is set."""
        return {p.name: any(bool(self._values[r.secret]) for r in p.routes) for p in PLATFORMS}

    def shown(self) -> dict[str, Any]:
        """Every setting, secrets as ``set`` / ``not set``: for ``botwire voice show``."""
        return {
            name: ("set" if value else "not set") if name in SECRETS else value
            for name, value in self._values.items()
        }

    @classmethod
    def names(cls) -> list[str]:
        return [*CORE, *_platform_options()]

    @classmethod
    def load(cls, path: str | None = None, **given: Any) -> VoiceSettings:
        """``given`` (non-None), then ``BOTWIRE_<NAME>``, then the config file, then defaults."""
        values = read_file(path or config_path())
        defaults = VoiceSettings().values()
        for name in cls.names():
            raw = os.environ.get(env_name(name))
            if raw:
                values[name] = _parse(name, raw, defaults[name])
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def with_values(self, **changes: Any) -> VoiceSettings:
        return VoiceSettings(**{**self._values, **changes})


# the settings never shown: every platform's secret options
SECRETS = tuple(n for n, o in _platform_options().items() if o.secret)


def env_name(name: str) -> str:
    voice = ("namespace", "default_country", "budget", "variables", "summarizer", "facts")
    return f"BOTWIRE_VOICE_{name.upper()}" if name in voice else f"BOTWIRE_{name.upper()}"


def config_path() -> str:
    return os.environ.get("BOTWIRE_VOICE_CONFIG") or os.path.join(home_dir(), CONFIG_FILE)


def read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read voice settings {path}: {exc}") from None
    known = set(VoiceSettings.names())
    unknown = sorted(set(data) - known) if isinstance(data, dict) else ["<not an object>"]
    if unknown:
        raise ConfigurationError(f"{path}: unknown voice settings {', '.join(unknown)}")
    return dict(data)


def write_file(path: str, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into the file, created 0600 (it holds secrets), replaced atomically."""
    data = read_file(path)
    data.update(changes)
    VoiceSettings(**data)  # refuse to write settings that would not load
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{env_name(name)}={raw!r} is not a whole number") from None
    return raw


class LiveSettings:
    """``VoiceSettings.load()`` kept current: the file is read again when it changes (its
    modification time, size or inode), looked at no more than once every ``RELOAD_SECONDS``;
    ``BOTWIRE_*`` variables still win. A file that no longer loads is logged, and the settings
    in effect stay."""

    def __init__(self, current: VoiceSettings, path: str | None = None) -> None:
        self.path = path or config_path()
        self.current = current
        self._stamp = _stamp(self.path)
        self._next = time.monotonic() + RELOAD_SECONDS

    def get(self) -> VoiceSettings:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + RELOAD_SECONDS
            self._reload_if_changed()
        return self.current

    def _reload_if_changed(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.current = VoiceSettings.load(self.path)
        except ConfigurationError as exc:
            log.error("voice settings not reloaded; the ones in effect stay: %s", exc)
            return
        log.info("voice settings reloaded from %s", self.path)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
