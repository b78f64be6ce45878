"""``botwire voice configure <platform> | show``: the server's voice settings file.

Settings go to ``$BOTWIRE_HOME/voice.json`` (``BOTWIRE_VOICE_CONFIG`` to put it elsewhere),
created with mode 0600 because it holds secrets. ``BOTWIRE_*`` variables override the file.
Secrets are asked for at a hidden prompt (or read from ``--secret``), and never printed.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .voice.platforms.registry import BY_NAME
from .voice.settings import VoiceSettings, config_path, write_file


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


def _secret_option(name: str, help_text: str) -> Any:
    return click.option(
        name,
        prompt=help_text,
        hide_input=True,
        confirmation_prompt=False,
        help=help_text + " (asked for when not given)",
    )


@configure.command("vapi")
@_secret_option("--secret", "The Vapi server URL secret or token")
@click.option(
    "--auth",
    type=click.Choice(["secret", "bearer", "hmac"]),
    default=None,
    help="How Vapi authenticates: X-Vapi-Secret (default), Bearer token, or HMAC.",
)
@click.option("--assistant-id", default=None, help="The assistant that answers assistant-request.")
@click.option(
    "--secret-header",
    default=None,
    help="secret mode: the header that carries the secret (x-vapi-secret).",
)
@click.option("--signature-header", default=None, help="HMAC: the signature header (x-signature).")
@click.option("--timestamp-header", default=None, help="HMAC: the timestamp header (x-timestamp).")
@click.option("--signature-prefix", default=None, help="HMAC: a prefix before the digest.")
@click.option("--signature-encoding", type=click.Choice(["hex", "base64"]), default=None)
@click.option(
    "--signature-algorithm", type=click.Choice(["sha256", "sha1", "sha512"]), default=None
)
def configure_vapi(
    secret: str, auth: str | None, assistant_id: str | None, **hmac: str | None
) -> None:
    """Vapi: the server URL secret, auth mode and assistant id."""
    _save(
        {
            "vapi_secret": secret,
            "vapi_auth": auth,
            "vapi_assistant_id": assistant_id,
            **{f"vapi_{k}": v for k, v in hmac.items()},
        }
    )


@configure.command("retell")
@_secret_option("--secret", "The Retell API key (it signs webhooks)")
def configure_retell(secret: str) -> None:
    """Retell: the API key that signs its webhooks (X-Retell-Signature)."""
    _save({"retell_api_key": secret})


@configure.command("elevenlabs")
@_secret_option("--webhook-secret", "The ElevenLabs post-call webhook secret")
@_secret_option("--tool-secret", "A secret for the initiation webhook and server tools")
@click.option(
    "--secret-header",
    default=None,
    help="The header that carries the tool secret (x-botwire-secret).",
)
def configure_elevenlabs(webhook_secret: str, tool_secret: str, secret_header: str | None) -> None:
    """ElevenLabs: the post-call HMAC secret and the secret header for initiation and tools."""
    _save(
        {
            "elevenlabs_webhook_secret": webhook_secret,
            "elevenlabs_tool_secret": tool_secret,
            "elevenlabs_secret_header": secret_header,
        }
    )


@configure.command("twilio")
@_secret_option("--auth-token", "The Twilio auth token")
@click.option(
    "--public-url",
    default=None,
    help="This server's public base URL, as Twilio calls it (behind a proxy).",
)
@click.option("--stream-url", default=None, help="wss:// URL to stream the call's audio to.")
def configure_twilio(auth_token: str, public_url: str | None, stream_url: str | None) -> None:
    """Twilio: the auth token that signs webhooks, the public URL, the media stream."""
    _save(
        {"twilio_auth_token": auth_token, "public_url": public_url, "twilio_stream_url": stream_url}
    )


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
