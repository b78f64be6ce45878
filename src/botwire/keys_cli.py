"""``botwire keys create | list | revoke``: manage a server's API keys through its API.

The server is ``--server`` (else ``BOTWIRE_URL`` when it is an http(s) URL, else
``http://127.0.0.1:8421``); the admin key is ``--api-key``, ``BOTWIRE_API_KEY``, the URL's user
part, or the key the server saved in ``$BOTWIRE_HOME/admin.key`` on its first start.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
import httpx

from ._wire import raise_for_error, segment
from .engines import home_dir
from .engines.http import split_url
from .errors import StorageUnavailable

server_option = click.option("--server", default=None, help="The botwire server's URL.")
key_option = click.option("--api-key", default=None, help="An admin API key.")


def _connect(server: str | None, api_key: str | None) -> tuple[str, str | None]:
    if not server:
        env = os.environ.get("BOTWIRE_URL", "")
        server = env if env.lower().startswith(("http://", "https://")) else None
    server = server or f"http://127.0.0.1:{os.environ.get('BOTWIRE_PORT', '8421')}"
    base, key, _ = split_url(server, api_key)
    if not key:
        path = os.path.join(home_dir(), "admin.key")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                key = f.read().strip() or None
    return base, key


def _call(method: str, path: str, server: str | None, api_key: str | None, body: Any = None) -> Any:
    base, key = _connect(server, api_key)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.request(method, base + path, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise StorageUnavailable(f"cannot reach the botwire server at {base}: {exc}") from None
    if resp.status_code >= 400:
        raise_for_error(resp.status_code, resp.content, resp.headers)
    return resp.json()


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
    made = _call("POST", "/v1/keys", server, api_key, body)
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
    """List keys (never their secrets)."""
    for k in _call("GET", "/v1/keys", server, api_key)["keys"]:
        if as_json:
            click.echo(json.dumps(k, ensure_ascii=False))
            continue
        state = "revoked" if k["revoked_at"] else "active"
        prefixes = ",".join(repr(p) for p in k["prefixes"])
        click.echo(f"{k['id']}\t{state}\t{k['rights']}\t{prefixes}\t{k['name']}")


@keys.command()
@click.argument("key_id")
@server_option
@key_option
def revoke(key_id: str, server: str | None, api_key: str | None) -> None:
    """Revoke the key with id KEY_ID (see `botwire keys list`)."""
    _call("DELETE", f"/v1/keys/{segment(key_id)}", server, api_key)
    click.echo(f"revoked {key_id}")
