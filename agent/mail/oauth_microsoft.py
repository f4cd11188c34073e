"""Microsoft 365 and Outlook.com sign-in: the device-code flow with msal.

The student is shown a short code and a page (``https://microsoft.com/devicelogin``) to type it into, on any
device; msal polls the token endpoint meanwhile (``authorization_pending``, and ``slow_down`` makes it wait
longer). The grant kept is msal's own token cache (refresh token, account, the current access token), so that
msal refreshes the access token when it is near its end and a rotated refresh token lands in the cache — which
is written back at once.

The client id is an app registration of the school (or one the student makes): this project has none of its
own. ``oauth2_tenant`` is "organizations" (work and school accounts), "consumers" (Outlook.com) or a tenant id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msal
import requests

from agent.config.settings import Credentials
from agent.errors import SignInNeeded, SignInUnavailable, UserError
from agent.mail.grants import GrantStore

AUTHORITY = "https://login.microsoftonline.com"
IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
SMTP_SCOPE = "https://outlook.office.com/SMTP.Send"
SCOPES = [IMAP_SCOPE, SMTP_SCOPE]  # msal adds offline_access (the refresh token), openid and profile itself
SIGN_IN_AGAIN = "sign in again with: mentor-agent login"


def _app(creds: Credentials, cache: msal.SerializableTokenCache) -> msal.PublicClientApplication:
    base = (creds.oauth2_authority or AUTHORITY).rstrip("/")
    try:
        return msal.PublicClientApplication(
            creds.oauth2_client_id,
            authority=f"{base}/{creds.oauth2_tenant or 'organizations'}",
            token_cache=cache,
            instance_discovery=False,  # no call to Microsoft's discovery service: the authority is what is set
            timeout=30,
        )
    except requests.RequestException as error:
        raise SignInUnavailable(f"cannot reach the Microsoft sign-in server {base}: {type(error).__name__}") from None
    except ValueError as error:  # msal's words for an authority or tenant it cannot use
        raise UserError(f"Microsoft sign-in at {base}: {error}") from None


def sign_in(
    creds: Credentials,
    store: GrantStore,
    *,
    username: str,
    say: Callable[[str], None],
    deadline: Callable[[], bool] | None = None,
) -> None:
    cache = msal.SerializableTokenCache()
    app = _app(creds, cache)
    try:
        flow = app.initiate_device_flow(scopes=SCOPES)
    except requests.RequestException as error:
        raise SignInUnavailable(f"cannot start the Microsoft sign-in: {type(error).__name__}") from None
    if "user_code" not in flow:
        raise UserError(f"Microsoft did not start the sign-in: {_reason(flow)}")
    say(
        f"To sign in to {username or 'your Microsoft account'}: open {flow['verification_uri']} in a browser "
        f"(on any device) and enter the code {flow['user_code']}. Waiting for you to finish there…"
    )
    stop = deadline or (lambda: False)
    result: dict[str, Any] = app.acquire_token_by_device_flow(
        flow, exit_condition=lambda f: stop() or f.get("expires_at", 0) < time.time()
    )
    if "access_token" not in result:
        raise UserError(f"Microsoft sign-in did not finish: {_reason(result)}")
    signed_in = str(result.get("id_token_claims", {}).get("preferred_username", ""))
    if username and signed_in and signed_in.lower() != username.lower():
        say(f"Note: you signed in as {signed_in}, while the configuration says {username}.")
    with store.locked():
        store.save(_grant(creds, cache, signed_in or username))
    say(f"Signed in{f' as {signed_in}' if signed_in else ''}; the sign-in is kept in {store.where}.")


def access_token(creds: Credentials, store: GrantStore, *, scope: str, section: str) -> str:
    grant = store.load()
    if grant is None or grant.get("provider") != "microsoft":
        raise SignInNeeded(f"[{section}] is not signed in to Microsoft yet; {SIGN_IN_AGAIN}", section=section)
    cache = msal.SerializableTokenCache()
    cache.deserialize(json.dumps(grant.get("cache", {})))
    app = _app(creds, cache)
    account = str(grant.get("account", ""))
    accounts = app.get_accounts(username=account or None) or app.get_accounts()
    if not accounts:
        raise SignInNeeded(f"[{section}] the stored Microsoft sign-in has no account; {SIGN_IN_AGAIN}", section=section)
    try:
        result = app.acquire_token_silent_with_error([scope], account=accounts[0])
    except requests.RequestException as error:
        raise SignInUnavailable(f"cannot reach the Microsoft sign-in server: {type(error).__name__}") from None
    if cache.has_state_changed:  # a refreshed (and perhaps rotated) refresh token: kept before anything else
        store.save(_grant(creds, cache, account))
    if result and "access_token" in result:
        return str(result["access_token"])
    if result is None or result.get("error") in {"invalid_grant", "interaction_required", "consent_required"}:
        reason = _reason(result) if result else "no refresh token left"
        raise SignInNeeded(
            f"[{section}] the Microsoft sign-in for {account or creds.username} has expired or was revoked "
            f"({reason}); {SIGN_IN_AGAIN}",
            section=section,
        )
    if str(result.get("error", "")).startswith(("temporarily_unavailable", "server_error")):
        raise SignInUnavailable(f"the Microsoft sign-in server failed for now: {_reason(result)}")
    raise SignInNeeded(
        f"[{section}] Microsoft refused the sign-in ({_reason(result)}); {SIGN_IN_AGAIN}", section=section
    )


def _grant(creds: Credentials, cache: msal.SerializableTokenCache, account: str) -> dict[str, Any]:
    return {
        "provider": "microsoft",
        "account": account,
        "client_id": creds.oauth2_client_id,
        "tenant": creds.oauth2_tenant,
        "cache": json.loads(cache.serialize()),
    }


def _reason(result: dict[str, Any]) -> str:
    """The error code and the first line of its description — never a token."""
    error = str(result.get("error", "unknown error"))
    description = str(result.get("error_description", "")).strip().splitlines()
    return f"{error}: {description[0]}" if description else error
