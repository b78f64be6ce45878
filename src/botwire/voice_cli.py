"""``botwire voice configure <platform> | show``: the server's voice settings file.

Settings go to ``$BOTWIRE_HOME/voice.json`` (``BOTWIRE_VOICE_CONFIG`` to put it elsewhere),
created with mode 0600 because it holds secrets. ``BOTWIRE_*`` variables override the file.
Secrets are asked for at a hidden prompt (or read from ``--secret``), and never printed.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .voice.platforms import Option, Platform
from .voice.platforms.registry import BY_NAME, PLATFORMS
from .errors import ConfigurationError
from .voice.facts import POLICIES, Policies
from .voice.settings import VoiceSettings, config_path, read_file, write_file


@click.group()
def voice() -> None:
    """Voice webhooks: configure each platform's secret, show what is set."""


@voice.group()
def configure() -> None:
    """Store a platform's secret and options in the voice settings file."""


def _save(changes: dict[str, Any]) -> None:
    path = config_path()
    write_file(path, {k: v for k, v in changes.items() if v is not None})
    click.echo(f"saved to {path}; a running server uses it within a second")


def _option(option: Option) -> Any:
    """The click option of a platform's setting: a secret is asked for, hidden, when not given."""
    choices = click.Choice(list(option.choices)) if option.choices else None
    if not option.secret:
        return click.option(
            option.flag, option.setting, type=choices, default=None, help=option.help
        )
    asked = "asked for when not given" if option.required else "asked for when given bare"
    return click.option(
        option.flag,
        option.setting,
        prompt=option.help,
        prompt_required=option.required,
        hide_input=True,
        confirmation_prompt=False,
        help=f"{option.help} ({asked})",
    )


def _configure_command(platform: Platform) -> None:
    """``botwire voice configure <platform>``, from the platform's options."""

    def command(**values: Any) -> None:
        _save(values)

    command.__doc__ = platform.about
    for option in reversed(platform.options):
        command = _option(option)(command)
    configure.command(platform.name)(command)


for _platform in PLATFORMS:
    _configure_command(_platform)


@configure.command("callers")
@click.option(
    "--namespace", default=None, help="Template of a caller's namespace: {e164}, {digits}."
)
@click.option("--default-country", default=None, help="Calling code for numbers without one.")
@click.option("--budget", type=int, default=None, help="Characters of the memory variable.")
@click.option("--variables", default=None, help="Variables always answered, comma-separated.")
@click.option("--summarizer", default=None, help="package.module:function run after each call.")
@click.option("--public-url", default=None, help="This server's public base URL.")
def configure_callers(**options: Any) -> None:
    """How callers map to namespaces and what the answer carries."""
    _save(options)


@configure.command("facts")
@click.option("--rules", default=None, help="Every rule at once: 'a=append, b->c=fill_if_empty'.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME=POLICY",
    help=f"A field's policy: {', '.join(POLICIES)} (repeatable).",
)
@click.option(
    "--rename",
    multiple=True,
    metavar="FIELD=KEY",
    help="Store a field under another fact key (repeatable).",
)
@click.option(
    "--default", "default", type=click.Choice(POLICIES), help="The policy of other fields."
)
def configure_facts(
    rules: str | None, fields: tuple[str, ...], rename: tuple[str, ...], default: str | None
) -> None:
    """What the platforms' extracted fields become: facts of the caller, by per-field policy."""
    current = rules if rules is not None else str(read_file(config_path()).get("facts", ""))
    try:
        policies = Policies.parse(current)
        for item in fields:
            policies = policies.with_rule(*_pair(item, "--field", "NAME=POLICY"), None)
        for item in rename:
            field, key = _pair(item, "--rename", "FIELD=KEY")
            policies = policies.with_rule(field, None, key)
        if default is not None:
            policies = Policies(default, policies.rules)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    _save({"facts": str(policies)})


def _pair(item: str, option: str, form: str) -> tuple[str, str]:
    name, sep, value = item.rpartition("=")
    if not sep or not name.strip() or not value.strip():
        raise click.BadParameter(f"{item!r} is not {form}", param_hint=option)
    return name.strip(), value.strip()


@voice.command("show")
def show() -> None:
    """The voice settings in effect (secrets as set / not set) and the URLs to paste."""
    settings = VoiceSettings.load()
    click.echo(json.dumps(settings.shown(), indent=2))
    base = settings.public_url.rstrip("/") or "https://<this server>"
    for platform, on in settings.enabled().items():
        state = "enabled" if on else "not configured"
        click.echo(f"{platform}: {state}: " + ", ".join(base + p for p in paths(platform)))


def paths(platform: str) -> list[str]:
    """The platform's URLs to paste, a path parameter as ``<name>``."""
    shown = (r.path for r in BY_NAME[platform].routes if r.listed)
    return [path.replace("{", "<").replace("}", ">") for path in shown]
