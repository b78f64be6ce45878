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
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..engines import home_dir
from ..errors import ConfigurationError, InvalidInput
from .config import VoiceConfig, load_summarizer
from .signatures import VapiAuth

log = logging.getLogger("botwire.voice")
CONFIG_FILE = "voice.json"
RELOAD_SECONDS = 1.0  # how often a running server looks at the file, at most


@dataclass(frozen=True)
class VoiceSettings:
    vapi_secret: str = field(default="", repr=False)
    vapi_auth: str = "secret"  # secret | bearer | hmac
    vapi_assistant_id: str = ""
    vapi_secret_header: str = "x-vapi-secret"
    vapi_signature_header: str = "x-signature"
    vapi_timestamp_header: str = "x-timestamp"
    vapi_signature_prefix: str = ""
    vapi_signature_encoding: str = "hex"
    vapi_signature_algorithm: str = "sha256"
    retell_api_key: str = field(default="", repr=False)
    elevenlabs_webhook_secret: str = field(default="", repr=False)
    elevenlabs_tool_secret: str = field(default="", repr=False)
    elevenlabs_secret_header: str = "x-botwire-secret"
    twilio_auth_token: str = field(default="", repr=False)
    twilio_stream_url: str = ""
    public_url: str = ""  # https://memory.example.com, as the platforms reach this server
    namespace: str = "phone:{e164}"
    default_country: str = ""
    budget: int = 2000
    variables: str = "customer_name"
    summarizer: str = ""  # package.module:function

    def __post_init__(self) -> None:
        try:
            self.core()
            if self.vapi_secret:
                self.vapi()
        except (InvalidInput, ValueError) as exc:
            raise ConfigurationError(f"voice settings: {exc}") from None
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"public_url must start with https:// (got {self.public_url!r})"
            )

    def core(self) -> VoiceConfig:
        return VoiceConfig(
            namespace=self.namespace,
            default_country=self.default_country or None,
            budget=self.budget,
            variables=tuple(v.strip() for v in self.variables.split(",") if v.strip()),
            summarizer=load_summarizer(self.summarizer) if self.summarizer else None,
        )

    def vapi(self) -> VapiAuth:
        return VapiAuth(
            mode=self.vapi_auth,
            secret=self.vapi_secret,
            secret_header=self.vapi_secret_header.lower(),
            signature_header=self.vapi_signature_header.lower(),
            timestamp_header=self.vapi_timestamp_header.lower(),
            prefix=self.vapi_signature_prefix,
            encoding=self.vapi_signature_encoding,
            algorithm=self.vapi_signature_algorithm,
        )

    def enabled(self) -> dict[str, bool]:
        """Each platform (the prefix of its secrets' names) and whether any of them is set."""
        out: dict[str, bool] = {}
        for name in SECRETS:
            platform = name.split("_", 1)[0]
            out[platform] = out.get(platform, False) or bool(getattr(self, name))
        return out

    def shown(self) -> dict[str, Any]:
        """Every setting, secrets as ``set`` / ``not set``: for ``botwire voice show``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("set" if value else "not set") if f.name in SECRETS else value
        return out

    @classmethod
    def load(cls, path: str | None = None, **given: Any) -> VoiceSettings:
        """``given`` (non-None), then ``BOTWIRE_<NAME>``, then the config file, then defaults."""
        values = read_file(path or config_path())
        for f in fields(cls):
            raw = os.environ.get(env_name(f.name))
            if raw:
                values[f.name] = _parse(f.name, raw, f.default)
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def with_values(self, **changes: Any) -> VoiceSettings:
        return replace(self, **changes)


# the secrets, named <platform>_..., are the settings never shown
SECRETS = tuple(f.name for f in fields(VoiceSettings) if not f.repr)


def env_name(name: str) -> str:
    voice = ("namespace", "default_country", "budget", "variables", "summarizer")
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
    known = {f.name for f in fields(VoiceSettings)}
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
