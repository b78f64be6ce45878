"""``botwire export | import | migrate``: move memory between engines (see ``transfer.py``).

Progress goes to stderr as a bar when stderr is a terminal, and nowhere otherwise; the result
line always goes to stderr, so ``botwire export > file`` writes only the export to stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

import click

from . import transfer
from ._wire import redact
from .engines import open_engine, resolve_url
from .engines.base import Engine
from .errors import InvalidInput

url_option = click.option(
    "--url",
    default=None,
    help="The engine to read or write (default: BOTWIRE_URL, BOTWIRE_DATABASE_URL, else the "
    "embedded SQLite file).",
)
all_option = click.option(
    "--all", "internal", is_flag=True, help="Also botwire's own records (names starting with ~)."
)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _bar(iterable: Any = None, length: int | None = None, label: str = "") -> Any:
    """A progress bar on stderr when it is a terminal; hidden otherwise."""
    quiet = not sys.stderr.isatty()
    return click.progressbar(
        iterable, length=length, label=label, file=sys.stderr, hidden=quiet, show_pos=True
    )


@contextlib.contextmanager
def _engine(url: str | None) -> Iterator[Engine]:
    engine = open_engine(resolve_url(url))
    try:
        yield engine
    finally:
        engine.close()


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[str]]:
    """stdout for "-"; else a private temporary file beside ``path``, renamed over it only
    when the export is complete."""
    if path == "-":
        yield sys.stdout
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".botwire-export-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@click.command("export")
@click.option("--prefix", default="", help="Only namespaces starting with this.")
@click.option("--out", "out_path", default="-", help="The file to write (default: stdout).")
@all_option
@url_option
def export(prefix: str, out_path: str, internal: bool, url: str | None) -> None:
    """Write every namespace's keys and logs as JSON Lines."""
    started, counts = time.monotonic(), _Counts()
    with _engine(url) as engine, _output(out_path) as out:
        names = transfer.namespaces(engine, prefix, internal)
        with _bar(names, label="exporting namespaces") as bar:
            for line in transfer.export(engine, prefix, internal, names=bar):
                counts.see(line)
                out.write(line + "\n")
        source = redact(engine.url)
    where = "stdout" if out_path == "-" else out_path
    _say(f"exported {counts} from {source} to {where} in {time.monotonic() - started:.1f} s")


class _Counts:
    def __init__(self) -> None:
        self.namespaces = self.keys = self.entries = 0

    def see(self, line: str) -> None:
        if line.startswith('{"key"'):
            self.keys += 1
        elif line.startswith('{"seq"'):
            self.entries += 1
        elif line.startswith('{"end"'):
            self.namespaces += 1

    def __str__(self) -> str:
        return f"{self.namespaces} namespaces ({self.keys} keys, {self.entries} log entries)"


def _lines(f: IO[str], bar: Any) -> Iterator[str]:
    for line in f:
        bar.update(len(line.encode("utf-8")))
        yield line


def _read(path: str, label: str) -> Iterator[transfer.Dump]:
    """Every namespace of the export at ``path``, each checked."""
    size = os.path.getsize(path)
    with open(path, encoding="utf-8") as f, _bar(length=size, label=label) as bar:
        yield from transfer.Reader().dumps(_lines(f, bar))


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--replace", is_flag=True, help="Overwrite namespaces that hold other data.")
@url_option
def import_(path: str, replace: bool, url: str | None) -> None:
    """Write the namespaces of an export file (or - for stdin) into the engine.

    The file is checked whole first (a bad line is named by its number and nothing is written);
    then each namespace is written all or nothing. Run it again after an interruption: what is
    already there is left unchanged.
    """
    started = time.monotonic()
    try:
        if path == "-":
            dumps: Any = transfer.Reader().dumps(sys.stdin)
        else:
            if not os.path.exists(path):
                raise click.ClickException(f"no such file: {path}")
            for _ in _read(path, "checking"):
                pass
            dumps = _read(path, "importing")
        with _engine(url) as engine:
            report = transfer.restore(engine, dumps, replace)
            target = redact(engine.url)
    except InvalidInput as exc:
        raise click.ClickException(f"{path}: {exc}; nothing more was written") from None
    _say(f"{report.line()} into {target} in {time.monotonic() - started:.1f} s")
    if report.refused:
        shown = ", ".join(repr(ns) for ns in report.refused[:10])
        more = f" and {len(report.refused) - 10} more" if len(report.refused) > 10 else ""
        raise click.ClickException(
            f"refused: {shown}{more} already hold different data; --replace overwrites them"
        )


@click.command()
@click.option("--to", "target_url", required=True, help="The engine to copy into.")
@click.option("--prefix", default="", help="Only namespaces starting with this.")
@click.option("--replace", is_flag=True, help="Overwrite namespaces that hold other data.")
@all_option
@url_option
def migrate(target_url: str, prefix: str, replace: bool, internal: bool, url: str | None) -> None:
    """Copy every namespace from the configured engine (or --url) into --to, then check each
    one's counts and checksum on both sides."""
    source_url = resolve_url(url)
    if source_url == target_url:
        raise click.ClickException("--to is the engine being read: give another one")
    started = time.monotonic()
    with _engine(source_url) as source, _engine(target_url) as target:
        report, mismatched = _copy(source, target, prefix, internal, replace)
        where = f"{redact(source.url)} to {redact(target.url)}"
    seconds = time.monotonic() - started
    _say(f"{report.line()} from {where} in {seconds:.1f} s")
    copied = len(report.imported) + len(report.unchanged)
    if mismatched or report.refused:
        problems = (
            [f"{len(mismatched)} differ after copying: {mismatched[:10]}"] if mismatched else []
        )
        if report.refused:
            problems.append(f"{len(report.refused)} refused (they hold other data; --replace)")
        raise click.ClickException("; ".join(problems))
    _say(f"verified: {copied} namespaces match key for key and entry for entry (sha256)")


def _copy(
    source: Engine, target: Engine, prefix: str, internal: bool, replace: bool
) -> tuple[transfer.Report, list[str]]:
    report, mismatched = transfer.Report(), []
    names = transfer.namespaces(source, prefix, internal)
    with _bar(names, label="migrating namespaces") as bar:
        for ns in bar:
            dump = transfer.one_block(transfer.block(source, ns, internal))
            try:
                result = target.execute(dump.op(replace))
            except transfer.NamespaceNotEmpty:
                report.add(dump, "refused")
                continue
            report.add(dump, result)
            if transfer.one_block(transfer.block(target, ns, internal)).sha256 != dump.sha256:
                mismatched.append(ns)
    return report, mismatched
