"""Built-in OAuth2 sign-in for Microsoft (device code, msal) and Google (installed-app loopback flow).

The interface that `mentor-agent setup`, `mentor-agent login` and the mail adapters share. :func:`sign_in` runs
the interactive flow once and stores the grant (refresh token, account) like other secrets: in the keyring when
``keyring_service`` is set, else in a 0600 file under ``<state_dir>/grants/`` (agent.mail.grants).
:func:`access_token` is called at every connect: it refreshes the access token from the grant and saves a
rotated refresh token at once. A grant that expired or was revoked raises :class:`agent.errors.SignInNeeded`
("sign in again with: mentor-agent login"); a sign-in server that cannot be reached raises
:class:`agent.errors.SignInUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.config.settings import Credentials
from agent.errors import UserError
from agent.mail.grants import GrantStore, store_for

# Each provider's module (and library) is imported only for an account that signs in with it: msal and requests
# for Microsoft, google-auth for Google; a password account loads neither (tests/test_import_graph.py).


def _check(creds: Credentials, section: str) -> None:
    if creds.oauth2 == "microsoft" and not creds.oauth2_client_id:
        raise UserError(
            f"[{section}].oauth2_client_id: is needed for Microsoft sign-in: the application (client) id of an app "
            "registration — your school's IT can give you one (mentor-agent has none of its own), or register "
            "one yourself as a public client with the device-code flow allowed"
        )
    if creds.oauth2 == "google":
        from agent.mail import oauth_google

        oauth_google.client_config(creds, section)  # the client file is needed (and readable) before anything else
    if not creds.oauth2:
        raise UserError(f'[{section}].oauth2: is empty; set it to "microsoft" or "google" to sign in')


def grant_store(creds: Credentials, *, username: str, state_dir: Path) -> GrantStore:
    """Where the grant for this account lives ([imap] and [smtp] with the same account share it)."""
    return store_for(creds, username=username or creds.username, state_dir=state_dir)


def sign_in(
    creds: Credentials,
    *,
    username: str,
    state_dir: Path,
    say: Callable[[str], None],
    open_browser: Callable[[str], bool] | None = None,
    section: str = "imap",
) -> None:
    """Run the interactive sign-in for ``creds.oauth2`` and store the grant; raise ``UserError`` on failure."""
    _check(creds, section)
    store = grant_store(creds, username=username, state_dir=state_dir)
    if creds.oauth2 == "microsoft":  # the store is locked only to save: a daemon refreshing meanwhile is not held up
        from agent.mail import oauth_microsoft

        oauth_microsoft.sign_in(creds, store, username=username, say=say)
    else:
        from agent.mail import oauth_google

        oauth_google.sign_in(creds, store, username=username, section=section, say=say, open_browser=open_browser)


def access_token(creds: Credentials, *, username: str, state_dir: Path, section: str = "imap") -> str:
    """A fresh access token from the stored grant (refreshed, a rotated refresh token saved at once)."""
    _check(creds, section)
    store = grant_store(creds, username=username, state_dir=state_dir)
    with store.locked():
        if creds.oauth2 == "microsoft":
            from agent.mail import oauth_microsoft

            scope = oauth_microsoft.SMTP_SCOPE if section == "smtp" else oauth_microsoft.IMAP_SCOPE
            return oauth_microsoft.access_token(creds, store, scope=scope, section=section)
        from agent.mail import oauth_google

        return oauth_google.access_token(creds, store, section=section)


def grant_version(creds: Credentials, *, username: str, state_dir: Path) -> str:
    """A digest of the stored grant, "" when there is none: it changes when the student signs in again."""
    return grant_store(creds, username=username, state_dir=state_dir).version()
