"""Built-in OAuth2 sign-in for Microsoft (device code, msal) and Google (installed-app loopback flow).

The interface that `mentor-agent setup` and the mail adapters share; the flows are filled in by the sign-in work
(issue 13). Grants (refresh tokens) are stored like other secrets: the keyring, or a 0600 file in the state dir.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.config.settings import Credentials


def sign_in(
    creds: Credentials,
    *,
    username: str,
    state_dir: Path,
    say: Callable[[str], None],
    open_browser: Callable[[str], bool] | None = None,
) -> None:
    """Run the interactive sign-in for ``creds.oauth2`` and store the grant; raise ``UserError`` on failure."""
    raise NotImplementedError("built-in sign-in is not written yet")


def access_token(creds: Credentials, *, username: str, state_dir: Path) -> str:
    """A fresh access token from the stored grant (refreshed, a rotated refresh token saved at once)."""
    raise NotImplementedError("built-in sign-in is not written yet")
