"""The account half of `mentor-agent setup`: which servers, and how the agent signs in to them.

Servers come from the flags, the config as it is (a re-run), a preset, or discovery (:mod:`agent.mail.discovery`);
then the student is asked. The secret never goes into config.toml: OAuth2 signs in once through
:func:`agent.mail.oauth.sign_in`; a password goes into the system keyring when there is one, else into a file
only the student can read, which ``password_command`` reads.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.cli.prompts import Asker
from agent.config.presets import PRESETS, Found, OAuthKind, Security, Server, found_from
from agent.config.settings import Credentials
from agent.errors import Problem, UserError
from agent.mail.grants import write_private

SECURITIES = ("tls", "starttls", "plain")
DEFAULT_PORTS: dict[str, dict[str, int]] = {
    "imap": {"tls": 993, "starttls": 143, "plain": 143},
    "smtp": {"tls": 465, "starttls": 587, "plain": 587},
}
KEYRING_SERVICE = "mentor-agent"
AS_IT_IS = "the config as it is"  # the source of servers kept from an earlier run
SECRET_KEYS = ("password", "password_command", "keyring_service", "credential", "oauth2_token_command", "oauth2")
OAUTH_KEYS = ("oauth2_client_id", "oauth2_tenant", "oauth2_client_file", "oauth2_authority")

CLIENT_ID_HELP = """\
Signing in to Microsoft needs an app registration: an "Application (client) ID" registered for IMAP and SMTP
(delegated permissions IMAP.AccessAsUser.All and SMTP.Send, public client flows allowed). mentor-agent has
none of its own; your school's IT may give you one, or you can register one in the Entra admin centre."""
CLIENT_FILE_HELP = """\
Signing in to Google needs an OAuth client of type "Desktop app": the JSON file the Google Cloud console
(APIs & Services, Credentials) lets you download. mentor-agent has none of its own; your school may provide
one. Or use an app password instead (--auth password)."""


@dataclass(frozen=True)
class ServerAnswers:
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    preset: str | None = None
    autoconfig_url: str = ""
    dns: str = ""


def _server_from(data: Mapping[str, Any], section: str) -> Server | None:
    part = data.get(section)
    if not isinstance(part, Mapping) or not isinstance(part.get("host"), str):
        return None
    security: Security = part.get("security", "tls")
    return Server(part["host"], int(part.get("port", DEFAULT_PORTS[section][security])), security)


def _ask_server(
    ask: Asker, section: str, given: tuple[str | None, int | None, str | None], suggested: Server | None
) -> Server:
    name = section.upper()
    host = ask.text(f"--{section}-host", given[0], f"{name} server (host name)", suggested.host if suggested else None)
    security = ask.choice(
        f"--{section}-security", given[2], f"{name} security", SECURITIES, suggested.security if suggested else "tls"
    )
    default_port = suggested.port if suggested and suggested.security == security else DEFAULT_PORTS[section][security]
    port = ask.number(f"--{section}-port", given[1], f"{name} port", default_port)
    return Server(host, port, security)  # type: ignore[arg-type]  # one of SECURITIES


def choose_servers(ask: Asker, answers: ServerAnswers, address: str, existing: Mapping[str, Any]) -> Found:
    """The IMAP and SMTP servers, and how they want to be signed in to."""
    if answers.imap_host or answers.smtp_host:
        imap = _ask_server(ask, "imap", (answers.imap_host, answers.imap_port, answers.imap_security), None)
        smtp = _ask_server(ask, "smtp", (answers.smtp_host, answers.smtp_port, answers.smtp_security), None)
        return Found(source="the options given", imap=imap, smtp=smtp)
    found: Found | None
    if answers.preset:
        if answers.preset not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            raise UserError([Problem(file="", key="--provider", message=f"{answers.preset!r} is none of: {known}")])
        found = found_from(PRESETS[answers.preset])
    else:
        was_imap, was_smtp = _server_from(existing, "imap"), _server_from(existing, "smtp")
        old = existing.get("student", {}).get("address") if isinstance(existing.get("student"), Mapping) else None
        if was_imap and was_smtp and old == address:
            oauth2 = existing["imap"].get("oauth2", "")
            found = Found(source=AS_IT_IS, imap=was_imap, smtp=was_smtp, oauth2=oauth2)
        else:
            from agent.mail.discovery import Where, discover  # dnspython: only when setup looks

            where = Where.loopback(answers.autoconfig_url, answers.dns)
            ask.say(f"Looking for the servers of {address} ...")
            found = discover(address, where)
            if found is None:
                ask.say("Found nothing (looked at: " + ", ".join(where.tried) + ")")
                domain = address.rpartition("@")[2]
                ask.say(f"  Is {domain} spelled right? If not, stop here (Ctrl-C) and run setup again.")
    if found is not None:
        ask.say(f"Found in {found.source}:\n  IMAP {found.imap}\n  SMTP {found.smtp}")
        if found.oauth2:
            ask.say(f"  sign-in: {found.oauth2.capitalize()} (OAuth2)")
        if ask.confirm("--provider", None, "Use these servers?", True):
            return found
    imap = _ask_server(ask, "imap", (None, None, None), found.imap if found else None)
    smtp = _ask_server(ask, "smtp", (None, None, None), found.smtp if found else None)
    return Found(source="your answers", imap=imap, smtp=smtp)


# -- signing in ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInAnswers:
    auth: str | None = None  # "oauth2" or "password"
    client_id: str | None = None
    client_file: Path | None = None
    tenant: str | None = None
    password_command: str | None = None
    password_file: Path | None = None
    store: str | None = None  # "keyring" or "file"
    authority: str | None = None  # the sign-in server's base URL (sovereign clouds, tests); None: the provider's


def keyring_backend() -> Any | None:
    """The keyring module when a real backend is there (not the 'fail' one), else None."""
    try:
        keyring: Any = importlib.import_module("keyring")
        backend = keyring.get_keyring()
    except Exception:  # not installed, or no usable backend: the file is the fallback
        return None
    if type(backend).__module__.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    return keyring


def _write_secret_file(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    path.chmod(0o600)  # an older file may have had a wider mode


def _existing_secret(existing: Mapping[str, Any]) -> dict[str, Any]:
    imap = existing.get("imap")
    if not isinstance(imap, Mapping):
        return {}
    return {k: imap[k] for k in (*SECRET_KEYS, *OAUTH_KEYS) if k in imap and k != "password"}


class SignInFailed(UserError):
    """The sign-in did not finish (refused, the code expired): in a terminal, setup offers to try again."""


@dataclass(frozen=True)
class SignIn:
    """The keys of [imap] and [smtp] that say how to sign in, and what stores the secret: ``store`` runs once the
    student has agreed to the changes, before the login test (which needs the secret where the config says)."""

    keys: dict[str, Any]
    store: Callable[[], None] = lambda: None
    undo: Callable[[], None] = lambda: None  # puts back what ``store`` replaced, when the config is not written
    source: str = ""  # the flag the secret came from, named when the server refuses it
    again: Callable[[], SignIn] | None = None  # asks for the password once more (it was typed)


def _problem(key: str, message: str, file: Path | str = "") -> UserError:
    return UserError([Problem(file=str(file), key=key, message=message)])


def sign_in(
    ask: Asker,
    answers: SignInAnswers,
    found: Found,
    *,
    username: str,
    config: Path,
    state_dir: Path,
    existing: Mapping[str, Any],
) -> SignIn:
    cleared: dict[str, Any] = dict.fromkeys((*SECRET_KEYS, *OAUTH_KEYS))
    kept = _existing_secret(existing)
    old = existing.get("imap") if isinstance(existing.get("imap"), Mapping) else {}
    assert isinstance(old, Mapping)
    same_user = old.get("username") == username
    untouched = not any((answers.auth, answers.password_command, answers.password_file))
    plain = old.get("password") if same_user and untouched and isinstance(old.get("password"), str) else None
    if plain:  # a password written in the config by hand: it moves out of the file
        ask.say("The password written in config.toml moves out of it.")
        return _password(ask, answers, found, username=username, config=config, known=plain, base=cleared)
    if (
        kept
        and same_user
        and untouched
        and ask.confirm("--auth", None, "Keep the sign-in as it is in the config?", True)
    ):
        return SignIn(cleared | kept)
    auth = answers.auth
    if auth is None:
        if answers.client_id or answers.client_file or answers.authority:
            auth = "oauth2"  # a sign-in flag given says how, whatever the servers are
        elif found.oauth2 == "microsoft":
            auth = "oauth2"  # Microsoft turned basic authentication off
        elif found.oauth2 == "google":
            ask.say("Google: sign in with an OAuth client (oauth2), or use an app password (password)?")
            auth = ask.choice("--auth", None, "Sign in with", ("oauth2", "password"), "oauth2")
        else:
            auth = "password"
    if auth == "oauth2":
        return _oauth(ask, answers, found, username=username, state_dir=state_dir, base=cleared)
    return _password(ask, answers, found, username=username, config=config, base=cleared)


def _oauth(
    ask: Asker, answers: SignInAnswers, found: Found, *, username: str, state_dir: Path, base: dict[str, Any]
) -> SignIn:
    from agent.mail import oauth

    # Servers given by hand say nothing of whose sign-in: the flags given do (a client file is Google's).
    hinted: OAuthKind = "google" if answers.client_file else "microsoft" if answers.client_id else ""
    kind: OAuthKind = (
        found.oauth2
        or hinted
        or (
            "google"
            if ask.choice("--auth", None, "Whose sign-in", ("microsoft", "google"), "microsoft") == "google"
            else "microsoft"
        )
    )
    keys: dict[str, Any] = {"oauth2": kind}
    if kind == "microsoft":
        if answers.client_id is None:
            ask.say(CLIENT_ID_HELP)
        keys["oauth2_client_id"] = ask.text("--oauth2-client-id", answers.client_id, "Application (client) ID", None)
        keys["oauth2_tenant"] = answers.tenant or found.tenant
    else:
        if answers.client_file is None:
            ask.say(CLIENT_FILE_HELP)
        given = str(answers.client_file) if answers.client_file else None
        path = Path(ask.text("--oauth2-client-file", given, "OAuth client file (JSON)", None, _client_file_problem))
        keys["oauth2_client_file"] = str(path.expanduser().resolve())
    if answers.authority:
        keys["oauth2_authority"] = answers.authority.rstrip("/")
    creds = Credentials(
        username=username,
        oauth2=kind,
        oauth2_client_id=keys.get("oauth2_client_id", ""),
        oauth2_tenant=keys.get("oauth2_tenant", "organizations"),
        oauth2_client_file=Path(keys["oauth2_client_file"]) if "oauth2_client_file" in keys else None,
        oauth2_authority=keys.get("oauth2_authority", ""),
    )

    before = _Kept(oauth.grant_store(creds, username=username, state_dir=state_dir).path)  # no keyring_service here

    def store() -> None:
        before.take()
        try:
            oauth.sign_in(creds, username=username, state_dir=state_dir, say=ask.say)
        except UserError as error:
            raise SignInFailed(error.problems) from None

    return SignIn(base | keys, store, before.put_back)


def _client_file_problem(answer: str) -> str | None:
    """A Google client file that is there and is one (asked again in a terminal, else named with its flag)."""
    path = Path(answer).expanduser()
    if not path.is_file():
        return f"{path}: no such file"
    from agent.mail.oauth_google import client_config

    try:
        client_config(Credentials(oauth2="google", oauth2_client_file=path), "imap")
    except UserError as error:
        return str(error)
    return None


def _read_password_file(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise _problem("--password-file", error.strerror or "cannot read", path) from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise _problem("--password-file", "is empty", path)
    return secret


def _password(
    ask: Asker,
    answers: SignInAnswers,
    found: Found,
    *,
    username: str,
    config: Path,
    base: dict[str, Any],
    known: str | None = None,
) -> SignIn:
    if answers.password_command:
        return SignIn(base | {"password_command": answers.password_command}, source="--password-command")
    preset = PRESETS.get(found.preset)
    if preset and preset.app_passwords and known is None:
        ask.say(f"{preset.title} wants an app password, not your usual one: make one at {preset.app_passwords}")
    if known is not None:
        secret = known
    elif answers.password_file is not None:
        secret = _read_password_file(answers.password_file)
    else:
        secret = ask.secret("--password-file", f"Password for {username}")

    def again() -> SignIn:
        return _password(ask, answers, found, username=username, config=config, base=base)

    typed = again if known is None and answers.password_file is None else None
    source = "--password-file" if answers.password_file is not None else ""
    keyring = keyring_backend()
    where = answers.store or ("keyring" if keyring is not None else "file")
    if where == "keyring":
        if keyring is None:
            raise _problem("--store", "keyring: no system keyring here (pip install keyring, and a Secret Service)")

        old: list[str | None] = []

        def into_keyring() -> None:
            old.append(keyring.get_password(KEYRING_SERVICE, username))
            keyring.set_password(KEYRING_SERVICE, username, secret)
            ask.say(f"The password is in the system keyring (service {KEYRING_SERVICE!r}, user {username!r}).")

        def out_of_keyring() -> None:
            with contextlib.suppress(Exception):  # backends raise their own types; the config is not written anyway
                if old and old[0] is not None:
                    keyring.set_password(KEYRING_SERVICE, username, old[0])
                elif old:
                    keyring.delete_password(KEYRING_SERVICE, username)

        return SignIn(base | {"keyring_service": KEYRING_SERVICE}, into_keyring, out_of_keyring, source, typed)
    path = config.with_name(f"{config.stem}.password")  # beside the config, one per config file
    before = _Kept(path)

    def into_file() -> None:
        before.take()
        _write_secret_file(path, secret)
        ask.say(f"The password is in {path} (only you can read it); the config reads it with password_command.")
        if keyring is None and answers.store is None:
            ask.say("  (With the keyring extra it would go into the system keyring: pipx inject mentor-agent keyring.)")

    return SignIn(
        base | {"password_command": f"cat {shlex.quote(str(path))}"}, into_file, before.put_back, source, typed
    )


class _Kept:
    """A secret file as it was just before setup stored a new one (``take``); ``put_back`` restores it, or
    removes the new one, when the config is not written after all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.taken = False
        self.text: str | None = None

    def take(self) -> None:
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.text = None
        except OSError as error:
            raise _problem("", error.strerror or "cannot read", self.path) from None
        self.taken = True

    def put_back(self) -> None:
        if not self.taken:  # nothing was stored
            return
        if self.text is None:
            self.path.unlink(missing_ok=True)
        else:
            write_private(self.path, self.text)
