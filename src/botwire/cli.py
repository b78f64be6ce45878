"""``botwire``: the command line. Every command takes ``--url`` (else the usual environment)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import Memory, __version__, forget, namespaces
from ._wire import redact
from .errors import BotWireError, install_hint

url_option = click.option(
    "--url",
    default=None,
    help="Database or server URL (default: BOTWIRE_URL, BOTWIRE_DATABASE_URL, else the "
    "embedded SQLite file).",
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotWireError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="botwire")
def main() -> None:
    """Persistent memory for voice AI agents."""


@main.command()
@click.option(
    "--database",
    default=None,
    help="Write to this sqlite:///... or postgresql://... database, under a namespace made for "
    "the run (forgotten at the end). [default: a temporary folder, deleted at the end]",
)
@click.option("--keep", is_flag=True, help="Keep the demo's memory and print where it is.")
def demo(database: str | None, keep: bool) -> None:
    """Two calls from one number, through two server starts: the second remembers the first.
    Never touches the memory already stored."""
    from .demo import run

    sys.exit(run(database, keep=keep))


@main.command()
@url_option
def where(url: str | None) -> None:
    """Print where memory is stored."""
    with Memory("botwire:cli", url=url) as m:
        click.echo(redact(m.engine.url))


@main.command("get")
@click.argument("namespace")
@click.argument("key")
@url_option
def get_(namespace: str, key: str, url: str | None) -> None:
    """Print the value at KEY as JSON (exit 1 when missing)."""
    with Memory(namespace, url=url) as m:
        missing = object()
        value = m.get(key, missing)
    if value is missing:
        raise click.ClickException(f"{key!r} is not set in {namespace!r}")
    click.echo(_json(value))


@main.command("set")
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=float, default=None, help="Expire after this many seconds.")
@click.option("--string", is_flag=True, help="Store VALUE as a string, not parsed as JSON.")
@url_option
def set_(
    namespace: str, key: str, value: str, ttl: float | None, string: bool, url: str | None
) -> None:
    """Store VALUE (JSON, or a string with --string) at KEY; prints the new version."""
    try:
        parsed = value if string else json.loads(value)
    except json.JSONDecodeError:
        raise click.BadParameter(
            "not JSON; pass --string to store it as text", param_hint="VALUE"
        ) from None
    with Memory(namespace, url=url) as m:
        click.echo(m.set(key, parsed, ttl=ttl))


@main.command("ls")
@click.argument("namespace")
@click.option("--prefix", default="")
@click.option("--all", "all_", is_flag=True, help="Also botwire's own keys (starting with ~).")
@url_option
def ls(namespace: str, prefix: str, all_: bool, url: str | None) -> None:
    """List the keys stored in NAMESPACE."""
    with Memory(namespace, url=url) as m:
        for key in m.keys(prefix, include_internal=all_):
            click.echo(key)


@main.command("namespaces")
@click.option("--prefix", default="")
@click.option("--all", "all_", is_flag=True, help="Also botwire's own (starting with ~).")
@url_option
def namespaces_(prefix: str, all_: bool, url: str | None) -> None:
    """List namespaces that hold anything."""
    for name in namespaces(prefix, url=url, include_internal=all_):
        click.echo(name)


@main.command("log")
@click.argument("namespace")
@click.argument("name")
@click.option("--last", type=int, default=20, show_default=True)
@url_option
def log_(namespace: str, name: str, last: int, url: str | None) -> None:
    """Print the newest entries of a log, one JSON object per line."""
    with Memory(namespace, url=url) as m:
        for e in m.log(name).read(last=last):
            click.echo(_json({"seq": e.seq, "ts": e.ts, "value": e.value}))


@main.command("forget")
@click.argument("namespace")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@url_option
def forget_(namespace: str, yes: bool, url: str | None) -> None:
    """Delete every key and log of NAMESPACE."""
    if not yes:
        click.confirm(f"Delete everything stored for {namespace!r}?", abort=True)
    click.echo("forgotten" if forget(namespace, url=url) else "nothing was stored")


@main.command()
@click.option("--host", envvar="BOTWIRE_HOST", default=None, help="[default: 127.0.0.1]")
@click.option("--port", envvar="BOTWIRE_PORT", type=int, default=None, help="[default: 8421]")
@click.option(
    "--database",
    envvar="BOTWIRE_DATABASE_URL",
    default=None,
    help="sqlite:///path or postgresql://... [default: the SQLite file in $BOTWIRE_HOME]",
)
@click.option("--workers", envvar="BOTWIRE_WORKERS", type=int, default=None, help="[default: 1]")
@click.option(
    "--forwarded-allow-ips",
    default=None,
    callback=lambda _ctx, _param, value: _split(value),
    help="Comma-separated proxies (addresses, networks, *) whose X-Forwarded-For is believed "
    "(BOTWIRE_FORWARDED_ALLOW_IPS) [default: none]",
)
@click.option(
    "--header-timeout",
    type=float,
    default=None,
    help="Seconds to receive a request's headers (BOTWIRE_HEADER_TIMEOUT) [default: 10]",
)
@click.option(
    "--body-timeout",
    type=float,
    default=None,
    help="Seconds to receive a request's body (BOTWIRE_BODY_TIMEOUT) [default: 30]",
)
@click.option(
    "--max-connections",
    type=int,
    default=None,
    help="Open connections per worker, then 503 (BOTWIRE_MAX_CONNECTIONS) [default: 1000]",
)
@click.option(
    "--backlog",
    type=int,
    default=None,
    help="Connections waiting to be accepted (BOTWIRE_BACKLOG) [default: 2048]",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One line per request on the botwire.access logger (BOTWIRE_ACCESS_LOG) [default: off]",
)
def serve(**options: Any) -> None:
    """Run the botwire server (more settings: BOTWIRE_* variables, see docs/server.md)."""
    try:
        from .server.config import Settings
        from .server.run import serve as run
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs its extra: {install_hint('server')} ({exc})"
        ) from None
    run(Settings.from_env(**options))


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


from .backup_cli import backup, restore  # noqa: E402  (`botwire backup` / `restore`, SQLite)
from .doctor import doctor  # noqa: E402  (`botwire doctor`)
from .keys_cli import keys  # noqa: E402  (the `botwire keys ...` group)
from .mcp_cli import mcp  # noqa: E402  (`botwire mcp`, stdio)
from .transfer_cli import export, import_, migrate  # noqa: E402  (`botwire export | import | migrate`)
from .voice_cli import voice  # noqa: E402  (the `botwire voice ...` group)

for command in (backup, restore, doctor, keys, mcp, export, import_, migrate, voice):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
