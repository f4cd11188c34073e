"""``mentor-agent login``: sign in (again) to the accounts that use the built-in sign-in.

Runs :func:`agent.mail.oauth.sign_in` for [imap] and for [smtp] where ``oauth2`` is set — once when both use the
same account, since they share one grant. A running daemon that waits for a new sign-in sees the new grant by
itself and goes on; nothing needs a restart.
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.support import friendly
from agent.config.settings import Credentials, Settings, default_config_path, load_settings
from agent.errors import Problem, UserError
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
    path = config or default_config_path()
    if not path.exists():
        raise UserError(
            [Problem(str(path), "", "no such config file; run `mentor-agent setup` first (it signs in too)")]
        )
    settings = load_settings(path, required=True)
    chosen = accounts(settings)
    if not chosen:
        raise UserError([Problem(str(path), "", _no_sign_in(settings))])
    for section, creds in chosen:
        shared = " (for [imap] and [smtp])" if len(chosen) == 1 and _both(settings) else ""
        click.echo(f"[{section}] {creds.oauth2.capitalize()} sign-in for {creds.username}{shared}")
        try:
            sign_in(creds, username=creds.username, state_dir=settings.state_dir, say=click.echo, section=section)
        except KeyboardInterrupt:  # the grant is stored only once the sign-in finished: there is none to undo
            click.echo()
            raise UserError("sign-in stopped (Ctrl-C): nothing was stored; run `mentor-agent login` again") from None


def _no_sign_in(settings: Settings) -> str:
    creds = settings.imap
    how = next(
        (
            key
            for key in ("password_command", "keyring_service", "oauth2_token_command", "password")
            if getattr(creds, key)
        ),
        "",
    )
    none = 'nothing to sign in to: neither [imap] nor [smtp] sets oauth2 = "microsoft" or "google"; '
    if how == "oauth2_token_command":
        return none + "this account gets its tokens from oauth2_token_command, which signs in by itself"
    kind = f" ({how})" if how else ""
    return none + (
        f"this account signs in with a password{kind}, which needs no sign-in here; to sign in to Microsoft or "
        "Google instead, run: mentor-agent setup --auth oauth2"
    )


def _both(settings: Settings) -> bool:
    return bool(settings.imap.oauth2 and settings.smtp.oauth2 and settings.smtp.username)


def register(group: click.Group) -> None:
    group.add_command(login_command)
