"""Meeting commands: ``slots`` (free times for one mentor), ``propose`` (a real round, or ``--dry-run``) and
``withdraw`` (call an open round off).

Register them on the main group with ``register(main)``. ``slots`` and ``propose --dry-run`` touch no
network unless a ``--busy`` source is an http(s) URL. ``propose`` without ``--dry-run`` logs in to IMAP with
the config, runs the daemon's own proposing code once (:func:`agent.reconcile.meeting_desk.propose`: the REQUESTs go
into the Outbox, the round into the ledger) and exits; the running daemon paces and sends them. ``withdraw``
runs :func:`agent.reconcile.meeting_desk.call_off` the same way.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import click

from agent.calendars.busy import Interval, load_busy
from agent.cli.support import friendly, policy_path
from agent.config.settings import Settings, default_config_path, load_settings
from agent.errors import Problem, UserError
from agent.rules.addresses import normal_address
from agent.rules.envelope import domain_of, new_message_id
from agent.rules.invites import Meeting, Party, build_request, describe_slot, wire_bytes
from agent.rules.localtime import zone_named
from agent.rules.meetings import SendInvite, start_round
from agent.rules.policy import LoadedPolicy, load_policy
from agent.rules.slots import Slot, find_slots
from agent.rules.student_hours import outside_hours


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise UserError(
            [Problem("--now", "", f"{text!r} is not an ISO-8601 time, e.g. 2026-03-02T09:00-06:00")]
        ) from error
    if moment.tzinfo is None:
        raise UserError([Problem("--now", "", f"{text!r} has no UTC offset; write e.g. 2026-03-02T09:00-06:00")])
    return moment


def _settings(config: Path | None) -> Settings:
    """The settings a daemon with ``--config`` would run with (the default file when there is one)."""
    return load_settings(config)


def _policy(reference: str, settings: Settings) -> LoadedPolicy:
    return load_policy(policy_path(reference, settings.policies_dir))


def _knows_zone(settings: Settings) -> bool:
    """Whether the student's zone was set (config or environment), rather than the UTC placeholder."""
    return "timezone" in settings.student.model_fields_set


def _keep_clear(
    loaded: LoadedPolicy, now: datetime, settings: Settings, busy_sources: tuple[str, ...], student_zone: tzinfo | None
) -> tuple[list[Interval], list[datetime], datetime | None]:
    """What the daemon keeps clear (agent.reconcile.keep_clear.keep_clear): ``[calendar] busy_ics`` and ``--busy``,
    the student's own hours, and the meetings offered or agreed in the ledger (when there is one); with the
    earliest start the e-mail pace leaves an invitation made now (agent.reconcile.keep_clear.invite_start)."""
    rules = loaded.policy.meetings
    zone = student_zone or loaded.policy.zone
    end = now + rules.horizon + timedelta(days=1)
    busy = list(load_busy([*settings.calendar.busy_ics, *busy_sources], now - timedelta(days=1), end, zone))
    if student_zone is not None:
        busy += outside_hours(settings.student.hours, student_zone, now, end, rules.buffer)
    agreed: list[datetime] = []
    start: datetime | None = None
    if settings.ledger_path.exists():  # the daemon's ledger: offers and agreed meetings as it keeps them clear
        from agent.reconcile.keep_clear import invite_start, offered_and_agreed
        from agent.store.ledger import Ledger
        from agent.store.rounds import MeetingStore

        ledger = Ledger(settings.ledger_path)
        try:
            taken, agreed = offered_and_agreed(MeetingStore(ledger), loaded.id)
            busy += taken
            start = invite_start(ledger, loaded, now)  # and, as the daemon, no earlier than the pace lets it be invited
        finally:
            ledger.close()
    return busy, agreed, start


def _find(
    loaded: LoadedPolicy,
    now: datetime,
    settings: Settings,
    busy_sources: tuple[str, ...],
    count: int | None,
    student_zone: tzinfo | None,
) -> list[Slot]:
    rules = loaded.policy.meetings
    if not rules.windows:
        raise UserError([Problem(str(loaded.path), "meetings.windows", "no meeting windows, so no slots")])
    busy, agreed, start = _keep_clear(loaded, now, settings, busy_sources, student_zone)
    return find_slots(rules, loaded.policy.zone, now, busy, agreed, count=count, not_before=start)


@click.command("slots")
@click.argument("policy")
@click.option("--now", "now_text", metavar="ISO", help="Pretend it is this time (with offset). Default: now.")
@click.option(
    "--busy",
    "busy_sources",
    multiple=True,
    metavar="FILE.ics",
    help="More busy times (besides [calendar] busy_ics): an .ics file or http(s) URL; repeatable.",
)
@click.option("--count", type=click.IntRange(min=1), help="How many slots (default: the policy's proposals).")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: [{"start": …, "end": …}].')
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def slots_command(
    policy: str,
    now_text: str | None,
    busy_sources: tuple[str, ...],
    count: int | None,
    as_json: bool,
    config: Path | None,
) -> None:
    """Free meeting times with the mentor of POLICY (a .toml file or a policy id), in the mentor's zone.

    Kept clear as the daemon does: your calendars ([calendar] busy_ics and --busy), your own hours
    ([student] hours, when the config gives your time zone) and meetings already offered or agreed."""
    settings = _settings(config)
    loaded = _policy(policy, settings)
    student_zone = settings.student.zone if _knows_zone(settings) else None
    slots = _find(loaded, _now(now_text), settings, busy_sources, count, student_zone)
    if as_json:
        click.echo(json.dumps([slot.to_json() for slot in slots], indent=2))
        return
    if not slots:
        click.echo(f"No free time with {loaded.name} within the agreed windows and limits.")
        return
    click.echo(f"Free times with {loaded.name} ({loaded.policy.zone}):")
    for number, slot in enumerate(slots, start=1):
        click.echo(f"  {number}. {describe_slot(slot, loaded.policy.zone)}")


@click.command("propose")
@click.argument("policy")
@click.option("--dry-run", is_flag=True, help="Write the messages to --out instead of sending them.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Where .eml files go.")
@click.option("--topic", help="What the meeting is about (goes into the summary).")
@click.option("--now", "now_text", metavar="ISO", help="Pretend it is this time (with offset). Default: now.")
@click.option(
    "--busy",
    "busy_sources",
    multiple=True,
    metavar="FILE.ics",
    help="More busy times (besides [calendar] busy_ics); repeatable.",
)
@click.option("--student-name", help="Default: [student] name in the config.")
@click.option("--student-address", help="Default: [student] address in the config.")
@click.option("--student-tz", help="Default: [student] timezone in the config.")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def propose_command(
    policy: str,
    dry_run: bool,
    out_dir: Path | None,
    topic: str | None,
    now_text: str | None,
    busy_sources: tuple[str, ...],
    student_name: str | None,
    student_address: str | None,
    student_tz: str | None,
    config: Path | None,
) -> None:
    """Propose a meeting to the mentor of POLICY (a policy id or .toml file).

    The invitations go into your Outbox and the running daemon sends them when the agreement allows.
    With --dry-run --out DIR, write them as .eml files instead and touch nothing else: the same times,
    organizer and text the daemon would send with this config."""
    if not dry_run:
        if now_text or student_name or student_address or student_tz or out_dir:
            raise UserError([Problem("propose", "", "--now, --out and --student-* only go with --dry-run")])
        _propose_live(policy, topic, busy_sources, config)
        return
    if out_dir is None:
        raise UserError([Problem("propose", "", "--dry-run needs --out DIR for the .eml files")])
    settings = _settings(config)
    student = settings.student
    if student_address is None and "address" not in student.model_fields_set:
        raise UserError(
            [
                Problem(
                    str(config or default_config_path()),
                    "student.address",
                    "no address of yours to send from: give --config FILE or --student-address",
                )
            ]
        )
    student_name = student_name or student.name
    student_address = student_address or student.address
    student_tz = student_tz or student.timezone
    if "@" not in student_address:
        raise UserError([Problem("--student-address", "", f"{student_address!r} is not an e-mail address")])
    try:
        student_zone = zone_named(student_tz)
    except ValueError as error:
        raise UserError([Problem("--student-tz", "", str(error))]) from error
    loaded = _policy(policy, settings)
    rules = loaded.policy.meetings
    now = _now(now_text)
    slots = _find(loaded, now, settings, busy_sources, None, student_zone)
    mentor = Party(loaded.policy.mentor.name, loaded.policy.mentor.addresses[0])
    student_party = Party(student_name, normal_address(student_address))
    domain = domain_of(student_party.address)
    _, actions = start_round(
        rules,
        loaded.policy.zone,
        mentor=mentor,
        student=student_party,
        student_zone=student_zone,
        slots=slots,
        round_id=uuid.uuid4().hex[:16],
        domain=domain,
    )
    invites = [a for a in actions if isinstance(a, SendInvite)]
    if not invites:
        raise UserError(
            [
                Problem(
                    str(loaded.path),
                    "meetings",
                    f"no free time with {loaded.name} within the agreed windows and limits",
                )
            ]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = f"Mentoring: {topic}" if topic else (rules.description or "Mentoring meeting")
    for number, invite in enumerate(invites, start=1):
        meeting = Meeting(invite.uid, invite.sequence, invite.slot, summary, rules.location, rules.description)
        message = build_request(
            meeting,
            organizer=student_party,
            attendee=mentor,
            mentor_zone=loaded.policy.zone,
            student_zone=student_zone,
            now=now,
            alternatives=invite.alternatives,
            message_id=new_message_id(domain),
        )
        message["X-Mentor-Agent"] = "invite"  # as the daemon marks what it puts in the Outbox
        path = out_dir / f"{loaded.id}-{number}-request.eml"
        path.write_bytes(wire_bytes(message))
        click.echo(f"{path}: {describe_slot(invite.slot, loaded.policy.zone)} → {mentor.address}")


def _propose_live(reference: str, topic: str | None, busy_sources: tuple[str, ...], config: Path | None) -> None:
    import asyncio

    from agent.config.settings import Calendar

    settings = load_settings(config, required=True)
    if busy_sources:
        calendar = Calendar(busy_ics=[*settings.calendar.busy_ics, *busy_sources])
        settings = settings.model_copy(update={"calendar": calendar})
    loaded = _live_policy(reference, settings)
    proposal = asyncio.run(_run_propose(settings, str(config or default_config_path()), loaded, topic or ""))
    if not proposal.offered:
        raise UserError([Problem(str(loaded.path), "meetings", f"no meeting proposed: {proposal.problem}")])
    click.echo(f"Proposed to {loaded.name} (round {proposal.round_id}); the daemon sends the invitation:")
    for number, slot in enumerate(proposal.offered, start=1):
        click.echo(f"  {number}. {describe_slot(slot, loaded.policy.zone)}")


async def _run_propose(settings: Settings, config_file: str, loaded: LoadedPolicy, topic: str) -> Any:
    from agent.daemon.session import run_step
    from agent.reconcile.meeting_desk import propose

    return await run_step(
        settings, config_file, lambda world: propose(world, loaded, topic=topic, source=f"cli:{uuid.uuid4().hex}")
    )


@click.command("withdraw")
@click.argument("policy")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def withdraw_command(policy: str, config: Path | None) -> None:
    """Call off the open meeting offer to the mentor of POLICY (a policy id or .toml file).

    Invitations already sent get a CANCEL, those not sent yet are taken back; an agreed meeting stays.
    Like propose, this runs the daemon's own code once; the running daemon sends the CANCELs."""
    import asyncio

    from agent.daemon.session import run_step
    from agent.reconcile.meeting_desk import call_off

    settings = load_settings(config, required=True)
    loaded = _live_policy(policy, settings)
    called = asyncio.run(
        run_step(settings, str(config or default_config_path()), lambda world: call_off(world, loaded))
    )
    if not called:
        raise UserError([Problem(str(loaded.path), "meetings", f"no open meeting offer to {loaded.name}")])
    click.echo(
        f"Called off the meeting offer to {loaded.name} (round {', '.join(called)}); the daemon sends the CANCELs."
    )


def _live_policy(reference: str, settings: Settings) -> LoadedPolicy:
    return load_policy(policy_path(reference, settings.policies_dir))


def register(group: click.Group) -> None:
    group.add_command(slots_command)
    group.add_command(propose_command)
    group.add_command(withdraw_command)
