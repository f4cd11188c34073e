"""Gmail sign-in: the installed-app loopback flow with google-auth-oauthlib.

The student's browser opens Google's sign-in page; Google sends it back to a one-time web server on this
computer (``http://127.0.0.1:<port>/``) with a code, which is exchanged (with PKCE) for a refresh token. The
client (id and secret, in the JSON file Google's console downloads) is the student's own or their school's:
this project has none of its own. A Google project whose consent screen is still in "Testing" gets refresh
tokens that expire after 7 days — then the student has to sign in again; publishing the app (or an app
internal to a school's Workspace) avoids it.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
from google_auth_oauthlib.flow import Flow

from agent.config.settings import Credentials
from agent.errors import SignInNeeded, SignInUnavailable, UserError
from agent.logs import register_secret
from agent.mail.grants import GrantStore

SCOPE = "https://mail.google.com/"
AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SIGN_IN_AGAIN = "sign in again with: mentor-agent login"
TESTING_LIMIT = (
    'If the Google project of this client is still in "Testing" (its OAuth consent screen), Google ends the '
    "sign-in after 7 days and you will have to sign in again; publishing the app, or an app internal to your "
    "school's Workspace, avoids that."
)
WAIT = 300.0  # seconds for the student to finish in the browser
MARGIN = timedelta(minutes=5)  # an access token this close to its end is refreshed first

_tokens: dict[str, tuple[str, datetime]] = {}  # store.where -> (access token, expiry); this process only


def client_config(creds: Credentials, section: str) -> dict[str, Any]:
    """The "installed" client from ``oauth2_client_file``; ``oauth2_client_id`` and ``oauth2_authority``
    override what it says."""
    if creds.oauth2_client_file is None:
        raise UserError(
            f"[{section}].oauth2_client_file: is needed for Google sign-in: the OAuth client's JSON file (a "
            '"Desktop app" client from the Google Cloud console of your own or your school\'s project)'
        )
    path = Path(creds.oauth2_client_file).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: [{section}].oauth2_client_file: no such file") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the OAuth client file ({type(error).__name__})") from None
    client = data.get("installed") if isinstance(data, dict) else None
    if not isinstance(client, dict) or not client.get("client_id"):
        raise UserError(f'{path}: not a Google OAuth client file for a desktop app (no "installed" client_id)')
    client = dict(client)
    if creds.oauth2_client_id:
        client["client_id"] = creds.oauth2_client_id
    if creds.oauth2_authority:
        base = creds.oauth2_authority.rstrip("/")
        client["auth_uri"], client["token_uri"] = f"{base}/o/oauth2/auth", f"{base}/token"
    client.setdefault("auth_uri", AUTH_URI)
    client.setdefault("token_uri", TOKEN_URI)
    if client.get("client_secret"):
        register_secret(str(client["client_secret"]))
    return {"installed": client}


class _Redirect(http.server.BaseHTTPRequestHandler):
    """Takes the one redirect from Google: the query of the first request is the answer."""

    server: _Loopback

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.end_headers()
            return
        self.server.answer = {key: values[0] for key, values in query.items()}
        body = b"<html><body><p>Signed in. You can close this window and go back to mentor-agent.</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never print it
        pass


class _Loopback(http.server.HTTPServer):
    answer: dict[str, str] | None = None


def sign_in(
    creds: Credentials,
    store: GrantStore,
    *,
    username: str,
    section: str,
    say: Callable[[str], None],
    open_browser: Callable[[str], bool] | None = None,
    wait: float = WAIT,
) -> None:
    config = client_config(creds, section)
    server = _Loopback(("127.0.0.1", 0), _Redirect)
    server.timeout = 0.5
    try:
        flow = Flow.from_client_config(config, scopes=[SCOPE], redirect_uri=f"http://127.0.0.1:{server.server_port}/")
        state = secrets.token_urlsafe(16)
        url, _ = flow.authorization_url(
            access_type="offline", prompt="consent", state=state, login_hint=username or None
        )
        say(f"Sign in to {username or 'your Google account'} in the browser. If no browser opens, open this page:")
        say(url)
        say(TESTING_LIMIT)
        opener = open_browser or (lambda address: webbrowser.open(address, new=1))
        opened = threading.Thread(target=opener, args=(url,), daemon=True)
        opened.start()
        until = time.monotonic() + wait
        while server.answer is None and time.monotonic() < until:
            server.handle_request()
        answer = server.answer
    finally:
        server.server_close()
    if answer is None:
        raise UserError(f"Google sign-in: no answer from the browser within {wait:.0f} s; run mentor-agent login again")
    if answer.get("state") != state:
        raise UserError("Google sign-in: the answer did not belong to this sign-in (state differs); try again")
    if "error" in answer:
        raise UserError(f"Google sign-in refused: {answer['error']}")
    try:
        token = flow.fetch_token(code=answer["code"])
    except Exception as error:  # oauthlib and requests raise many kinds; the kind and oauthlib's code only
        raise UserError(f"Google sign-in: the code could not be exchanged for a token ({_words(error)})") from None
    refresh = str(token.get("refresh_token", ""))
    if not refresh:
        raise UserError("Google sign-in: Google gave no refresh token (was access_type=offline refused?)")
    register_secret(refresh)
    register_secret(str(token.get("access_token", "")))
    with store.locked():
        store.save({"provider": "google", "account": username, "refresh_token": refresh, "scopes": [SCOPE]})
    _remember(store, token)
    say(f"Signed in; the sign-in is kept in {store.where}.")


def access_token(creds: Credentials, store: GrantStore, *, section: str) -> str:
    cached = _tokens.get(store.where)
    if cached is not None and cached[1] - MARGIN > datetime.now(UTC):
        return cached[0]
    grant = store.load()
    if grant is None or grant.get("provider") != "google" or not grant.get("refresh_token"):
        raise SignInNeeded(f"[{section}] is not signed in to Google yet; {SIGN_IN_AGAIN}", section=section)
    client = client_config(creds, section)["installed"]
    google_creds = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        None,
        refresh_token=grant["refresh_token"],
        token_uri=client["token_uri"],
        client_id=client["client_id"],
        client_secret=client.get("client_secret"),
        scopes=grant.get("scopes") or [SCOPE],
    )
    try:
        google_creds.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    except google.auth.exceptions.RefreshError as error:
        words = _words(error)
        if "invalid_grant" in words or "unauthorized_client" in words or "invalid_client" in words:
            _tokens.pop(store.where, None)
            raise SignInNeeded(
                f"[{section}] the Google sign-in for {grant.get('account') or creds.username} has expired or was "
                f"revoked ({words}); {SIGN_IN_AGAIN}. {TESTING_LIMIT}",
                section=section,
            ) from None
        raise SignInUnavailable(f"the Google sign-in server failed: {words}") from None
    except google.auth.exceptions.TransportError as error:
        raise SignInUnavailable(f"cannot reach the Google sign-in server: {type(error).__name__}") from None
    token = str(google_creds.token)
    register_secret(token)
    rotated = google_creds.refresh_token
    if rotated and rotated != grant["refresh_token"]:  # a rotated refresh token is kept at once
        store.save({**grant, "refresh_token": rotated})
    expiry = google_creds.expiry.replace(tzinfo=UTC) if google_creds.expiry else datetime.now(UTC)
    _tokens[store.where] = (token, expiry)
    return token


def _remember(store: GrantStore, token: dict[str, Any]) -> None:
    expires_at = token.get("expires_at")
    if token.get("access_token") and isinstance(expires_at, int | float):
        _tokens[store.where] = (str(token["access_token"]), datetime.fromtimestamp(expires_at, UTC))


def _words(error: BaseException) -> str:
    """An error's first argument, first line — the OAuth error code and description, never a token."""
    text = str(error.args[0]) if error.args else type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__
