"""``mentor-agent check --connect``: log in as the daemon would and say what it would use. Sends nothing and
changes nothing: no folder is created, no message stored, no flag set. (:func:`create_folders`, for ``setup``,
is the one function here that changes the mailbox.)

The logins go through the daemon's own code (:func:`agent.daemon.session.login_for`, :class:`agent.mail.claim.Mailbox`,
:class:`agent.mail.smtp.Sender`), so a login that works here works for ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiosmtplib

from agent.config.settings import Folders, Settings
from agent.daemon.preflight import Origin, live_folder_problems
from agent.daemon.session import FOLDER_KEYS, folder_refused, name_problem
from agent.errors import AgentError, ConnectionProblem, Problem, UserError
from agent.mail.claim import Mailbox
from agent.mail.folder_names import find_sent, usable, without_ghosts
from agent.mail.port import folder_attributes
from agent.mail.session import FolderRefused

# Capabilities the agent uses, and what it does without each.
CAPABILITIES = {
    "IDLE": "sees new mail at once (without it: looks every poll_interval)",
    "MOVE": "moves in one step (without it: COPY, then delete by UID)",
    "UIDPLUS": "deletes only its own messages (without it: moves need MOVE)",
    "CONDSTORE": "cheap re-checks of flags",
    "SPECIAL-USE": "finds Sent by its attribute (without it: by name)",
}


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # mistakes in the config the server showed up


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _imap(settings: Settings, config_file: Path, report: Report) -> str:
    """Log in to IMAP, describe it; the Sent folder's name."""
    from agent.daemon.session import login_for  # the daemon's own login: a password command is run as `run` runs it

    imap = settings.imap
    mailbox = Mailbox(imap, login_for(imap, "imap", str(config_file), settings.state_dir))
    mailbox.connect()  # a refused login or TLS mistake is an AgentError already worded for the user (exit 78)
    try:
        client = mailbox.client
        report.lines.append(f"IMAP {imap.host}:{imap.port} ({imap.security}): logged in as {imap.username}")
        capabilities = {_text(c).upper() for c in client.capabilities()}
        listing = [(tuple(flags), delimiter, _text(name)) for flags, delimiter, name in client.list_folders()]
        names = {name.upper() if name.upper() == "INBOX" else name: flags for flags, _, name in listing}
        report.problems.extend(live_folder_problems(listing, imap.folders, Origin.of(config_file)))
        folders = imap.folders
        own = [getattr(folders, key) or "Sent" for key in FOLDER_KEYS]
        listed = without_ghosts(folder_attributes(listing), own, mailbox.selectable)
        sent, found, like = (folders.sent, "config", ()) if folders.sent else find_sent(listed)
        how_sent = {
            "config": "as set in imap.folders.sent",
            "special-use": "found by its SPECIAL-USE attribute or its name",
            "name": "found by its name",
            "localized": "found by its name, not marked \\Sent: set imap.folders.sent to be sure",
            "several": f"the likeliest of the folders named like one (also {', '.join(like)}): set imap.folders.sent",
        }.get(found, "no sent-mail folder found")
        placeholders = {name for name, flags in listed.items() if not usable(flags)}
        names = {name: flags for name, flags in names.items() if name not in placeholders}
        report.problems.extend(_unprefixed(client, imap.folders, sent, names, Origin.of(config_file)))
        # A folder whose \Recent flags no one reads: the Outbox, else Sent; INBOX only when neither exists yet.
        keywords = _permanent_flags(client, next((f for f in (folders.outbox, sent) if f in names), "INBOX"))
        report.lines.append(
            "  capabilities: " + ", ".join(f"{name} {'yes' if name in capabilities else 'no'}" for name in CAPABILITIES)
        )
        report.lines.append("  custom keywords: " + keywords)
        report.lines.append("  folders:")
        for role, name in (
            ("outbox", folders.outbox),
            ("scheduled", folders.scheduled),
            ("sending", folders.sending),
            ("needs attention", folders.needs_attention),
            ("sent", sent),
            ("notices", folders.notices),
            ("inbox", folders.inbox),
        ):
            key = name.upper() if name.upper() == "INBOX" else name
            state = "exists" if key in names else "will be created by `run`"
            if role == "inbox" and key not in names:
                state = "missing"
            attributes = " ".join(
                _text(f)
                for f in names.get(key, ())
                if _text(f).lower()
                not in ("\\hasnochildren", "\\haschildren", "\\subscribed", "\\marked", "\\unmarked")
            )
            extra = f" ({attributes})" if attributes else ""
            note = f"; {how_sent}" if role == "sent" else ""
            report.lines.append(f"    {role:<16} {name!r}: {state}{extra}{note}")
        return sent
    finally:
        mailbox.close()


def _unprefixed(client: Any, folders: Folders, sent: str, names: Mapping[str, Any], origin: Origin) -> list[Problem]:
    """The agent's folders `run` would create outside the personal namespace's prefix (``INBOX.``, where a server
    keeps its folders so): the server refuses such a CREATE."""
    if not client.has_capability("NAMESPACE"):
        return []
    personal = client.namespace().personal
    prefix = _text(personal[0][0]) if personal else ""
    if not prefix:
        return []
    wanted = {key: getattr(folders, key) for key in FOLDER_KEYS} | {"sent": sent}
    return [
        name_problem(origin, key, name, prefix, f'its folders are all under "{prefix}"')
        for key, name in wanted.items()
        if name.upper() != "INBOX" and name not in names and not _under(name, prefix)
    ]


def _under(name: str, prefix: str) -> bool:
    """Whether ``name`` is under the namespace ``prefix``; INBOX is one name in any case (RFC 3501), so "inbox." is
    under "INBOX."."""
    if prefix.upper().startswith("INBOX") and name.upper().startswith("INBOX"):
        return name.upper().startswith(prefix.upper())
    return name.startswith(prefix)


def _permanent_flags(client: Any, folder: str) -> str:
    """Whether the server keeps custom keywords (the agent marks a message it is moving with one)."""
    try:
        # SELECT, not EXAMINE: a read-only folder reports no PERMANENTFLAGS. Nothing is changed by it.
        answer = client.select_folder(folder)
    except Exception as error:  # imapclient raises several types; this line is only a report
        return f"unknown (SELECT {folder!r} failed: {error})"
    finally:
        with contextlib.suppress(Exception):
            if b"UNSELECT" in {c.upper() for c in client.capabilities()}:
                client.unselect_folder()
    flags = [_text(f) for f in answer.get(b"PERMANENTFLAGS", ())]
    if "\\*" in flags:
        return f"kept (PERMANENTFLAGS in {folder!r} has \\*)"
    return (
        f"NOT kept (PERMANENTFLAGS in {folder!r}: {' '.join(flags) or 'none'}); the agent cannot mark a message "
        "it is moving, so two agents on this account could both send it"
    )


def _file_in_sent(settings: Settings) -> bool | None:
    from agent.reconcile.context import World  # the daemon's own decision, not a copy of it

    decide = getattr(World.__dict__.get("file_in_sent"), "fget", None)
    try:
        return bool(decide(SimpleNamespace(settings=settings))) if decide else None
    except AttributeError:  # the decision needs more than the settings: the daemon makes it when it runs
        return None


async def _smtp(settings: Settings, config_file: Path, report: Report, sent: str) -> None:
    from agent.daemon.session import login_for
    from agent.mail.smtp import Sender

    smtp = settings.smtp
    login = login_for(smtp, "smtp", str(config_file), settings.state_dir) if smtp.username else None
    sender = Sender(smtp, login, attempts=1)
    where = f"{smtp.host}:{smtp.port}"
    try:
        client = await sender._connected()  # connect, STARTTLS and AUTH exactly as a send does; no MAIL FROM
        if client.last_ehlo_response is None:
            await client.ehlo()
        extensions = sorted(f"{name.upper()} {value}".strip() for name, value in client.esmtp_extensions.items())
    except AgentError:
        raise  # SmtpLoginRefused, SmtpTlsProblem: worded for the user, exit 78
    except aiosmtplib.SMTPResponseException as error:
        raise ConnectionProblem(f"smtp: {where} refused: {error.code} {error.message}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise ConnectionProblem(f"smtp: cannot connect to {where}: {error}") from None
    finally:
        await sender.close()
    who = f"logged in as {smtp.username}" if login else "connected, no login (smtp.username is empty)"
    report.lines.append(f"SMTP {where} ({smtp.security}): {who}")
    report.lines.append(f"  extensions: {', '.join(extensions) or 'none'}")
    files = _file_in_sent(settings)
    setting = f'file_in_sent = "{smtp.file_in_sent}"'
    if smtp.file_in_sent == "auto":
        setting += f": {smtp.host} {'is not' if files else 'is'} a provider known to file sent mail itself"
    if files is None:
        report.lines.append(f"  sent mail: {setting}; decided when the agent runs")
    elif files:
        report.lines.append(f"  sent mail: the agent files a copy of what it sends in {sent!r} ({setting})")
    else:
        report.lines.append(
            f"  sent mail: the provider files what it is sent in Sent itself, the agent adds no copy ({setting})"
        )


def connect(settings: Settings, config_file: Path) -> Report:
    """Log in to IMAP and SMTP as ``run`` would; raise an AgentError with the server's words if either fails."""
    report = Report()
    sent = _imap(settings, config_file, report)
    asyncio.run(_smtp(settings, config_file, report, sent))
    report.lines.append("nothing was sent and nothing was changed")
    return report


def create_folders(settings: Settings, config_file: Path) -> list[str]:
    """Create the agent's folders (Outbox, Scheduled, Sending, Needs attention; Sent if there is none) as ``run``
    does at start (:meth:`Mailbox.resolve_folders`), after the same guard: none may be one of the student's
    SPECIAL-USE folders. The names it created.

    Unlike :func:`connect`, this changes the mailbox: only ``mentor-agent setup`` calls it."""
    from agent.daemon.preflight import require_live
    from agent.daemon.session import login_for

    imap = settings.imap
    mailbox = Mailbox(imap, login_for(imap, "imap", str(config_file), settings.state_dir))  # state: the grant
    mailbox.connect()
    try:
        require_live(mailbox, settings, config_file)
        before = set(mailbox.folder_list())
        try:
            mailbox.resolve_folders(imap.folders)  # the daemon's own start: creates what is missing, Sent too
        except FolderRefused as error:
            raise UserError([folder_refused(error, settings, str(config_file))]) from error
        created = sorted(set(mailbox.folder_list()) - before)
        return created
    finally:
        mailbox.close()
