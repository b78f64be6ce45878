"""``botwire keys create | list | revoke | rotate | recover``: a server's API keys (docs/keys.md).

All but ``recover`` go through the server's API: the server is ``--server`` (else ``BOTWIRE_URL``
when it is an http(s) URL, else ``http://127.0.0.1:8421``); the admin key is ``--api-key``,
``BOTWIRE_API_KEY``, the URL's user part, or the key the server saved in
``$BOTWIRE_HOME/admin.key`` on its first start.

``recover`` is for when no admin key is left: it opens the server's database itself
(``--database``, else ``BOTWIRE_DATABASE_URL``, else the embedded file ``botwire serve`` uses),
so it runs where the database file, or its credentials, are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
import httpx

from ._wire import raise_for_error, redact, segment
from .engines import default_path, home_dir, open_engine
from .engines.http import split_url
from .errors import AuthenticationFailed, PermissionDenied, StorageUnavailable

ADMIN_KEY_FILE = "admin.key"  # as botwire serve names it (server.run)
RECOVER_HINT = "lost the admin key? `botwire keys recover` on the database's machine (docs/keys.md)"

server_option = click.option("--server", default=None, help="The botwire server's URL.")
key_option = click.option("--api-key", default=None, help="An admin API key.")


def admin_key_path() -> str:
    return os.path.join(home_dir(), ADMIN_KEY_FILE)


def write_admin_key(secret: str) -> str:
    """Replace ``$BOTWIRE_HOME/admin.key`` with ``secret`` at once (a new file, synced, renamed
    over the old one), readable by this user only (0600); returns its path."""
    path = admin_key_path()
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".admin.key.", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with suppress(OSError):  # the rename itself survives a crash once the folder is synced
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _saved_key() -> str | None:
    path = admin_key_path()
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


class Api:
    """One server, one key, and where the key came from (for error messages)."""

    def __init__(self, server: str | None, api_key: str | None) -> None:
        if not server:
            env = os.environ.get("BOTWIRE_URL", "")
            server = env if env.lower().startswith(("http://", "https://")) else None
        server = server or f"http://127.0.0.1:{os.environ.get('BOTWIRE_PORT', '8421')}"
        self.base, key, _ = split_url(server, api_key)
        parts = urlsplit(server)
        if api_key:
            self.source = "--api-key"
        elif key and (parts.username or parts.password):
            self.source = "the server URL"
        elif key:
            self.source = "BOTWIRE_API_KEY"
        else:
            key, self.source = _saved_key(), admin_key_path()
        self.key = key

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        key = key or self.key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            resp = httpx.request(method, self.base + path, json=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"cannot reach the botwire server at {self.base} ({exc}): is `botwire serve` "
                "running there? --server or BOTWIRE_URL names another"
            ) from None
        if resp.status_code >= 400:
            self._raise(resp, key)
        try:
            return resp.json()
        except ValueError:
            raise StorageUnavailable(
                f"{self.base} answered {resp.status_code} with something other than JSON: "
                "is it a botwire server?"
            ) from None

    def _raise(self, resp: httpx.Response, key: str | None) -> None:
        try:
            raise_for_error(resp.status_code, resp.content, resp.headers)
        except AuthenticationFailed as exc:
            if not key:
                where = f"--api-key, BOTWIRE_API_KEY or {admin_key_path()} (not there)"
                raise AuthenticationFailed(f"no API key given: {where}; {RECOVER_HINT}") from None
            if key == self.key and resp.status_code == 401:
                raise AuthenticationFailed(
                    f"{exc} (the key from {self.source}); {RECOVER_HINT}"
                ) from None
            raise
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{exc} (the key from {self.source}): managing keys needs an admin key"
            ) from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def by_last_use(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most recently used first, never-used last (each group oldest first, as listed)."""
    used = [k for k in listed if k.get("last_used_at") is not None]
    never = [k for k in listed if k.get("last_used_at") is None]
    return sorted(used, key=lambda k: -float(k["last_used_at"])) + never


@click.group()
def keys() -> None:
    """Manage the API keys of a botwire server."""


@keys.command()
@click.option(
    "--prefix",
    "prefixes",
    multiple=True,
    required=True,
    help='Namespace prefix the key may use (repeatable; "" for every namespace).',
)
@click.option("--read", "rights", flag_value="read", default=True, help="Read only (default).")
@click.option("--write", "rights", flag_value="write", help="Read and write.")
@click.option("--admin", "rights", flag_value="admin", help="Also forget namespaces, manage keys.")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option("--writes-per-day", type=int, default=None, help="Quota override (0: unlimited).")
@click.option("--max-bytes", type=int, default=None, help="Storage quota override (0: unlimited).")
@server_option
@key_option
def create(
    prefixes: tuple[str, ...],
    rights: str,
    name: str,
    writes_per_day: int | None,
    max_bytes: int | None,
    server: str | None,
    api_key: str | None,
) -> None:
    """Create a key; prints the secret, which is shown only this once."""
    body = {
        "prefixes": list(prefixes),
        "rights": rights,
        "name": name,
        "writes_per_day": writes_per_day,
        "max_bytes": max_bytes,
    }
    made = Api(server, api_key).call("POST", "/v1/keys", body)
    click.echo(made["key"])
    click.echo(
        f"id {made['id']}: {made['rights']} on {', '.join(map(repr, made['prefixes']))} "
        "(the key above is not shown again)",
        err=True,
    )


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@server_option
@key_option
def list_(as_json: bool, server: str | None, api_key: str | None) -> None:
    """List keys (never their secrets), most recently used first, never-used last.

    Columns: id, state, rights, prefixes, last use (UTC, exact to within the server's
    key_cache_seconds), name."""
    for k in by_last_use(Api(server, api_key).call("GET", "/v1/keys")["keys"]):
        if as_json:
            click.echo(json.dumps(k, ensure_ascii=False))
            continue
        state = "revoked" if k["revoked_at"] else "active"
        prefixes = ",".join(repr(p) for p in k["prefixes"])
        last = _when(k.get("last_used_at"))
        click.echo(f"{k['id']}\t{state}\t{k['rights']}\t{prefixes}\t{last}\t{k['name']}")


@keys.command()
@click.argument("key_id")
@server_option
@key_option
def revoke(key_id: str, server: str | None, api_key: str | None) -> None:
    """Revoke the key with id KEY_ID (see `botwire keys list`)."""
    Api(server, api_key).call("DELETE", f"/v1/keys/{segment(key_id)}")
    click.echo(f"revoked {key_id}")


@keys.command()
@click.option("--no-save", is_flag=True, help="Leave admin.key as it is; only print the new key.")
@server_option
@key_option
def rotate(no_save: bool, server: str | None, api_key: str | None) -> None:
    """Replace the admin key in use: a new key with its prefixes, rights and quotas, checked,
    then the old one revoked. Rewrites admin.key when it held the old key; prints the new
    secret, shown only this once."""
    api = Api(server, api_key)
    me = api.call("GET", "/v1/whoami")
    if me["rights"] != "admin":
        raise PermissionDenied(
            f"key {me['id']} (from {api.source}) holds {me['rights']}, and only an admin key can "
            "make its own replacement: ask an admin for a new key, then revoke this one"
        )
    fields = ("name", "prefixes", "rights", "writes_per_day", "max_bytes")
    made = api.call("POST", "/v1/keys", {f: me[f] for f in fields})
    secret = made["key"]
    saved = _check_and_save(api, made, secret, no_save)
    click.echo(secret)
    try:
        api.call("DELETE", f"/v1/keys/{segment(me['id'])}", key=secret)
    except Exception as exc:
        raise click.ClickException(
            f"the new key {made['id']} works (printed above{saved}), but the old key "
            f"{me['id']} is still active ({type(exc).__name__}: {exc}): revoke it with "
            f"`botwire keys revoke {me['id']}`"
        ) from None
    click.echo(f"key {made['id']} replaces {me['id']}, now revoked{saved}", err=True)


def _check_and_save(api: Api, made: dict[str, Any], secret: str, no_save: bool) -> str:
    """Check that the new key works, and write admin.key when it held the old key; on any
    failure revoke the new key (with the old one), so nothing has changed."""
    try:
        if api.call("GET", "/v1/whoami", key=secret)["id"] != made["id"]:
            raise StorageUnavailable("the server took the new key for another one")
        if no_save or _saved_key() != api.key:
            return "; admin.key not changed"
        return f"; saved in {write_admin_key(secret)} (mode 0600)"
    except Exception as exc:
        undone = "the new key was revoked"
        try:
            api.call("DELETE", f"/v1/keys/{segment(made['id'])}")
        except Exception:  # noqa: BLE001 - say so; the old key still works either way
            undone = f"revoke the unused new key with `botwire keys revoke {made['id']}`"
        raise click.ClickException(
            f"rotation stopped, the key in use still works ({undone}): {type(exc).__name__}: {exc}"
        ) from None


@keys.command()
@click.option(
    "--database",
    default=None,
    help="The server's database, sqlite:///... or postgresql://... [default: "
    "BOTWIRE_DATABASE_URL, else the embedded file botwire serve uses]",
)
@click.option(
    "--revoke-others",
    is_flag=True,
    help="Also revoke every other active admin key for every namespace (for a leaked key).",
)
@click.option("--no-save", is_flag=True, help="Leave admin.key as it is; only print the key.")
@click.option("--name", default="recovered admin", show_default=True, help="The new key's label.")
def recover(database: str | None, revoke_others: bool, no_save: bool, name: str) -> None:
    """Make a new admin key for every namespace straight in the server's database, for when no
    admin key is left (or one leaked: --revoke-others). Needs the database file or its
    credentials, not the server; a running server accepts the key at once. Prints the secret,
    shown only this once, and saves it in $BOTWIRE_HOME/admin.key (0600)."""
    url = database or os.environ.get("BOTWIRE_DATABASE_URL") or "sqlite:///" + default_path()
    _check_database(url)
    from .server.auth import recover_admin  # needs the server extra, as botwire serve does

    engine = open_engine(url)
    try:
        secret, record, revoked = recover_admin(engine, name=name, revoke_others=revoke_others)
    finally:
        engine.close()
    saved = ""
    if not no_save:
        try:
            saved = f"; saved in {write_admin_key(secret)} (mode 0600)"
        except OSError as exc:
            click.echo(secret)
            raise click.ClickException(
                f"the key above works, but {admin_key_path()} could not be written ({exc}): "
                "keep the key somewhere safe"
            ) from None
    click.echo(secret)
    click.echo(f"admin key {record.id} for every namespace in {redact(url)}{saved}", err=True)
    if revoked:
        click.echo(
            f"revoked {len(revoked)} other admin key(s): {', '.join(revoked)} (running servers "
            "refuse them within their key_cache_seconds)",
            err=True,
        )


def _check_database(url: str) -> None:
    """Refuse a server's URL, and a SQLite file that is missing or not a botwire database
    (opening one would create or change it)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        raise click.ClickException(
            f"{redact(url)} is a server's API: recovery writes a key into the server's database "
            "itself, so give --database sqlite:///... or postgresql://... and run it where that "
            "file or its credentials are (to replace a key you still have: botwire keys rotate)"
        )
    if scheme != "sqlite":
        return
    path = os.path.abspath(os.path.expanduser(unquote(urlsplit(url).path)[1:]))
    if not os.path.isfile(path):
        raise click.ClickException(
            f"no SQLite database at {path}: name the file botwire serve uses (it logs "
            "'database: ...' as it starts), e.g. --database sqlite:////srv/botwire/botwire.db"
        )
    try:
        with closing(sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'botwire_api_keys'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise click.ClickException(f"{path} cannot be read as a SQLite database: {exc}") from None
    if not found:
        raise click.ClickException(
            f"{path} holds no botwire API keys table: it is not a botwire server's database"
        )
