"""``mentor-agent login``: sign in (again) to the accounts that use the built-in sign-in.

Runs :func:`agent.mail.oauth.sign_in` for [imap] and for [smtp] where ``oauth2`` is set — once when both use the
same account, since they share one grant. A running daemon that waits for a new sign-in sees the new grant by
itself and goes on; nothing needs a restart.
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.support import friendly
from agent.config.settings import Credentials, Settings, load_settings
from agent.errors import UserError
from agent.mail.oauth import grant_store, sign_in


def accounts(settings: Settings) -> list[tuple[str, Credentials]]:
    """The sections to sign in for, one per grant (the first section that uses it)."""
    chosen: list[tuple[str, Credentials]] = []
    seen: set[object] = set()
    for section in ("imap", "smtp"):
        creds: Credentials = getattr(settings, section)
        if not creds.oauth2 or (section == "smtp" and not creds.username):
            continue
        store = grant_store(creds, username=creds.username, state_dir=settings.state_dir)
        if store in seen:
            continue
        seen.add(store)
        chosen.append((section, creds))
    return chosen


@click.command(name="login")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def login_command(config: Path | None) -> None:
    """Sign in to Microsoft or Google (oauth2 in [imap]/[smtp]); needed again when a sign-in expires."""
    settings = load_settings(config, required=True)
    chosen = accounts(settings)
    if not chosen:
        raise UserError(
            'nothing to sign in to: neither [imap] nor [smtp] sets oauth2 = "microsoft" or "google" '
            "(password_command and oauth2_token_command need no sign-in here)"
        )
    for section, creds in chosen:
        shared = " (for [imap] and [smtp])" if len(chosen) == 1 and _both(settings) else ""
        click.echo(f"[{section}] {creds.oauth2.capitalize()} sign-in for {creds.username}{shared}")
        sign_in(creds, username=creds.username, state_dir=settings.state_dir, say=click.echo, section=section)


def _both(settings: Settings) -> bool:
    return bool(settings.imap.oauth2 and settings.smtp.oauth2 and settings.smtp.username)


def register(group: click.Group) -> None:
    group.add_command(login_command)
