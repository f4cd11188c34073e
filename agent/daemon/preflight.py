"""What ``run`` refuses before it starts, judged in one place so that ``check`` says exactly the same.

:func:`problems` looks at the settings alone (folder names, where the login secrets come from, the config
file's permissions) and runs no command; :func:`live_folder_problems` looks at the folders the server lists.
Each problem names the key in the config file, or the environment variable when the value came from there.
"""

from __future__ import annotations

import contextlib
import imaplib
import importlib.util
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapclient.exceptions import IMAPClientError

from agent.config.settings import Credentials, Folders, Settings, env_keys
from agent.errors import Problem, UserError
from agent.mail.claim import Mailbox
from agent.mail.credentials import check_secret_file
from agent.mail.port import Listing
from agent.mail.session import MailboxError
from agent.rules.policy import line_of, read_toml

# The folders the agent empties (it sends what it finds there and moves it on) or fills with its own mail.
AGENT_FOLDERS: dict[str, str] = {
    "outbox": "the agent sends every message it finds in the Outbox and moves it away",
    "scheduled": "the agent sends what waits in Scheduled, and takes a message deleted from it as cancelled",
    "sending": "the agent moves messages into Sending and out again while they go out",
    "needs_attention": "the agent files the messages it could not send in Needs attention",
}
DEFAULTS = Folders()

# Folders that hold the student's own mail, by the names mail providers give them (compared case-insensitively,
# also as the last part of a path such as "INBOX.Sent" or "[Gmail]/Sent Mail").
GUARDED_NAMES: dict[str, str] = {
    name.casefold(): kind
    for kind, names in {
        "your INBOX": ["INBOX"],
        "your sent-mail folder": [
            "Sent",
            "Sent Items",
            "Sent Messages",
            "Sent Mail",
            "Sent-Mail",
            "Gesendet",
            "Gesendete Elemente",
            "Envoyés",
            "Elementos enviados",
        ],
        "your drafts folder": ["Drafts", "Draft", "Entwürfe", "Brouillons"],
        "your trash folder": [
            "Trash",
            "Deleted",
            "Deleted Items",
            "Deleted Messages",
            "Bin",
            "Papierkorb",
            "Corbeille",
        ],
        "your junk folder": ["Junk", "Junk E-mail", "Junk Email", "Junk Mail", "Spam", "Bulk Mail"],
        "your archive folder": ["Archive", "Archives", "Archived", "Archiv"],
        "all your mail": ["All Mail", "[Gmail]/All Mail", "[Google Mail]/All Mail"],
        "your starred mail": ["Starred", "Flagged", "Important"],
    }.items()
    for name in names
}
# RFC 6154 attributes of folders that hold the student's own mail.
GUARDED_USES: dict[str, str] = {
    "\\sent": "your sent-mail folder",
    "\\drafts": "your drafts folder",
    "\\trash": "your trash folder",
    "\\junk": "your junk folder",
    "\\archive": "your archive folder",
    "\\all": "all your mail",
    "\\flagged": "your starred mail",
}
_HARM = "so your own mail would be sent again or moved; use a folder of its own, e.g."


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def _guarded_kind(name: str) -> str | None:
    """What ``name`` holds if it is one of the student's own folders by its name, else None."""
    full = _norm(name)
    if full in GUARDED_NAMES:
        return GUARDED_NAMES[full]
    for separator in ("/", "."):
        if separator in full:
            leaf = full.rsplit(separator, 1)[1].strip()
            if leaf in GUARDED_NAMES:
                return GUARDED_NAMES[leaf]
    return None


@dataclass(frozen=True)
class Origin:
    """Where the settings came from: the config file (its text and keys) and the environment."""

    file: Path
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    @classmethod
    def of(cls, file: Path | str | None, environ: Mapping[str, str] | None = None) -> Origin:
        path = Path(file) if file else Path("config.toml")
        text, data = "", dict[str, Any]()
        if file and path.is_file():
            with contextlib.suppress(UserError):  # load_settings has said so already
                text, data = read_toml(path)
        return cls(path, text, data, env_keys(environ))

    def variable(self, loc: Sequence[str]) -> str | None:
        keys = tuple(part.lower() for part in loc)
        for length in range(len(keys), 0, -1):
            if keys[:length] in self.env:
                return self.env[keys[:length]]
        return None

    def in_file(self, loc: Sequence[str]) -> bool:
        value: Any = self.data
        for part in loc:
            if not isinstance(value, Mapping) or part not in value:
                return False
            value = value[part]
        return True

    def problem(self, loc: Sequence[str], message: str) -> Problem:
        variable = self.variable(loc)
        if variable is not None:
            return Problem(file="", key=variable, message=message)
        return Problem(file=str(self.file), key=".".join(loc), message=message, line=line_of(self.text, tuple(loc)))


# -- folders ---------------------------------------------------------------------------------------------------


def folder_problems(folders: Folders, origin: Origin) -> list[Problem]:
    """The Outbox, Scheduled, Sending and Needs attention folders: never empty, never one another, never a
    folder that holds the student's own mail (INBOX, Sent, Drafts, Trash, Junk, Archive, All Mail, or whatever
    Sent, INBOX and the notices folder are set to)."""
    problems: list[Problem] = []
    taken: dict[str, str] = {}
    others = {"inbox": folders.inbox, "sent": folders.sent, "notices": folders.notices}
    for key, why in AGENT_FOLDERS.items():
        loc = ("imap", "folders", key)
        value: str = getattr(folders, key)
        default = getattr(DEFAULTS, key)
        if not value.strip():
            problems.append(origin.problem(loc, f'is empty; name a folder of its own, e.g. "{default}"'))
            continue
        name = _norm(value)
        if name in taken:
            problems.append(
                origin.problem(
                    loc, f"{value!r} is also the {taken[name]} folder; each of the agent's folders must be its own"
                )
            )
            continue
        taken[name] = key.replace("_", " ")
        kind = _guarded_kind(value)
        clash = next((other for other, setting in others.items() if setting.strip() and _norm(setting) == name), None)
        if kind is None and clash is not None:
            kind = f"the folder set as imap.folders.{clash}"
        if kind is not None:
            problems.append(origin.problem(loc, f'{value!r} is {kind}: {why}, {_HARM} "{default}"'))
    return problems


def live_folder_problems(
    listing: Iterable[tuple[Iterable[bytes | str], Any, str]], folders: Folders, origin: Origin
) -> list[Problem]:
    """The agent's folders that exist on the server with a SPECIAL-USE attribute (\\Sent, \\Drafts, …).

    ``listing`` is what IMAPClient.list_folders() returns: (flags, delimiter, name) per folder."""
    uses: dict[str, list[str]] = {}
    for flags, _delimiter, name in listing:
        found = [
            text
            for text in (f.decode() if isinstance(f, bytes) else str(f) for f in flags)
            if text.casefold() in GUARDED_USES
        ]
        if found:
            uses[_norm(name)] = found
    problems = []
    for key, why in AGENT_FOLDERS.items():
        value: str = getattr(folders, key)
        attributes = uses.get(_norm(value))
        if attributes:
            kind = GUARDED_USES[attributes[0].casefold()]
            problems.append(
                origin.problem(
                    ("imap", "folders", key),
                    f"{value!r} is {kind} on the server (SPECIAL-USE {' '.join(attributes)}): {why}, "
                    f'{_HARM} "{getattr(DEFAULTS, key)}"',
                )
            )
    return problems


# -- how the agent logs in ---------------------------------------------------------------------------------------


def _program_problem(command: str) -> str | None:
    try:
        argv = shlex.split(command)
    except ValueError as error:
        return f"cannot be split into words ({error})"
    if not argv:
        return "is empty"
    program = argv[0]
    if os.sep in program:
        if not os.path.isfile(program):
            return f"command not found: {program}"
        if not os.access(program, os.X_OK):
            return f"cannot run {program}: permission denied"
        return None
    if shutil.which(program) is None:
        return f"command not found: {program} (not on PATH: {os.environ.get('PATH', '')})"
    return None


def _credentials_file(creds: Credentials, section: str, environ: Mapping[str, str]) -> bool:
    directory = environ.get("CREDENTIALS_DIRECTORY", "")
    return bool(directory) and (Path(directory) / (creds.credential or f"{section}-password")).is_file()


def credential_problems(
    settings: Settings, origin: Origin, environ: Mapping[str, str] | None = None, *, signed_in: bool = True
) -> list[Problem]:
    """What would stop the login before a server is asked: a command whose program is missing, a keyring with
    no keyring package, no source of a secret at all, a password in a config file others can read."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    for section in ("imap", "smtp"):
        creds: Credentials = getattr(settings, section)
        if section == "imap" and not creds.username.strip():
            problems.append(origin.problem((section, "username"), "is empty; the agent logs in to IMAP with it"))
        for key in ("oauth2_token_command", "password_command"):
            command: str = getattr(creds, key)
            trouble = _program_problem(command) if command else None
            if trouble:
                problems.append(origin.problem((section, key), trouble))
        if creds.keyring_service and importlib.util.find_spec("keyring") is None:
            problems.append(
                origin.problem(
                    (section, "keyring_service"),
                    "is set but the keyring package is not installed (pip install keyring, or pipx inject mentor-agent "
                    "keyring)",
                )
            )
        if origin.in_file((section, "password")) and origin.file.is_file():
            try:
                check_secret_file(origin.file)
            except UserError as error:
                problems.extend(
                    Problem(
                        file=str(origin.file),
                        key=f"{section}.password",
                        message=f"is in this file, which {p.message}",
                        line=line_of(origin.text, (section, "password")),
                    )
                    for p in error.problems
                )
        needs_secret = section == "imap" or bool(creds.username.strip())
        if creds.oauth2 and needs_secret:
            problems.extend(_sign_in_problems(settings, creds, section, origin, signed_in=signed_in))
        has_secret = any(
            (
                creds.oauth2,
                creds.oauth2_token_command,
                creds.password_command,
                creds.credential,
                creds.keyring_service,
                creds.password is not None and creds.password.get_secret_value(),
                _credentials_file(creds, section, environ),
            )
        )
        if needs_secret and not has_secret:
            problems.append(
                origin.problem(
                    (section, "password_command"),
                    f'no password or token for [{section}]: set password_command (e.g. "pass show mail/uni"), '
                    "oauth2_token_command, credential or keyring_service (see docs/setup.md, Secrets)",
                )
            )
    return problems


def _sign_in_problems(
    settings: Settings, creds: Credentials, section: str, origin: Origin, *, signed_in: bool = True
) -> list[Problem]:
    """Built-in sign-in: what it needs in the config, and a grant (`mentor-agent login` makes one) unless
    ``signed_in`` is False (`setup` checks the config before it signs in)."""
    from agent.mail.oauth import grant_version

    if creds.oauth2 == "microsoft" and not creds.oauth2_client_id.strip():
        return [
            origin.problem(
                (section, "oauth2_client_id"),
                "is empty; Microsoft sign-in needs the application (client) id of an app registration — your "
                "school's IT can give you one (mentor-agent has none of its own); see docs/setup.md, Signing in",
            )
        ]
    if creds.oauth2 == "google" and creds.oauth2_client_file is None:
        return [
            origin.problem(
                (section, "oauth2_client_file"),
                "is empty; Google sign-in needs the OAuth client's JSON file (a desktop-app client of your own or "
                "your school's Google project); see docs/setup.md, Signing in",
            )
        ]
    if not signed_in:
        return []
    try:
        has_grant = bool(grant_version(creds, username=creds.username, state_dir=settings.state_dir))
    except UserError as error:
        return list(error.problems)
    if not has_grant:
        return [
            origin.problem(
                (section, "oauth2"),
                f"{creds.username or 'this account'} is not signed in yet: run mentor-agent login",
            )
        ]
    return []


def problems(
    settings: Settings,
    config_file: Path | str | None,
    environ: Mapping[str, str] | None = None,
    *,
    signed_in: bool = True,
) -> list[Problem]:
    """Everything ``run`` refuses before it connects: the same list ``check`` prints. ``signed_in=False``: leave
    out the built-in sign-in's grant (``setup`` checks the config first, then signs in)."""
    origin = Origin.of(config_file, environ)
    return folder_problems(settings.imap.folders, origin) + credential_problems(
        settings, origin, environ, signed_in=signed_in
    )


def require(settings: Settings, config_file: Path | str | None) -> None:
    """Raise UserError (the CLI exits 78) if ``run`` must not start with these settings."""
    found = problems(settings, config_file)
    if found:
        raise UserError(found)


def require_live(mailbox: Mailbox, settings: Settings, config_file: Path | str | None) -> Listing:
    """Raise UserError if one of the agent's folders is a SPECIAL-USE folder on the server (before ``run``
    creates or touches any of them). A failing LIST is a MailboxError, as any other IMAP failure. Returns what
    LIST answered: the folders are resolved from the same answer (:meth:`Mailbox.resolve_folders`)."""
    try:
        listing: Listing = mailbox.client.list_folders()
    except (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError) as error:
        raise MailboxError(f"LIST: {error}") from error
    found = live_folder_problems(listing, settings.imap.folders, Origin.of(config_file))
    if found:
        raise UserError(found)
    return listing
