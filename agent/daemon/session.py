"""How the agent reaches the mailbox, for the daemon and the commands alike: one way in.

:func:`login_for` resolves a login (password, command, keyring, OAuth token); :func:`connect` logs in to IMAP
marked with this agent's id, refuses a folder set-up that would touch the student's own mail
(:func:`agent.daemon.preflight.require_live`) and resolves the folders; :func:`world_for` builds the
:class:`~agent.reconcile.context.World` a reconcile step runs in. The daemon's session starts with these, and so do
the commands that act on the mailbox (``propose``, ``withdraw``: :func:`run_step` runs the daemon's own
reconcile step once; ``release``, ``cancel``): a command logs in, checks and finds folders as the daemon would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from agent.config.policy_keeper import PolicyKeeper
from agent.config.settings import Credentials, Settings
from agent.daemon import preflight
from agent.errors import Problem, UserError
from agent.mail.claim import Mailbox
from agent.mail.credentials import resolve
from agent.mail.port import ResolvedFolders, folder_attributes
from agent.mail.pulse import Pulse
from agent.mail.session import FolderRefused, Login, MailboxError, ServerTrouble
from agent.mail.stalls import paced
from agent.reconcile.context import World, utc_now
from agent.rules.notices import build_notice, notice_id
from agent.rules.policy import PolicyBook, load_policies
from agent.rules.refusals import Gate
from agent.store.ledger import Ledger

T = TypeVar("T")
log = logging.getLogger("mentor_agent")


def login_for(creds: Credentials, section: str, config_file: str, state_dir: Path | None = None) -> Login:
    """The login for one section; ``state_dir`` is where the built-in sign-in keeps its grant."""
    secret = resolve(creds, section=section, config_file=config_file, state_dir=state_dir)
    if secret is None:
        return Login(creds.username)
    if secret.kind == "oauth2":
        return Login(creds.username, oauth2_token=secret.value)
    return Login(creds.username, password=secret.value)


def smtp_login_for(settings: Settings, config_file: str) -> Callable[[], Login | None]:
    """The SMTP login, resolved when a message goes (a token may have run out meanwhile); None without a user."""
    smtp = settings.smtp
    return lambda: login_for(smtp, "smtp", config_file, settings.state_dir) if smtp.username else None


def connect(
    settings: Settings, config_file: str, agent_id: str, login: Login | None = None, pulse: Pulse | None = None
) -> tuple[Mailbox, ResolvedFolders]:
    """Log in to IMAP (blocking), check the folders against the server's SPECIAL-USE ones and resolve them.

    ``agent_id`` is the ledger's (:meth:`Ledger.agent_id`): what this agent's claims are marked with. The
    caller closes the mailbox; on an error here it is closed already.
    """
    mailbox, folders, _ = connect_listed(settings, config_file, agent_id, login, pulse=pulse)
    return mailbox, folders


def connect_listed(
    settings: Settings,
    config_file: str,
    agent_id: str,
    login: Login | None = None,
    *,
    tell: bool = False,
    trouble: Callable[[Mailbox, ServerTrouble], None] | None = None,
    pulse: Pulse | None = None,
) -> tuple[Mailbox, ResolvedFolders, dict[str, frozenset[str]]]:
    """:func:`connect`, and the folders as its one LIST showed them, with the agent's own it made (no attributes):
    what a session's first looks read (:func:`~agent.reconcile.outbox_folders.settle_folders`, the drafts door)
    instead of a LIST each (issue 21: a backlog at start waits for every round trip before its first send).

    A folder the server refuses to create is a :class:`UserError` naming its ``imap.folders`` key (configuration:
    the daemon stops with it, exit 78); ``tell`` (the daemon): the student is told by a notice in INBOX first.
    ``trouble``: called with the logged-in mailbox when the server refuses the folder check for now
    (:class:`ServerTrouble`: tried again), before the mailbox closes: the daemon tells her of a long spell so.
    ``pulse``: the connection's (:mod:`agent.mail.pulse`), for a caller that ends it when it trickles."""
    mailbox = Mailbox(
        settings.imap,
        login or login_for(settings.imap, "imap", config_file, settings.state_dir),
        agent_id=agent_id,
        pulse=pulse,
    )
    try:
        mailbox.connect()
        listing = preflight.require_live(mailbox, settings, config_file)  # SPECIAL-USE: never the student's own mail
        folders = mailbox.resolve_folders(settings.imap.folders, listing)  # from the same LIST
    except FolderRefused as error:
        problem = folder_refused(error, settings, config_file)
        if tell:
            _tell(mailbox, settings, "mentor-agent stopped: the server refused one of its folders", problem)
        mailbox.close()
        raise UserError([problem]) from error
    except ServerTrouble as error:
        if trouble is not None:
            trouble(mailbox, error)
        mailbox.close()
        raise
    except BaseException:
        mailbox.close()
        raise
    made = (folders.outbox, folders.scheduled, folders.needs_attention, folders.sending, folders.sent, folders.notices)
    return mailbox, folders, {name: frozenset() for name in made} | folder_attributes(listing)


def folder_refused(error: FolderRefused, settings: Settings, config_file: str) -> Problem:
    """The config key of the folder the server refused to create, its words, and what to write instead."""
    folders = settings.imap.folders
    key = next((k for k in FOLDER_KEYS if getattr(folders, k) == error.folder), "sent")  # "Sent", made when none
    return name_problem(
        preflight.Origin.of(config_file), key, error.folder, error.prefix, f"refused to create it: {error.words}"
    )


def name_problem(origin: preflight.Origin, key: str, folder: str, prefix: str | None, why: str) -> Problem:
    """A folder name this server does not take (``why``), and what to write instead where the server says its
    namespace prefix."""
    better = f"{prefix}{folder}" if prefix and not folder.startswith(prefix) else ""
    advice = (
        f'write {key} = "{better}" under [imap.folders] (this server keeps folders under "{prefix}")'
        if better
        else f'choose a name this server takes: {key} = "..." under [imap.folders]'
    )
    return origin.problem(("imap", "folders", key), f"{folder!r} cannot be made on this server ({why}); {advice}")


FOLDER_KEYS = ("outbox", "scheduled", "needs_attention", "sending", "sent", "notices")


def _tell(mailbox: Mailbox, settings: Settings, title: str, problem: Problem) -> None:
    """A notice in INBOX (the notices folder may be the one refused) before the daemon stops; never raises. The
    same problem is told once, however often she starts the daemon before she fixes it: the notice's Message-ID is
    made of the problem's words and looked for first."""
    words = re.sub(r"\s*\([\d.+ ]*secs\)", "", f"{title}\n{problem}")  # Dovecot's timings differ at each start
    lines = [str(problem), "Nothing goes out until the config file is fixed and mentor-agent is started again."]
    tell_in_inbox(mailbox, settings, title, lines, f"stopped-{hashlib.sha256(words.encode()).hexdigest()[:20]}")


def tell_in_inbox(mailbox: Mailbox, settings: Settings, title: str, lines: list[str], made: str) -> bool:
    """A notice in INBOX over a session that cannot go on (the notices folder may not be there); whether it is
    there now. Never raises. Its Message-ID is made of ``made`` and looked for first: told once."""
    student = settings.student
    own = notice_id(student.address, made)
    raw = build_notice(
        student_name=student.name,
        student_address=student.address,
        title=title,
        lines=lines,
        now=utc_now(),
        message_id=own,
    )
    try:
        if not mailbox.find_by_message_id("INBOX", own):
            mailbox.append("INBOX", raw)
    except MailboxError as error:
        log.warning("could not append the notice %r: %s", title, error)
        return False
    return True


def world_for(
    settings: Settings,
    config_file: str,
    mailbox: Mailbox,
    folders: ResolvedFolders,
    ledger: Ledger,
    book: PolicyBook,
    *,
    clock: Callable[[], datetime] = utc_now,
    stopping: asyncio.Event | None = None,
    smtp_gate: Gate | None = None,
) -> World:
    return World(
        settings,
        mailbox,
        folders,
        ledger,
        book,
        smtp_login=smtp_login_for(settings, config_file),
        clock=clock,
        stopping=stopping or asyncio.Event(),
        smtp_gate=smtp_gate or Gate("SMTP"),
    )


def policy_book(settings: Settings) -> PolicyBook:
    """The policies as the daemon takes them in at start."""
    return PolicyKeeper(settings.policies_dir, load_policies(settings.policies_dir)).book()


async def run_step(settings: Settings, config_file: str | Path, step: Callable[[World], Awaitable[T]]) -> T:
    """For a command: connect as the daemon does, run one of its reconcile steps on its ledger, and close.

    The mailbox cannot be reached (or refuses the login): a :class:`UserError` on the ``imap`` key.
    """
    config = str(config_file)
    ledger = Ledger(settings.ledger_path)
    pulse, window = Pulse(), 2 * settings.imap.timeout  # a server that trickles fails the command (agent.mail.stalls)
    try:
        mailbox, folders = await paced(
            pulse,
            asyncio.to_thread(connect, settings, config, ledger.agent_id(), None, pulse),
            window=window,
            what="the login and its folders",
        )
        try:
            return await step(world_for(settings, config, mailbox, folders, ledger, policy_book(settings)))
        finally:
            with contextlib.suppress(MailboxError):  # closed all the same
                await paced(pulse, asyncio.to_thread(mailbox.close), window=window, what="a logout")
    except MailboxError as error:
        raise UserError([Problem(config, "imap", f"cannot reach the mailbox: {error}")]) from error
    finally:
        ledger.close()
