"""``mentor-agent run``: the daemon. Events only say *when* to look; every look is a full reconcile pass.

Threads: one IMAP connection per watched folder sits in IDLE (Outbox, Scheduled, INBOX) and only wakes the
loop; one more connection carries every command, used by one pass at a time. Timers wake the loop at the
next due time, to the second. A dead connection (or an IDLE that stays silent too long) ends the session;
the loop reconnects with backoff, and the first pass after it rescans everything, so nothing is missed.

Why one module: the loop, its timers, its signal handlers, the watcher threads and the waits after a refused
login or an expired sign-in all share one piece of state — when to look next, and whether to stop — and each
change to one of them has to be read against the others. How the daemon gets in (login, folders, the World) is
apart, in :mod:`agent.daemon.session`, which the commands use too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config.policy_keeper import BROKEN, REMOVED, RENAMED, Change, PolicyKeeper, look_at
from agent.config.settings import Settings
from agent.daemon import preflight, sdnotify, session, trouble, unwatched_folders
from agent.daemon.first_policy import FIRST_WAIT, end_the_wait
from agent.daemon.reconnect import Reconnect
from agent.daemon.session import login_for
from agent.errors import LoginRefused, Problem, SignInNeeded, SignInUnavailable, TlsProblem, UserError, is_permanent
from agent.mail.claim import Mailbox
from agent.mail.pulse import Pulse
from agent.mail.session import ConnectionLimit, ImapLoginRefused, MailboxError, ServerTrouble, SessionExpired
from agent.mail.stalls import TooSlow, paced
from agent.mail.watch import Watcher
from agent.reconcile import agenda_desk, other_agents
from agent.reconcile.attention import OWED_AFTER, tell_owed
from agent.reconcile.context import World, utc_now
from agent.reconcile.doors import early_copies
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.history import Seen, scan_replies, scan_sent
from agent.reconcile.intake import ORPHAN_TOLD, carry_out, follow_scheduled, know_mentors, take_in_outbox
from agent.reconcile.outbox_folders import remember_made, settle_folders
from agent.reconcile.recovery import recover
from agent.rules import server_trouble
from agent.rules.envelope import forget_read
from agent.rules.policy import load_policies
from agent.rules.refusals import Gate, Refusal
from agent.rules.server_trouble import Spell
from agent.store import statelock
from agent.store.ledger import NEW, OPEN_STATES, SCHEDULED, Ledger
from agent.store.statefiles import is_disk_full, state_disk

if TYPE_CHECKING:
    from agent.mail.submission import Listener

log = logging.getLogger("mentor_agent")
TROUBLE = "server trouble"  # the ledger's meta key for the spell (agent.rules.server_trouble)

HEARTBEAT = 60.0  # look again at least this often, even when nothing woke us
WATCH_SLICE = 5.0  # a watcher thread checks for shutdown this often
POLICY_LOOK = 1.0  # how often the policy folder is looked at
POLICY_SETTLE = 0.5  # a change is taken in once the folder stayed the same this long
GRANT_LOOK = 2.0  # waiting for a new sign-in: how often the stored grant is looked at (a file's digest)
START_MARGIN = 120.0  # seconds of start-up allowed after a wait before READY (a login's tries and timeouts)


class _WatchThread:
    """Runs a Watcher in a thread: opens its connection and IDLE, then every change it sees sets the loop's wake
    event. ``up`` is called once IDLE is on (the loop then looks again: what came before is seen then)."""

    def __init__(self, watcher: Watcher, wake: Callable[[], None], renew: float, up: Callable[[], None]) -> None:
        self.watcher = watcher
        self.wake = wake
        self.renew = renew
        self.up = up
        self.error: BaseException | None = None
        self.failed_to_start = False  # the error came from opening the connection: raised as it is
        self.watching = False  # its IDLE is on
        self.retried = False  # made again after the server's limit on connections refused it
        self.alive_at = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch {watcher.folder}", daemon=True)

    def start(self) -> None:
        self.alive_at = time.monotonic()  # opened after the first pass: silent since now, not since made
        self.thread.start()

    def _run(self) -> None:
        try:
            try:
                self.watcher.start()  # connect, log in, SELECT, IDLE
            except BaseException:
                self.failed_to_start = True
                raise
            self.alive_at = time.monotonic()
            self.watching = True
            self.up()
            while not self.done.is_set():
                changed = self.watcher.wait(WATCH_SLICE)
                self.alive_at = time.monotonic()
                if changed:
                    log.debug("%s: the server reported a change", self.watcher.folder)
                    self.wake()
        except BaseException as error:
            self.error = error
            self.wake()
        finally:
            self.watcher.close()

    def stop(self) -> None:
        self.done.set()

    def silent_for(self) -> float:
        return time.monotonic() - self.alive_at


class IdleLoginCut(MailboxError):
    """An IDLE connection's login failed right after the command connection's worked: reconnect, and keep
    backing off while it goes on (a server's limit on connections), instead of trying again every second."""


class _Countdown:
    """Calls ``done`` once, when :meth:`one` was called ``count`` times (from any thread)."""

    def __init__(self, count: int, done: Callable[[], None]) -> None:
        self.left = count
        self.done = done
        self.lock = threading.Lock()

    def one(self) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            self.done()


class Daemon:
    def __init__(
        self,
        settings: Settings,
        config_file: Path | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        speed: float = 1.0,
    ) -> None:
        self.settings = settings
        self.config_file = str(config_file or "")
        self.clock = clock
        self.speed = speed  # > 1 only for the demo's accelerated clock: timers wait (due - now) / speed
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.reload_requested = False
        self.policy_look = look_at(settings.policies_dir)  # before loading: a save meanwhile is seen
        self.keeper = PolicyKeeper(settings.policies_dir, load_policies(settings.policies_dir))
        self.said_no_policy = False
        self.ledger = Ledger(settings.ledger_path)
        # A fresh install without a mentor waits for one (never a ledger with history: a removed policy file is
        # the orphans' notice's); a wait that a stop interrupted goes on, even if the policy came meanwhile.
        fresh = self.ledger.is_fresh() and not len(self.keeper.book())
        self.first_policy = fresh or self.ledger.meta_value(FIRST_WAIT) == "yes"
        self.ready_sent = False
        self.connected_at: float | None = None  # when the session now up logged in (time.monotonic())
        self.served = False  # the session now up has served a whole pass (agent.daemon.reconnect)
        self.recovered = False  # a session of this process has finished what the one before a stop left
        self.unwatched_said = ""  # the folders the status names as unwatched (the server's limit on connections)
        self.reconnect = Reconnect()
        self.imap_gate = Gate("IMAP")  # a refused IMAP login while running: long waits between tries
        self.smtp_gate = Gate("SMTP")  # the same for SMTP; kept here, across IMAP reconnects
        self.draft_door = DraftDoor()  # the star door's waits (made afresh for each session)
        self.smtp_check: asyncio.Task[None] | None = None  # the start's SMTP login check, beside the IMAP login
        # The server refusing the folder check for now (told once it lasts), kept across restarts
        self.trouble: Spell | None = server_trouble.from_text(self.ledger.meta_value(TROUBLE))

    # -- control -----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        log.info("stopping: finishing the send in flight")
        self.stopping.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested = True
        self.wake.set()

    async def reload_policies(self, world: World) -> None:
        """After an edit (or SIGHUP): take in good changes, keep the last good version of broken files."""
        self.reload_requested = False
        for change in self.keeper.reload():
            await self._announce(world, change)
        world.book = self.keeper.book()

    async def _announce(self, world: World, change: Change) -> None:
        if change.kind == BROKEN:
            kept = change.id in self.keeper.good  # a version of it in force (none: new, or put back after removal)
            log.error(
                "policy %s not taken in (%s): %s",
                change.path,
                "the last good version stays" if kept else "none in force",
                change.detail,
            )
            await world.notify(
                f"Policy not taken in: {change.path.name}",
                [
                    f"Your edit of {change.path} has a problem, so the last good version stays in force:"
                    if kept
                    else f"{change.path} has a problem, so it is not in force: mail to its mentor is not paced by it "
                    "until it is fixed:",
                    change.detail,
                    "Fix the file and save it again; `mentor-agent check` shows the same. The last good version "
                    "is kept only while mentor-agent runs: until the file is fixed, it will not start again (after "
                    "a restart or a reboot), and then nothing is sent to any mentor.",
                ],
            )
        elif change.kind == REMOVED:
            await self._removed(world, change)
        elif change.kind == RENAMED:
            log.info(
                "policy %s renamed to %s: the mentor's history and waiting messages follow her addresses",
                change.path,
                change.detail,
            )
        else:
            log.info("policy %s %s; it applies from the next decision", change.path, change.kind)

    async def _removed(self, world: World, change: Change) -> None:
        """A policy file is gone. What waits for that mentor stays held under its last version (never released
        by a missing file), and the student is told once: restore the file, or flag the messages."""
        waiting = self.ledger.in_states(NEW, SCHEDULED, mentor=change.id)
        name, file = change.detail, change.path.name
        if not waiting:
            log.warning("policy %s removed: mail to %s is no longer paced", change.path, name)
            await world.notify(
                f"No longer pacing mail to {name}",
                [
                    f"{change.path} was removed, so mail to {name} is no longer paced.",
                    "To pace it again, put the file back (under any name).",
                ],
            )
            return
        self.keeper.hold(change.id)
        log.warning(
            "policy %s removed while %d message(s) to %s wait: they stay held under its last version",
            change.path,
            len(waiting),
            name,
        )
        listed = "\n".join(f"  • {row.subject}" for row in waiting)
        # Owed with a mark on each message it tells of, in one transaction: after a restart (the held version is
        # gone then) the same messages are not told of again as held for a missing policy (intake._tell_orphans).
        with world.ledger.transaction():
            notice = world.owe(
                f"Policy file removed: {file} ({len(waiting)} message(s) to {name} still held)",
                [
                    f"{change.path} was removed while messages to {name} wait in Scheduled. They stay held under "
                    f"the last version of {file}; nothing goes to {name} because a file went missing:\n{listed}",
                    f"To keep pacing mail to {name}, put the file back (under any name, with {name}'s addresses). "
                    "To send the waiting messages now instead, flag them in Scheduled (they still count); to drop "
                    f"one, cancel it. Once none of them waits, mail to {name} is no longer paced.",
                ],
                about=waiting[0].message_id,
            )
            for row in waiting:
                world.ledger.set_meta(ORPHAN_TOLD + row.key, change.path.name)
        await world.tell(notice)

    def let_go_of_policies(self, world: World) -> None:
        """A removed policy held for waiting messages ends when none of them waits any more."""
        if not self.keeper.held:
            return
        in_use = {row.mentor for row in self.ledger.in_states(*OPEN_STATES) if row.mentor}
        for loaded in self.keeper.let_go(in_use):
            log.info(
                "nothing waits for %s any more: the removed policy %s is no longer in force", loaded.name, loaded.path
            )
        world.book = self.keeper.book()

    async def watch_policies(self) -> None:
        """Wake the loop when a policy file is saved, added, removed or renamed, or the folder is made again.

        A look once a second (a stat of each policy file; a library that watches costs ~2.7 MB); a change is
        taken in once the folder has stayed the same for half a second (an editor's save in several steps)."""
        directory = self.settings.policies_dir
        while not self.stopping.is_set():
            await asyncio.sleep(POLICY_LOOK)
            now = look_at(directory)
            if now == self.policy_look:
                continue
            while True:
                await asyncio.sleep(POLICY_SETTLE)
                settled = look_at(directory)
                if settled == now:
                    break
                now = settled
            self.policy_look = now
            self.request_reload()

    # -- the loop ----------------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.stop),
            (signal.SIGINT, self.stop),
            (signal.SIGHUP, self.request_reload),
        ):
            loop.add_signal_handler(sig, handler)
        expired_at = -60.0  # when a session last ended with an expired token (time.monotonic())
        policy_watch = asyncio.create_task(self.watch_policies())
        keepalive = asyncio.create_task(self._keep_alive())
        door = None
        try:
            # none left from before (a kill -9 ends no session: its unwatched folders are not this one's)
            self.ledger.set_status(**self.imap_gate.status(), **self.smtp_gate.status(), unwatched="")
            self.ledger.drop_meta(OWED_AFTER)  # a notice a stop kept from her is tried at this start's first pass
            # The SMTP login check goes on while IMAP logs in; the first session awaits it before it reads anything.
            self.smtp_check = asyncio.create_task(self._check_smtp())
            door = await self._open_submission()
            while not self.stopping.is_set():
                try:
                    await self._session()
                    self.reconnect.ended()
                except (MailboxError, OSError, TimeoutError, SignInNeeded, SignInUnavailable) as error:
                    if is_disk_full(error):  # the state directory's disk, not the connection
                        raise
                    if is_permanent(error) and not self.ready_sent:
                        # At start a refused login or an impossible TLS set-up is configuration: exit 78.
                        self.ledger.set_status(connected="no", last_error=str(error))
                        raise
                    # Whether the server let the session work (an IDLE login cut short at its start: it did not)
                    served = self.served and not isinstance(error, IdleLoginCut)
                    up_for = time.monotonic() - self.connected_at if self.connected_at is not None else None
                    self.connected_at, self.served = None, False
                    if isinstance(error, SignInNeeded):
                        await self._wait_for_sign_in(error)
                        continue
                    if is_permanent(error):
                        delay = self._imap_refused(error)
                    else:
                        delay = self.reconnect.lost(up_for, served)
                        # The OAuth token ran out: log in again at once, with a fresh token (at most once a minute:
                        # a failing token backs off)
                        fresh = isinstance(error, SessionExpired) and self.reconnect.in_a_row == 1
                        if fresh and time.monotonic() > expired_at + 60:
                            expired_at = time.monotonic()
                            delay = 0.0
                        if up_for is not None and self.reconnect.closing_sessions:
                            log.warning(
                                "the session ended %.1f s after its login, %d short sessions in a row: the server "
                                "may limit connections or close sessions; waiting longer each time",
                                up_for,
                                self.reconnect.short,
                            )
                        log.warning("connection lost (%s); reconnecting in %.0f s", error, delay)
                        self.ledger.set_status(connected="no", last_error=str(error))
                        sdnotify.status(f"reconnecting: {error}")
                    await self._pause(delay)
        finally:
            policy_watch.cancel()
            keepalive.cancel()
            if self.smtp_check is not None:
                self.smtp_check.cancel()
            if door is not None:
                await door.close()
            sdnotify.stopping()
            self.ledger.set_status(connected="no", running="no")
            self.ledger.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    async def _keep_alive(self) -> None:
        """Tell systemd's watchdog the daemon is alive as long as its event loop runs, every half WatchdogSec: a
        pass sending to an SMTP server that does not answer (five tries of a minute) or a slow login says nothing
        for longer than that. A loop that is stuck (blocked in code) stops these too, and systemd restarts it."""
        interval = sdnotify.watchdog_interval()
        if interval is None:
            return
        while True:
            sdnotify.watchdog()
            await asyncio.sleep(interval)

    async def _pause(self, seconds: float) -> None:
        """Wait before connecting again, or until stopped, telling systemd's watchdog all along that the daemon
        is alive (a wait is longer than ``WatchdogSec``: unsaid, systemd would kill it and start it again, and a
        refused login at that start is a configuration error the unit does not restart after)."""
        end = time.monotonic() + seconds
        if not self.ready_sent:  # not started yet (the login waits): systemd's start timeout is pushed back
            sdnotify.extend_start(seconds + START_MARGIN)
        while not self.stopping.is_set():
            sdnotify.watchdog()
            left = end - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), min(left, sdnotify.watchdog_interval() or HEARTBEAT))

    async def _open_submission(self) -> Listener | None:
        """The submission door ([submission]): listens while the daemon runs, even while IMAP is down (then 451)."""
        config = self.settings.submission
        if config is None:
            return None
        # aiosmtpd loads only for a student who opened this door, not with every daemon
        from agent.mail.submission import Listener, local_secret
        from agent.reconcile.doors.submission import SubmissionDesk

        settings = self.settings
        desk = SubmissionDesk(
            settings,
            self.ledger,
            self.keeper.book,
            lambda: login_for(settings.imap, "imap", self.config_file, settings.state_dir),
            self.wake.set,
            self.clock,
        )
        door = Listener(config, local_secret(settings.state_dir), desk.hand_over)
        try:
            await door.start()
        except OSError as error:
            where = f"cannot listen on {config.listen} port {config.port}: {error.strerror or error}"
            raise UserError([Problem(self.config_file or "config.toml", "submission.port", where)]) from error
        return door

    async def _check_smtp(self) -> None:
        """At start: log in to SMTP once (nothing is sent). A refused login or an impossible TLS set-up is a
        configuration mistake (exit 78); a server that cannot be reached now is only logged."""
        from agent.mail.smtp import try_login

        smtp = self.settings.smtp
        probe = smtp.model_copy(update={"timeout": min(smtp.timeout, 15.0)})
        try:
            login = login_for(smtp, "smtp", self.config_file, self.settings.state_dir) if smtp.username else None
            await try_login(probe, login)
        except (LoginRefused, TlsProblem):
            raise
        except Exception as error:  # unreachable, or a temporary refusal: sending retries when a message is due
            log.warning(
                "SMTP server %s:%d not usable at start (%s); sending tries again when a message is due",
                smtp.host,
                smtp.port,
                str(error) or type(error).__name__,
            )

    async def _wait_for_sign_in(self, error: SignInNeeded) -> None:
        """The IMAP sign-in expired or was revoked while running: one journal line, the status, and no retry
        until a new grant is stored (`mentor-agent login`) or the daemon is stopped. No notice can reach the
        student meanwhile (it would go through IMAP): the one notice comes when the mailbox is reachable again."""
        from agent.mail.oauth import grant_version

        imap = self.settings.imap

        def grant() -> str:
            return grant_version(imap, username=imap.username, state_dir=self.settings.state_dir)

        failed = grant()
        self.imap_gate.refused(utc_now(), error, failed)
        log.error("%s; nothing is read or sent until then, and mentor-agent goes on by itself after it", error)
        self.ledger.set_status(connected="no", last_error=str(error), **self.imap_gate.status())
        sdnotify.status("waiting for a new sign-in: mentor-agent login")
        while not self.stopping.is_set():
            sdnotify.watchdog()  # alive, and waiting as it should (see _pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), GRANT_LOOK)
            if grant() != failed:
                log.info("a new sign-in was saved: connecting again")
                return

    def _imap_refused(self, error: BaseException) -> float:
        """A refused IMAP login while running: one journal line per try, status, and a long wait."""
        now = utc_now()
        refusal = self.imap_gate.refused(now, error)
        delay = max(0.0, (refusal.next_try - now).total_seconds())
        log.warning(
            "IMAP %s (try %d): %s; next try at %s (in %.0f min). No notice can reach you while the IMAP "
            "login fails: `mentor-agent status` shows this",
            refusal.what,
            refusal.tries,
            error,
            refusal.next_try.isoformat(timespec="seconds"),
            delay / 60,
        )
        self.ledger.set_status(connected="no", last_error=str(error), **self.imap_gate.status())
        sdnotify.status(f"IMAP {refusal.what}; next try {refusal.next_try.isoformat(timespec='seconds')}")
        return delay

    def _server_trouble(self, mailbox: Mailbox, error: ServerTrouble) -> None:
        """(In the login's thread, the main loop waiting for it.) One more try whose folder check the server refused
        for now: she is told once the spell has lasted (:mod:`agent.rules.server_trouble`)."""
        now = utc_now()
        self.trouble = spell = server_trouble.failed(self.trouble, now, str(error))
        if spell.due(now) and trouble.tell_refused(mailbox, self.settings, spell):
            self.trouble = replace(spell, told=True)
        self.ledger.set_meta(TROUBLE, server_trouble.to_text(self.trouble))

    async def _smtp_checked(self) -> None:
        """The start's SMTP check, once: a refused login there is said before anything IMAP failed at."""
        check, self.smtp_check = self.smtp_check, None
        if check is not None:
            await check

    async def _session(self) -> None:
        settings = self.settings
        sdnotify.watchdog()  # alive: the login's tries and their waits may take a while
        if not self.ready_sent:  # and before READY, systemd's start timeout is pushed back for them
            sdnotify.extend_start(START_MARGIN)
        imap_login = login_for(settings.imap, "imap", self.config_file, settings.state_dir)
        # The way in that the commands take too (agent.daemon.session): login, SPECIAL-USE check, folders.
        pulse = Pulse()  # a login or folder check stuck on a server that trickles is ended (agent.mail.pulse)
        try:
            mailbox, folders, listed = await paced(
                pulse,
                asyncio.to_thread(
                    session.connect_listed,
                    settings,
                    self.config_file,
                    self.ledger.agent_id(),
                    imap_login,
                    tell=True,
                    trouble=self._server_trouble,
                    pulse=pulse,
                ),
                window=2 * settings.imap.timeout,
                what="the login and its folders",
            )
        except BaseException:
            await self._smtp_checked()
            raise
        remember_made(self.ledger, folders)  # she is told of a Sent it made even if this start stops now
        watchers: list[_WatchThread] = []
        try:
            await self._smtp_checked()
            world = session.world_for(
                settings,
                self.config_file,
                mailbox,
                folders,
                self.ledger,
                self.keeper.book(),
                clock=self.clock,
                stopping=self.stopping,
                smtp_gate=self.smtp_gate,
            )
            # Never a provider's own Outbox; the old default's mail brought along. From the start's LIST, as the drafts
            # door's folder below: no round trip before the first send that the first decision does not need.
            listed = await settle_folders(world, self.config_file, listed)
            loop = asyncio.get_running_loop()

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the loop has closed: the daemon is on its way out
                    loop.call_soon_threadsafe(self.wake.set)

            self.draft_door = DraftDoor()
            found = await self.draft_door.find_folder(world, listed)
            drafts = found if settings.drafts.take_flagged else None
            renew = settings.imap.idle_renew
            folders_watched = (folders.outbox, folders.scheduled, folders.inbox, *([drafts] if drafts else []))
            up = _Countdown(len(folders_watched), wake)

            def watcher_of(folder: str) -> _WatchThread:
                return _WatchThread(Watcher(settings.imap, imap_login, folder), wake, renew, up.one)

            watchers.extend(watcher_of(folder) for folder in folders_watched)
            unwatched: dict[str, float] = {}  # refused by the server's limit on connections: looked at on each pass
            # The IDLE connections (connect, login, SELECT, IDLE) open side by side, each in its thread, once the
            # first pass has read the Outbox on the command connection (a backlog waiting at start does not share
            # the CPU and the server with three logins): once the last IDLE is on, the loop looks again, so a
            # message dropped before IDLE could report it is still seen then. Stopped (and their connections
            # closed) by the `finally` below.
            idle_opened = False

            def open_idle() -> None:
                nonlocal idle_opened
                if not idle_opened:
                    idle_opened = True
                    for watcher in watchers:
                        watcher.start()

            ended = self.imap_gate.worked()
            self.ledger.set_status(connected="yes", running="yes", last_error="", **self.imap_gate.status())
            log.info("connected to %s; watching %s", settings.imap.host, folders.outbox)
            self.connected_at = time.monotonic()
            if ended is not None:
                await self._imap_works_again(world, ended)
            spell = self.trouble  # told, or lasted untold (its notice could not be appended): it works again
            if spell is not None and (
                not (spell.told or spell.lasted()) or await trouble.tell_works_again(world, spell)
            ):
                self.trouble = None  # told it works again (an APPEND that failed: tried at the next session)
                self.ledger.set_meta(TROUBLE, "")
            if not self.ready_sent:
                sdnotify.ready()
                self.ready_sent = True
            sdnotify.status(f"watching {folders.outbox}")
            seen = Seen()
            know_mentors(world)  # before recover(): a send it confirms is counted by the mentor's addresses
            await recover(world, after_stop=not self.recovered)  # a later session: after a dropped connection
            self.recovered = True
            while not self.stopping.is_set():
                self.wake.clear()
                if self.reload_requested:
                    await self.reload_policies(world)
                if self._waits_for_a_policy():
                    open_idle()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), HEARTBEAT)
                    sdnotify.watchdog()
                    await self._watched(world, watchers, unwatched, watcher_of)
                    self.served = True  # waiting for a first policy, the session is all it should be
                    continue
                if self.ledger.meta_value(FIRST_WAIT) == "yes":
                    await end_the_wait(world)
                wake_at = await self.pass_once(world, seen)
                self.served = True
                forget_read()  # a backlog's envelopes, read once for its intake and its sending
                open_idle()
                self.let_go_of_policies(world)
                await self._watched(world, watchers, unwatched, watcher_of)
                timeout = HEARTBEAT
                if wake_at is not None:
                    timeout = min(timeout, max(0.0, (wake_at - self.clock()).total_seconds() / self.speed))
                if timeout > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout)
                sdnotify.watchdog()
                await self._watched(world, watchers, unwatched, watcher_of)
        finally:
            self.ledger.set_status(unwatched="")  # said of a session; the next one says it again if so
            self.unwatched_said = ""
            for watcher in watchers:
                watcher.stop()
            with contextlib.suppress(TooSlow):  # closed all the same
                await paced(pulse, asyncio.to_thread(mailbox.close), window=2 * settings.imap.timeout, what="a logout")

    def _waits_for_a_policy(self) -> bool:
        """No policy yet (setup without a mentor): the Outbox is left as it is — a message to a mentor whose
        policy is still to come must not go out unpaced. Said once; the first policy saved ends the wait."""
        if not self.first_policy:
            return False
        directory = self.settings.policies_dir
        if len(self.keeper.book()):
            self.first_policy = False
            log.info("first policy taken in from %s: watching the Outbox", directory)
            return False
        if not self.said_no_policy:
            self.said_no_policy = True
            self.ledger.set_meta(FIRST_WAIT, "yes")
            self.ledger.set_status(waiting=f"for a first policy in {directory}: the Outbox is not read until then")
            log.warning(
                "no policy yet in %s: nothing in the Outbox is read or sent until there is one. Add one with "
                "`mentor-agent setup --mentor-name NAME` (or write a .toml there, see docs/policies.md); "
                "it is taken in as soon as it is saved",
                directory,
            )
            sdnotify.status(f"waiting for a first policy in {directory}")
        return True

    async def _imap_works_again(self, world: World, ended: Refusal) -> None:
        since = ended.since.astimezone(self.settings.student.zone).strftime("%a %d %b %H:%M")
        log.info("IMAP login works again (%s since %s, %d tries)", ended.what, since, ended.tries)
        if ended.signed_out:
            await world.notify(
                "Signed in again: back in your mailbox",
                [
                    f"From {since} your sign-in had expired or was revoked, so mentor-agent could neither read nor "
                    "send your mail.",
                    "Until now nothing was read or sent; what became due meanwhile goes now, within the agreements.",
                ],
            )
            return
        await world.notify(
            "Back in your mailbox after a refused login",
            [
                f"From {since} the mail server refused mentor-agent's login ({ended.reason}).",
                "Until now nothing was read or sent; what became due meanwhile goes now, within the agreements.",
            ],
        )

    async def pass_once(self, world: World, seen: Seen) -> datetime | None:
        """One reconcile pass; returns when the next message is due (None: nothing waits on the clock)."""
        await scan_sent(world, seen)  # first: a reply in INBOX may answer what the phone just put in Sent
        await scan_replies(world, seen)
        settling = await take_in_outbox(world)  # a draft in the Outbox (label door) waits to settle
        # The star and label doors, after the intake: a labelled draft's Outbox copy is known by then.
        drafts_due = await self.draft_door.pass_once(world)
        await follow_scheduled(world)
        due = await carry_out(world)
        refusal = world.smtp_gate.refusal
        if refusal is not None and due is not None and due < refusal.next_try:
            due = refusal.next_try  # the SMTP login was refused: nothing can go before its next try
        # Loaded here, after the Outbox's mail is decided and sent: a backlog at start does not wait for them.
        from agent.reconcile import agreement, meeting_desk

        meetings_due = await meeting_desk.pass_once(world)
        review_due = await agreement.pass_once(world)  # the mentor's answer to a proposal; reviews
        agenda_due = await agenda_desk.pass_once(world)  # after the desk: it has seen the invitations leave
        await other_agents.tell_other_agents(world)  # a second mentor-agent on the account: told once
        copies_due = early_copies.next_look(world)  # a program's Sent copy filed late (Sent is not watched)
        await tell_owed(world)  # last: a Needs attention notice refused or cut before, told now, once
        waits = (due, meetings_due, review_due, agenda_due, drafts_due, settling, copies_due)
        return min((t for t in waits if t is not None), default=None)

    def _check_watchers(self, watchers: list[_WatchThread], unwatched: dict[str, float] | None = None) -> list[str]:
        """Raise what ends the session; return the folders whose IDLE the server's limit on connections refused
        (their watchers taken out of ``watchers``, put in ``unwatched`` with the time: looked at on each pass,
        at least every HEARTBEAT, and tried again after LIMIT_RETRY)."""
        dropped: list[str] = []
        for watcher in list(watchers):
            if watcher.failed_to_start and isinstance(watcher.error, ConnectionLimit) and unwatched is not None:
                watchers.remove(watcher)
                unwatched[watcher.watcher.folder] = time.monotonic()
                dropped.append(watcher.watcher.folder)
                watcher.up()  # the look once every IDLE is on does not wait for this one
                continue
            if watcher.error is not None and watcher.failed_to_start:
                if isinstance(watcher.error, ImapLoginRefused):
                    # The command connection has just logged in with the same password: a refusal here is a
                    # server's drop that cut the login short (`* BYE Connection closed`), or a limit on connections.
                    # Reconnect, backing off as for a lost connection (not afresh: the session never fully came up);
                    # the command connection's login then says what is true (a password changed meanwhile, say).
                    raise IdleLoginCut(f"watching {watcher.watcher.folder}: its login was cut short: {watcher.error}")
                raise watcher.error  # as the command connection's would (a TLS problem is configuration)
            if watcher.error is not None:
                kind = SessionExpired if isinstance(watcher.error, SessionExpired) else MailboxError
                raise kind(f"watching {watcher.watcher.folder}: {watcher.error}")
            # The watchdog: an IDLE that has said nothing for longer than its renewal period is dead
            # (suspend, a changed network), even if the socket never reported an error.
            if watcher.silent_for() > watcher.renew + self.settings.imap.timeout + WATCH_SLICE:
                raise MailboxError(f"IDLE on {watcher.watcher.folder} silent for {watcher.silent_for():.0f} s")
        return dropped

    async def _watched(
        self,
        world: World,
        watchers: list[_WatchThread],
        unwatched: dict[str, float],
        make: Callable[[str], _WatchThread],
    ) -> None:
        """The watchers checked (:meth:`_check_watchers`); the folders left unwatched by the server's limit on
        connections said (journal, status, a notice at most once a week) and, after LIMIT_RETRY, watched again."""
        dropped = self._check_watchers(watchers, unwatched)
        if dropped:
            await unwatched_folders.tell(world, dropped, sorted(unwatched), HEARTBEAT)
        for folder, since in list(unwatched.items()):
            if folder not in dropped and time.monotonic() - since >= unwatched_folders.LIMIT_RETRY:
                del unwatched[folder]
                watcher = make(folder)
                watcher.retried = True
                watchers.append(watcher)
                watcher.start()
        # Unwatched until watched again (a retry the limit may refuse once more); written when it changes, not at
        # every look (a commit each)
        retrying = {w.watcher.folder for w in watchers if w.retried and not w.watching}
        said = ", ".join(sorted({*unwatched, *retrying}))
        if said != self.unwatched_said:
            self.ledger.set_status(unwatched=said)
            self.unwatched_said = said


def run_daemon(settings: Settings, config_file: Path | None) -> int:
    preflight.require(settings, config_file)  # what `check` refuses: guarded folders, missing logins, modes
    try:
        held = statelock.acquire(settings.state_dir)
    except statelock.AlreadyRunning as error:
        log.error("not started: %s", error)  # the log goes to stderr (the journal under systemd)
        return statelock.EX_TEMPFAIL
    try:
        with state_disk(settings.state_dir):  # the ledger cannot be written: said, naming where (exit 75)
            daemon = Daemon(settings, config_file)
            return asyncio.run(daemon.run())
    finally:
        held.release()
