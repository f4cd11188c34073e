"""``mentor-agent demo``: a week of a student's mail to three mentors, run for real on this machine.

No account and nothing to install: an in-memory IMAP server (pymap) and an SMTP sink (aiosmtpd) listen on
127.0.0.1; the real :class:`~agent.daemon.service.Daemon` watches their Outbox with IDLE, decides with the pacing
engine, sends over SMTP, files in Sent, holds mail in Scheduled with notices, batches digests and proposes
a meeting, which a simulated mentor accepts. The mailbox it leaves is exported as .eml and .mbox files.

The clock is virtual and moves only between events: everything the daemon does in one pass happens at one
instant, and when all is quiet the clock goes straight to the next moment something happens (a message the
script drops, a reply, or the daemon's own next due time, when the demo wakes it exactly as its timer
would). The demo waits ``gap / speed`` real seconds first (at most MAX_PAUSE), so short gaps are seen and
quiet nights are skipped; each send then happens at its exact due minute, and the timeline is the same on
every run. The daemon itself gets ``speed=1``: with a clock that does not run on its own, its timers must
not fire early and spin.

Why one module of ~600 lines: it is one script — the week's steps, the virtual clock, the daemon it drives and
the command that prints it — and every part reads the same ``Demo`` state; the servers, the scene (timeline and
the people's mail) and the export are in their own modules (:mod:`agent.demo.servers`, :mod:`agent.demo.scene`,
:mod:`agent.demo.export`).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import importlib.util
import json
import logging
import queue
import shutil
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from pydantic import SecretStr

from agent.config.settings import Folders, Imap, Settings, Smtp, Student
from agent.daemon.service import Daemon
from agent.demo import agreement
from agent.demo.export import prepare_out, read_folders, write_export
from agent.demo.scene import Event, Timeline, header, mentor_mail, reply_ics, student_mail
from agent.demo.servers import DemoServerError, ImapServer, Received, SmtpSink
from agent.errors import UserError
from agent.reconcile import events
from agent.reconcile.context import World
from agent.reconcile.history import Seen
from agent.rules.invites import InviteError, parse_itip
from agent.rules.policy import LoadedPolicy, PolicyBook, load_policies

STUDENT_NAME, STUDENT_ADDRESS, STUDENT_ZONE = "Sam Patel", "sam.patel@med.example.edu", "America/New_York"
POLICY_FILES = ("rivera.toml", "okafor.toml", "chen.toml")  # packaged in agent/examples/
CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2026, 11, 23, 8, 0, tzinfo=CHICAGO)  # a Monday, 08:00 in Dr. Rivera's zone
END = datetime(2026, 11, 30, 12, 0, tzinfo=CHICAGO)
ACCEPT_AFTER = timedelta(minutes=90)  # the simulated mentor answers the first invitation this much later
MAX_PAUSE = 0.8  # real seconds the demo waits, at most, before moving the clock to the next event
SETTLE = 0.25  # real seconds without a pass before the daemon counts as done with what happened
SETTLE_LIMIT = 15.0  # ... and never waited on for longer than this
RUN_LIMIT = 150.0  # the whole run, in real seconds
TICK = 0.02
SCRIPT_FILE = "demo-week.jsonl"  # the week: what the student drops, what mentors answer (agent/examples/)


@dataclass(frozen=True)
class Drop:
    """The student drops a message into the Outbox."""

    at: datetime
    message_id: str
    to: str  # "Name <address>" or an address
    subject: str
    body: str
    references: tuple[str, ...] = ()  # Message-IDs it answers; the last is its In-Reply-To
    attachment: tuple[str, str] | None = None  # (file name, text)


@dataclass(frozen=True)
class Reply:
    """A mentor answers a message of the student's, as the SMTP sink received it."""

    at: datetime
    message_id: str
    sender: str
    answers: str  # the Message-ID of the student's message
    body: str


@dataclass(frozen=True)
class Accept:
    """The mentor accepts an invitation the SMTP sink received (from her calendar: a REPLY into INBOX)."""

    at: datetime
    invitation: Received


Step = Drop | Reply | Accept | agreement.Agree | agreement.Apply


def load_script() -> list[Step]:
    """The demo week, in time order (one JSON object per line; see agent/examples/demo-week.jsonl)."""
    text = (resources.files("agent") / "examples" / SCRIPT_FILE).read_text(encoding="utf-8")
    steps: list[Step] = []
    for line in filter(str.strip, text.splitlines()):
        item = json.loads(line)
        at = datetime.fromisoformat(item["at"])
        if item["type"] in ("agree", "apply"):  # the agreement with a mentor (agent/demo/agreement.py)
            steps.append(agreement.step_of(item, at))
            continue
        if item["type"] == "reply":
            steps.append(Reply(at, item["message_id"], item["from"], item["answers"], item["body"]))
            continue
        attached = item.get("attachment")
        attachment = (attached["name"], attached["text"]) if attached else None
        steps.append(
            Drop(
                at,
                item["message_id"],
                item["to"],
                item["subject"],
                item["body"],
                tuple(item.get("references", ())),
                attachment,
            )
        )
    return sorted(steps, key=lambda step: step.at)


class VirtualClock:
    """The demo's clock: it stands still until :meth:`set` moves it forward."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = max(self._now, moment.astimezone(UTC))


class DemoDaemon(Daemon):
    """The real daemon; it only counts its passes and remembers when it wants to look again."""

    started = 0
    finished = 0
    busy = False
    last_end = 0.0
    next_due: datetime | None = None

    async def pass_once(self, world: World, seen: Seen) -> datetime | None:
        self.started += 1
        self.busy = True
        try:
            due = await super().pass_once(world, seen)
        finally:
            self.busy = False
            self.finished += 1
            self.last_end = time.monotonic()
        self.next_due = due
        return due


class Follow:
    """What the daemon decided and did (:mod:`agent.reconcile.events`), turned into timeline events; subscribe it."""

    def __init__(self, clock: VirtualClock, events: queue.SimpleQueue[Event]) -> None:
        self.clock, self.events = clock, events

    def __call__(self, happened: events.Event) -> None:
        event = self.event(happened)
        if event is not None:
            self.events.put(event)

    def event(self, happened: events.Event) -> Event | None:
        now = self.clock()
        if isinstance(happened, events.Decided):
            tag = "sends" if happened.kind == "send" else "held"
            return Event(now, tag, happened.reason, mentor=happened.mentor_name, key=happened.key)
        if isinstance(happened, events.Notice):
            return Event(now, "notice", f"in your INBOX: “{happened.title}”")
        if isinstance(happened, events.MeetingOffered):
            text = f"{happened.count} time(s) offered to {happened.mentor_name}, one invitation each (via the Outbox)"
            return Event(now, "meeting", text, mentor=happened.mentor_name)
        if isinstance(happened, events.MeetingAgreed):
            return Event(
                now,
                "meeting",
                f"agreed with {happened.mentor_name}; the other offers are cancelled",
                mentor=happened.mentor_name,
            )
        return None  # sends are shown as the SMTP sink receives them; filing and cancelling are not


class _Warnings(logging.Handler):
    """The daemon's warnings (not its decisions: those come as events), shown on the timeline."""

    def __init__(self, clock: VirtualClock, events: queue.SimpleQueue[Event]) -> None:
        super().__init__(logging.WARNING)
        self.clock, self.events = clock, events

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "password" not in str(record.msg):
                self.events.put(Event(self.clock(), "warning", record.getMessage()))
        except Exception:
            self.handleError(record)


@dataclass
class DemoResult:
    out: Path
    seconds: float
    received: list[Received]
    folders: dict[str, int]
    lines: list[str] = field(default_factory=list)
    meeting_agreed: bool = False


class Demo:
    def __init__(self, root: Path, out: Path, speed: float, quiet: bool, echo: Callable[[str], None]) -> None:
        self.root, self.out, self.speed = root, out, speed
        self.clock = VirtualClock(START)
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.policies = root / "policies"
        self.policies.mkdir(parents=True)
        for name in POLICY_FILES:
            (self.policies / name).write_bytes((resources.files("agent") / "examples" / name).read_bytes())
        self.book = PolicyBook(load_policies(self.policies))
        self.zone = ZoneInfo(STUDENT_ZONE)
        self.timeline = Timeline(self.zone, {p.name: p.policy.zone for p in self.book}, quiet, echo)
        self.password = f"demo-{time.monotonic_ns()}"
        self.imap = ImapServer("sam", self.password)
        self.sink = SmtpSink(self.clock, on_receive=self._received)
        self.script = load_script()
        self.names = {a: p.name for p in self.book for a in p.policy.mentor.addresses}
        for drop in self.script:
            if isinstance(drop, Drop) and parseaddr(drop.to)[0]:
                self.names.setdefault(parseaddr(drop.to)[1].lower(), parseaddr(drop.to)[0])
        self.accepting = False
        self.folders: dict[str, list[bytes]] = {}
        self.meeting_agreed = False

    # -- what happened ---------------------------------------------------------------------------------

    def _received(self, received: Received) -> None:
        self.events.put(Event(received.at, "smtp", "", key=f"sink:{len(self.sink.messages) - 1}"))

    def _describe_sent(self, event: Event) -> Event:
        received = self.sink.snapshot()[int(event.key.split(":")[1])]
        who = [self.names.get(a.lower(), a) for a in received.rcpt_tos]
        mentor = next((self.book.for_address(a) for a in received.rcpt_tos if self.book.for_address(a)), None)
        subject, message_id = header(received.content, "Subject"), header(received.content, "Message-ID")
        try:
            itip = parse_itip(received.content)
        except InviteError:
            itip = []
        if itip and itip[0].start is not None:
            zone = mentor.policy.zone if mentor else UTC
            slot = itip[0].start.astimezone(zone)
            what = {"REQUEST": "an invitation", "CANCEL": "a CANCEL"}.get(itip[0].method, itip[0].method)
            text = f"{' and '.join(who)} receives {what} for {slot:%a %d %b %H:%M} {slot.tzname()}"
            if itip[0].method == "REQUEST" and mentor is not None and not self.accepting:
                self.accepting = True  # the simulated mentor accepts the first invitation she gets
                self.script = sorted([*self.script, Accept(received.at + ACCEPT_AFTER, received)], key=lambda s: s.at)
            return Event(received.at, "SMTP →", text, mentor=mentor.name if mentor else "")
        if message_id.startswith("<digest."):
            body = email.message_from_bytes(received.content, policy=email.policy.default)
            part = body.get_body(preferencelist=("plain",)) if isinstance(body, EmailMessage) else None
            text_part = str(part.get_content()) if isinstance(part, EmailMessage) else ""
            head = text_part.split("-" * 20)[0].splitlines()
            listed = [line.strip() for line in head if line.strip()[:2].rstrip(".").isdigit()]
            return Event(
                received.at,
                "SMTP →",
                f"{' and '.join(who)} receives one digest: “{subject}”",
                mentor=mentor.name if mentor else "",
                more=tuple(f"  {line}" for line in listed),
            )
        note = "" if mentor else " (not a mentor: not paced, goes at once)"
        return Event(
            received.at,
            "SMTP →",
            f"{' and '.join(who)} receives “{subject}”{note}",
            mentor=mentor.name if mentor else "",
        )

    def _subject(self, key: str) -> str:
        row = self.daemon.ledger.get(key) if key else None
        return row.subject if row is not None else ""

    def drain(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if event.tag == "smtp":
                event = self._describe_sent(event)
            elif event.tag == "meeting" and "agreed" in event.text:
                self.meeting_agreed = True
            if event.tag == "notice" and not event.mentor:  # show it in the time of the mentor it is about
                named = [p.name for p in self.book if p.name in event.text]
                event = Event(event.at, event.tag, event.text, mentor=named[0] if named else "")
            self.timeline.show(event, self._subject(event.key) if event.tag in ("sends", "held") else "")

    # -- what the script does --------------------------------------------------------------------------

    async def _append(self, folder: str, raw: bytes, when: datetime) -> None:
        from agent.mail.claim import Mailbox
        from agent.mail.session import Login

        def append() -> None:
            with Mailbox(self.settings.imap, Login("sam", self.password)) as mailbox:
                mailbox.append(folder, raw, when=when)

        await asyncio.to_thread(append)

    async def act(self, step: Step) -> None:
        now = self.clock()
        if isinstance(step, agreement.Agree):
            outbox, student = self.settings.imap.folders.outbox, self.settings.student
            await agreement.propose(
                step,
                now=now,
                ledger=self.daemon.ledger,
                book=self.book,
                student=student,
                outbox=outbox,
                append=self._append,
                show=self.timeline.show,
            )
            return
        if isinstance(step, agreement.Apply):
            agreement.apply(
                step, now=now, ledger=self.daemon.ledger, book=self.book, zone=self.zone, show=self.timeline.show
            )
            return
        if isinstance(step, Drop):
            mentor = self.book.for_address(step.to)
            to = self.names.get(parseaddr(step.to)[1].lower(), step.to)
            self.timeline.show(
                Event(now, "Outbox", f"you drop “{step.subject}”, to {to}", mentor=mentor.name if mentor else "")
            )
            raw = student_mail(
                (STUDENT_NAME, STUDENT_ADDRESS),
                step.to,
                step.subject,
                now.astimezone(self.zone),
                step.message_id,
                step.references,
                step.body,
                step.attachment,
            )
            await self._append(Folders().outbox, raw, now)
            return
        if isinstance(step, Reply):
            sent = [r for r in self.sink.snapshot() if header(r.content, "Message-ID") == step.answers]
            name = self.names.get(step.sender, step.sender)
            if not sent:
                self.timeline.show(Event(now, "note", f"({name} cannot answer {step.answers}: it never reached her)"))
                return
            subject = "Re: " + header(sent[0].content, "Subject")
            reply = mentor_mail(
                (name, step.sender),
                (STUDENT_NAME, STUDENT_ADDRESS),
                subject,
                now,
                step.message_id,
                step.answers,
                step.body,
            )
            self.timeline.show(Event(now, "INBOX ←", f"{name} replies: “{subject}”", mentor=name))
            await self._append("INBOX", reply.as_bytes(policy=email.policy.SMTP), now)
            return
        invitation = step.invitation
        item = parse_itip(invitation.content)[0]
        address = invitation.rcpt_tos[0].lower()
        loaded = self.book.for_address(address)
        if item.start is None or item.end is None or loaded is None:
            return
        name, domain = loaded.name, address.split("@")[-1]
        reply = mentor_mail(
            (name, address),
            (STUDENT_NAME, STUDENT_ADDRESS),
            "Accepted: " + header(invitation.content, "Subject"),
            now,
            f"<accept.demo@{domain}>",
            header(invitation.content, "Message-ID"),
            f"{name} has accepted this invitation.",
        )
        reply.add_alternative(
            reply_ics(item, (loaded.name, address), now), subtype="calendar", params={"method": "REPLY"}
        )
        slot, mine = item.start.astimezone(loaded.policy.zone), item.start.astimezone(self.zone)
        self.timeline.show(
            Event(
                now,
                "INBOX ←",
                f"{name} accepts the invitation for "
                f"{slot:%a %d %b %H:%M} {slot.tzname()} ({mine:%H:%M} {mine.tzname()} for you), "
                "from her calendar",
                mentor=name,
            )
        )
        await self._append("INBOX", reply.as_bytes(policy=email.policy.SMTP), now)

    # -- the loop --------------------------------------------------------------------------------------

    async def settle(self, before: int) -> None:
        """Until the daemon has made a pass since ``before`` and nothing has moved for SETTLE seconds."""
        daemon, limit = self.daemon, time.monotonic() + SETTLE_LIMIT
        while time.monotonic() < limit and not daemon.stopping.is_set():
            self.drain()
            quiet = not daemon.busy and not daemon.wake.is_set() and time.monotonic() - daemon.last_end >= SETTLE
            if daemon.finished > before and daemon.finished == daemon.started and quiet:
                return
            await asyncio.sleep(TICK)

    async def drive(self) -> None:
        daemon = self.daemon
        await self.settle(0)
        if daemon.finished == 0:
            raise UserError("the agent did not connect to the demo's IMAP server (see the warnings above)")
        limit = time.monotonic() + RUN_LIMIT
        while time.monotonic() < limit and not daemon.stopping.is_set():
            now = self.clock()
            times = [s.at for s in self.script]
            due = daemon.next_due if daemon.next_due is not None and daemon.next_due <= END else None
            target = min([*times, *([due] if due is not None else [])], default=None)
            if target is None:
                return
            if target > now:
                await asyncio.sleep(min(MAX_PAUSE, (target - now).total_seconds() / self.speed))
                self.clock.set(target)
            before = daemon.finished
            if self.script and times[0] <= self.clock():
                await self.act(self.script.pop(0))
            else:
                daemon.wake.set()  # what the daemon's timer would do at this moment
            await self.settle(before)
        why = "stopped" if daemon.stopping.is_set() else "ran out of time"
        self.timeline.say(f"(the demo {why} before the week was over)", always=True)

    async def run(self) -> None:
        self.settings = Settings(
            student=Student(name=STUDENT_NAME, address=STUDENT_ADDRESS, timezone=STUDENT_ZONE),
            imap=Imap(
                host="127.0.0.1",
                port=self.imap.port,
                security="plain",
                username="sam",
                password=SecretStr(self.password),
                timeout=10,
                idle_renew=60,
                folders=Folders(sent="Sent"),  # its server has no SPECIAL-USE: Sent is named, as a user would
            ),
            smtp=Smtp(host="127.0.0.1", port=self.sink.port, security="plain", timeout=10, file_in_sent="always"),
            policies_dir=self.policies,
            state_dir=self.root / "state",
            environ={},  # the user's own MENTOR_AGENT_* settings stay out of the demo
        )
        self.daemon = DemoDaemon(self.settings, None, clock=self.clock, speed=1.0)
        running = asyncio.create_task(self.daemon.run())
        try:
            await self.drive()
        finally:
            self.drain()
            self.daemon.stop()
            await asyncio.wait_for(running, 30)
            self.drain()
        self.folders = await asyncio.to_thread(read_folders, self.imap.port, "sam", self.password)
        # The daemon's IDLE threads notice their stop only every few seconds, or when the server goes: stop
        # it while this loop still runs (they wake it on the way out), and wait for them.
        await asyncio.to_thread(self.imap.stop)
        for thread in threading.enumerate():
            if thread.name.startswith("watch "):
                await asyncio.to_thread(thread.join, 5)


# -- the command -------------------------------------------------------------------------------------------

LOGGERS = ("mentor_agent", "agent", "pymap", "mail.log", "proxyprotocol")


def _rules(loaded: LoadedPolicy) -> str:
    rules, meetings = loaded.policy.email, loaded.policy.meetings
    windows = ", ".join(w.spec for w in rules.send_windows)
    over = "one digest" if rules.over_limit == "batch" else "each later"
    offers = "several times at once" if meetings.strategy == "holds" else "one time at a time"
    return (
        f"{loaded.name} ({loaded.policy.zone.key}): {rules.max_per_day} a day, {rules.max_per_week} a week, "
        f"{windows}, at most {rules.max_unanswered} unanswered, over the limit: {over}; meetings: {offers}"
    )


def _intro(demo: Demo) -> None:
    say = demo.timeline.say
    start = START.astimezone(demo.zone)
    say("mentor-agent demo: a week of your mail to three mentors, on this machine only", always=True)
    say(f"  IMAP    pymap, in memory, 127.0.0.1:{demo.imap.port} (Outbox watched with IDLE)")
    say(f"  SMTP    aiosmtpd sink, 127.0.0.1:{demo.sink.port} (keeps what it gets, sends nothing on)")
    say(f"  you     {STUDENT_NAME} <{STUDENT_ADDRESS}>, {STUDENT_ZONE}")
    for number, name in enumerate(POLICY_FILES):
        lines = textwrap.wrap(_rules(demo.book.by_id[Path(name).stem]), demo.timeline.width - 14)
        say(f"  {'mentors' if number == 0 else '':<7} {lines[0]}")
        for line in lines[1:]:
            say(" " * 12 + line)
    say(f"  clock   virtual, from {start:%a %d %b %Y %H:%M %Z}; up to {demo.speed:g}× real time, quiet hours skipped")
    say("  columns your time, the mentor's time, what happened and why")
    say()


def _summary(result: DemoResult, names: dict[str, str], say: Callable[[str], None]) -> None:
    per: dict[str, int] = {}
    digests = invites = 0
    for item in result.received:
        for address in item.rcpt_tos:
            per[names.get(address.lower(), address)] = per.get(names.get(address.lower(), address), 0) + 1
        digests += header(item.content, "Message-ID").startswith("<digest.")
        invites += b"text/calendar" in item.content
    listed = ", ".join(f"{count} to {name}" for name, count in per.items())
    say("")
    say(
        f"Done in {result.seconds:.1f} s. The SMTP sink got {len(result.received)} message(s): {listed}; "
        f"{digests} digest(s), {invites} calendar message(s)."
    )
    say("Folders: " + ", ".join(f"{name} {count}" for name, count in sorted(result.folders.items())))
    say(
        f"The mailbox is in {result.out}/ (README.txt lists every message; mailbox/ has .eml files, mbox/ one mbox "
        "per folder)."
    )


def run_demo(
    out: Path, *, speed: float = 3600.0, quiet: bool = False, echo: Callable[[str], None] = click.echo
) -> DemoResult:
    """Run the demo week; export the mailbox under ``out``. Returns what happened, for tests."""
    missing = [name for name in ("pymap", "aiosmtpd") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"the demo needs {' and '.join(missing)}: pip install {' '.join(missing)}")
    out = out.expanduser().resolve()
    prepare_out(out)
    began = time.monotonic()
    log_file = logging.FileHandler(out / "agent.log", encoding="utf-8")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = {
        name: (lg.level, lg.propagate, list(lg.handlers)) for name, lg in ((n, logging.getLogger(n)) for n in LOGGERS)
    }
    with tempfile.TemporaryDirectory(prefix="mentor-agent-demo-") as temporary:
        demo = Demo(Path(temporary), out, speed, quiet, echo)
        capture = _Warnings(demo.clock, demo.events)
        stop_following = events.subscribe(Follow(demo.clock, demo.events))
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers = [log_file, capture] if name in ("mentor_agent", "agent") else [log_file]
            logger.setLevel(logging.DEBUG if name == "mentor_agent" else logging.INFO)
            logger.propagate = False
        try:
            try:
                demo.imap.start()
                demo.sink.start()
            except DemoServerError as error:
                raise UserError(str(error)) from error
            _intro(demo)
            asyncio.run(demo.run())
            folders = demo.folders
        finally:
            stop_following()
            demo.sink.stop()
            demo.imap.stop()
            for name, (level, propagate, handlers) in saved.items():
                logger = logging.getLogger(name)
                logger.setLevel(level)
                logger.propagate = propagate
                logger.handlers = handlers
            log_file.close()
        for name in POLICY_FILES:
            (out / "policies").mkdir(exist_ok=True)
            shutil.copy(demo.policies / name, out / "policies" / name)
        result = DemoResult(
            out,
            time.monotonic() - began,
            demo.sink.snapshot(),
            {name: len(messages) for name, messages in folders.items()},
            meeting_agreed=demo.meeting_agreed,
        )
        _summary(result, demo.names, lambda line: demo.timeline.say(line, always=True))
        result.lines = demo.timeline.lines
        write_export(out, folders, result.received, result.lines)
    return result


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("mentor-agent-demo"),
    show_default=True,
    help="Where to leave the resulting mailbox (.eml and .mbox files, with an index).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=3600.0,
    show_default=True,
    help="Virtual seconds per real second while waiting for the next event (3600: an hour a second).",
)
@click.option("--quiet", is_flag=True, help="Print only the summary, not the timeline.")
def demo_command(out: Path, speed: float, quiet: bool) -> None:
    """Watch the agent handle a week of mail to three mentors, with no account: servers run on 127.0.0.1.

    Sends, delays, digests and a meeting offer accepted by a simulated mentor, in about twenty seconds;
    then look at the mailbox it leaves in --out."""
    run_demo(out, speed=speed, quiet=quiet)


def register(group: click.Group) -> None:
    group.add_command(demo_command)
