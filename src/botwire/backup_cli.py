"""``botwire backup PATH`` and ``botwire restore PATH``: the SQLite database, copied while it
is in use and put back whole (how, and why so: ``botwire.backup``). PostgreSQL and server URLs
are refused with the command to run instead (pg_dump / pg_restore, export / import)."""

from __future__ import annotations

import click

from . import backup as library

url_option = click.option(  # as botwire.cli's (not imported from it: cli imports this module)
    "--url",
    default=None,
    help="Database URL (default: BOTWIRE_URL, BOTWIRE_DATABASE_URL, else the embedded SQLite "
    "file; `botwire where` prints it).",
)


@click.command()
@click.argument("path")
@url_option
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def backup(path: str, url: str | None, force: bool) -> None:
    """Copy the SQLite database to PATH, consistent while writers run (0600, checked, synced)."""
    try:
        copied = library.backup(path, url, force=force)
    except library.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up to {copied.path}: {copied.describe()}")


@click.command()
@click.argument("path")
@url_option
@click.option("--force", is_flag=True, help="Replace a database that holds data.")
def restore(path: str, url: str | None, force: bool) -> None:
    """Replace the SQLite database with the backup at PATH. Stop every process using the
    database first (botwire serve, agents): a restore refuses while it is open elsewhere."""
    try:
        restored = library.restore(path, url, force=force)
    except library.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {path} into {restored.path}: {restored.describe()}")
