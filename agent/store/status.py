"""``mentor-agent status``: per mentor, what went out against the limits and what waits; the daemon's health.

It only reads the ledger (SQLite in WAL mode allows that while the daemon writes), so it works at any time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.errors import Problem, UserError
from agent.rules.addresses import normal_address
from agent.rules.agenda import on_agenda
from agent.rules.localtime import after, describe, local_date, shift_days, start_of_day, wall, week_start
from agent.rules.policy import Agreement, PolicyBook, file_name
from agent.rules.refusals import waiting_lines
from agent.store.answer_times import answer_times
from agent.store.in_doubt import handed_over
from agent.store.ledger import ATTENTION, CLAIMED, EARLY, NEW, QUEUED, SCHEDULED, SENDING, Ledger, Row
from agent.store.statelock import holder

WEEKS_SHOWN = 8


def short_id(key: str) -> str:
    """A short, stable handle for a message, for ``release`` and ``cancel``."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _owner(book: PolicyBook, row: Row) -> str | None:
    """The policy id that paces ``row``, as the daemon decides it (:meth:`PolicyBook.pacing`); None when no policy
    names its mentor any more (her file is gone or names her no more: held, not sent)."""
    found = book.pacing(row.mentor, row.mentor_addresses or row.recipients)
    return found.id if found else None


def _waiting(row: Row, zone: tzinfo) -> dict[str, Any]:
    return {
        "id": short_id(row.key),
        "subject": row.subject,
        "state": row.state,
        "due": wall(row.due, zone).isoformat() if row.due else None,
        "digest": row.digest,
        "reason": row.reason,
    }


def _in_doubt(rows: list[Row]) -> dict[str, Any]:
    """One e-mail in doubt (a digest's messages went as one): its first message, the others ``with`` it."""
    first, *others = sorted(rows, key=lambda row: (row.arrived, row.subject, row.key))
    began = min(handed_over(row.sent_at) for row in rows if row.sent_at is not None)
    return {
        "id": short_id(first.key),
        "subject": first.subject,
        "handed_over": began.astimezone(UTC).isoformat(),
        "folder": first.folder,
        "to": list(first.recipients),
        "with": [{"id": short_id(row.key), "subject": row.subject} for row in others],
    }


def read_status(book: PolicyBook, path: Path) -> dict[str, Any]:
    """:func:`collect` from the ledger at ``path``; a damaged file (or a folder in its place) is one clear error."""
    try:
        ledger = Ledger(path)
        try:
            return collect(book, ledger, datetime.now().astimezone())
        finally:
            ledger.close()
    except (sqlite3.DatabaseError, IsADirectoryError) as error:
        why = f"is not a ledger mentor-agent can read ({error}); restore it from a backup, or move it aside"
        raise UserError([Problem(str(path), "", f"{why}: `run` then starts a new one")]) from error


def collect(book: PolicyBook, ledger: Ledger, now: datetime) -> dict[str, Any]:
    mentors = []
    open_rows = [row for row in ledger.in_states(NEW, SCHEDULED, CLAIMED, QUEUED, SENDING) if row.mentor]
    owners = {row.key: _owner(book, row) for row in open_rows}
    # Sends in doubt (the line cut after DATA; killed between hand-over and answer), in Needs attention until she
    # decides: counted as received when handed over, as the pacing rules count them (agent.store.in_doubt).
    # Listed under each mentor they count for (by her addresses, as the pacing rules match them), and the rest on
    # their own: none is hidden. Like the chart, the last WEEKS_SHOWN weeks.
    doubts = {row.key: row for row in ledger.in_states(ATTENTION) if row.sent_at is not None}
    listed: set[str] = set()
    for loaded in sorted(book, key=lambda p: p.name):
        zone = loaded.policy.zone
        rules = loaded.policy.email
        addresses = loaded.policy.mentor.addresses  # what she received, whatever her policy file is called
        today = local_date(now, zone)
        monday = week_start(today)
        day_start = start_of_day(today, zone)
        week_begin = start_of_day(monday, zone)
        oldest = shift_days(monday, -7 * (WEEKS_SHOWN - 1))
        # What she received, with the sends in doubt, as the pacing rules count it: "today 1/1" then says why
        # her next one waits.
        received = [item.at for item in ledger.history(loaded.id, start_of_day(oldest, zone), addresses).sent]
        weeks = []
        for back in range(WEEKS_SHOWN - 1, -1, -1):
            first = shift_days(monday, -7 * back)
            begin, end = start_of_day(first, zone), start_of_day(shift_days(first, 7), zone)
            weeks.append({"week": first.isoformat(), "sent": sum(1 for at in received if begin <= at < end)})
        waiting = [_waiting(row, zone) for row in open_rows if owners[row.key] == loaded.id]
        in_doubt = []
        here: set[str] = set()
        for keys in ledger.in_doubt(loaded.id, start_of_day(oldest, zone), addresses).values():
            rows = [doubts[key] for key in keys if key in doubts]
            if rows:
                in_doubt.append(_in_doubt(rows))
                here.update(keys)
        # Still in doubt, and hers, but counted through another record: the hand-over kept when another message
        # of the same e-mail was moved back to the Outbox (agent.store.in_doubt_kept). Listed all the same.
        wanted = {normal_address(a) for a in addresses}
        rest: dict[str, list[Row]] = {}
        for key, row in doubts.items():
            if key in here or row.sent_at is None or handed_over(row.sent_at) < start_of_day(oldest, zone):
                continue
            if any(normal_address(a) in wanted for a in row.recipients):
                rest.setdefault(row.item or key, []).append(row)
        in_doubt += [_in_doubt(rows) for rows in rest.values()]
        listed |= here | {row.key for rows in rest.values() for row in rows}
        mentors.append(
            {
                "id": loaded.id,
                "name": loaded.name,
                "timezone": zone.key,
                "today": {"sent": sum(1 for at in received if at >= day_start), "limit": rules.max_per_day},
                "this_week": {"sent": sum(1 for at in received if at >= week_begin), "limit": rules.max_per_week},
                "weeks": weeks,
                "waiting": waiting,
                "in_doubt": in_doubt,
                "meetings": meetings_of(ledger, loaded.id),
                "agreement": _agreement(loaded.policy.agreement),
                "answer_times": answer_times(ledger, loaded, now),
            }
        )
    status = ledger.status()
    daemon: dict[str, str | None] = {key: value for key, (value, _updated) in status.items()}
    daemon["updated"] = max((updated for _value, updated in status.values()), default=None)
    # Whether a daemon runs is the lock's word, not the ledger's: a killed daemon never wrote "running: no".
    pid = holder(ledger.path.parent)
    if status or pid is not None:
        daemon["running"] = "yes" if pid is not None else "no"
        daemon["pid"] = str(pid) if pid else None
    # Held for a mentor no policy file names any more: never sent because of that; restore it or flag them.
    orphaned = [
        _waiting(row, UTC) | {"policy": file_name(row.mentor or ""), "to": list(row.recipients)}
        for row in open_rows
        if owners[row.key] is None
    ]
    # Held in the Outbox since the wait for a first policy: to no mentor yet (a policy for it, or her flag).
    early = [
        _waiting(row, UTC) | {"to": list(row.recipients)}
        for row in ledger.in_states(ATTENTION)
        if row.detail == EARLY and row.uid is not None
    ]
    # Counted for no mentor because no policy names its recipients now (her file gone, her address changed): one
    # a mentor's policy names but older than her chart is in neither list, as her older sends are not.
    window = after(now, -timedelta(weeks=WEEKS_SHOWN))
    releases: dict[str, list[Row]] = {}
    for key, row in doubts.items():
        named_now = any(book.for_address(address) is not None for address in row.recipients)
        if key not in listed and not named_now and row.sent_at is not None and handed_over(row.sent_at) >= window:
            releases.setdefault(row.item or key, []).append(row)
    uncounted = [_in_doubt(rows) for rows in releases.values()]
    return {
        "now": now.isoformat(),
        "daemon": daemon,
        "mentors": mentors,
        "policy_missing": orphaned,
        "early": early,
        "in_doubt_uncounted": uncounted,
    }


def _agreement(agreement: Agreement) -> dict[str, Any]:
    """Whether the mentor agreed to this policy (``mentor-agent agree``), when and which version."""
    agreed_on = agreement.agreed_on.isoformat() if agreement.agreed_on else None
    return {"agreed_on": agreed_on, "version": agreement.version if agreed_on else None}


def meetings_of(ledger: Ledger, mentor: str) -> dict[str, Any]:
    """Open offers and the next agreed meeting, when the meetings feature has recorded any."""
    if "meetings" not in ledger.tables():
        return {"offers": [], "next": None}
    offers = [
        {"start": start, "status": status}
        for start, status in ledger.db.execute(
            "SELECT start, status FROM meetings WHERE mentor = ? AND status IN ('planned', 'sent') ORDER BY start",
            (mentor,),
        )
    ]
    agreed = ledger.db.execute(
        "SELECT start FROM meetings WHERE mentor = ? AND status = 'accepted' AND start >= ? ORDER BY start LIMIT 1",
        (mentor, datetime.now().astimezone().isoformat()),
    ).fetchone()
    return {"offers": offers, "next": agreed[0] if agreed else None}


BAR_WIDTH = 10  # a week's bar: one mark a message up to this many, else scaled to it


def _bar(sent: int, limit: int) -> str:
    full, over, room = min(sent, limit), max(0, sent - limit), max(0, limit - sent)
    total = full + over + room
    if total > BAR_WIDTH:  # 50 a week: the same picture in BAR_WIDTH marks, none of the three lost
        over = max(1 if over else 0, round(over * BAR_WIDTH / total))
        full = max(1 if full else 0, min(BAR_WIDTH - over, round(full * BAR_WIDTH / total)))
        room = BAR_WIDTH - over - full
        if room == 0 and limit > sent and full > 1:
            full, room = full - 1, 1
    return "█" * full + "▒" * over + "·" * room


def not_started(state_dir: Path, config: Path | None, now: datetime) -> tuple[dict[str, Any], str]:
    """`status` before the first `run` (no ledger yet): what it is and what to do, as data and as text."""
    option = f" --config {config}" if config is not None else ""
    data = {"now": now.isoformat(), "daemon": {"started": "no"}, "mentors": [], "policy_missing": []}
    text = (
        f"daemon: not started yet (nothing in {state_dir} yet)\n"
        f"Start it with: mentor-agent run{option}   (or: mentor-agent setup --systemd{option})"
    )
    return data, text


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _when(start: str, zone: tzinfo | None) -> str:
    """A meeting's start as the student reads it: in her zone (the ledger keeps UTC)."""
    moment = datetime.fromisoformat(start)
    return describe(moment, zone) if zone is not None and moment.tzinfo is not None else start[:16]


def render(data: dict[str, Any], *, color: bool, zone: tzinfo | None = None) -> str:
    """The status as text; ``zone``: the student's, for meeting times (the mentor's rules show in hers)."""
    lines = []
    daemon = data["daemon"]
    state = "connected" if daemon.get("connected") == "yes" else "not connected"
    if daemon.get("running") != "yes":
        state = "not running" if daemon.get("running") else "never ran (no ledger entries yet)"
    elif daemon.get("pid"):
        state += f", pid {daemon['pid']}"
    lines.append(
        f"daemon: {_paint(state, '32' if state.startswith('connected') else '33', color)}"
        + (f" (as of {daemon['updated'][:19]} UTC)" if daemon.get("updated") else "")
    )
    if daemon.get("last_error"):
        lines.append(f"last error: {daemon['last_error']}")
    if daemon.get("running") == "yes":  # a refused login the daemon is waiting out
        lines.extend(waiting_lines(daemon, datetime.fromisoformat(data["now"])))
        if daemon.get("waiting"):
            lines.append(f"waiting {daemon['waiting']}")
        if daemon.get("unwatched") and daemon.get("connected") == "yes":  # the server's limit on connections
            lines.append(
                f"not watched (the server's limit on connections): {daemon['unwatched']}; looked at every minute"
            )
    for mentor in data["mentors"]:
        today, week = mentor["today"], mentor["this_week"]
        lines.append("")
        lines.append(_paint(f"{mentor['name']} ({mentor['timezone']})", "1", color))
        agreed = mentor.get("agreement") or {}
        if agreed.get("agreed_on"):
            lines.append(f"  agreed on {agreed['agreed_on']}, version {agreed['version']}")
        else:
            lines.append(f"  not agreed yet (`mentor-agent agree {mentor['id']}` proposes the standards)")
        over = today["sent"] >= today["limit"] or week["sent"] >= week["limit"]
        lines.append(
            f"  today {today['sent']}/{today['limit']}   this week {week['sent']}/{week['limit']}"
            + (_paint("   at the limit", "33", color) if over else "")
        )
        chart = "  ".join(_bar(w["sent"], mentor["this_week"]["limit"]) for w in mentor["weeks"])
        lines.append(f"  last {len(mentor['weeks'])} weeks (█ sent, · room, ▒ over): {chart}")
        mentor_zone = ZoneInfo(mentor["timezone"])
        for item in mentor["waiting"]:
            due = item["due"]
            when = describe(datetime.fromisoformat(due), mentor_zone) if due else "held until a reply"
            when = "for the next meeting's agenda" if on_agenda(item["digest"]) else when
            lines.append(f"  [{item['id']}] {item['subject'][:40]:<40}  {when}")
            if item["reason"]:
                lines.append(f"             {item['reason']}")
        for item in mentor.get("in_doubt", []):
            lines.extend(_doubt_lines(item, zone))
            lines.append("             counted as sent; the “In doubt” notice in your INBOX says what to do")
        if not mentor["waiting"]:
            lines.append("  nothing waiting")
        times = mentor.get("answer_times")
        if times:
            lines.append(f"  answers: {times['mentor']['text']}")
            lines.append(f"           {times['student']['text']}")
        meetings = mentor["meetings"]
        if meetings["offers"]:
            lines.append(f"  open meeting offers: {', '.join(_when(o['start'], zone) for o in meetings['offers'])}")
        if meetings["next"]:
            lines.append(f"  next meeting: {_when(meetings['next'], zone)}")
    if data.get("policy_missing"):
        lines.append("")
        lines.append(
            _paint(
                "Held: the mentor's policy file is gone or no longer names her (put it back, or flag them to send now)",
                "33",
                color,
            )
        )
        for item in data["policy_missing"]:
            lines.append(f"  [{item['id']}] {item['subject'][:40]:<40}  {item['policy']}, to {', '.join(item['to'])}")
    if data.get("early"):
        lines.append("")
        lines.append(
            _paint("Held in the Outbox: arrived before any policy (add one for it, or flag it to send)", "33", color)
        )
        for item in data["early"]:
            lines.append(f"  [{item['id']}] {item['subject'][:40]:<40}  to {', '.join(item['to'])}")
    if data.get("in_doubt_uncounted"):
        lines.append("")
        lines.append(_paint("In doubt, counted for no mentor (no policy names its recipients now)", "33", color))
        for item in data["in_doubt_uncounted"]:
            lines.extend(_doubt_lines(item, zone))
            lines.append(f"             to {', '.join(item['to'])}")
    return "\n".join(lines)


def _doubt_lines(item: dict[str, Any], zone: tzinfo | None) -> list[str]:
    """A send in doubt: the agent marked it as sending, then never heard whether the server took it (the line
    was cut, or the daemon stopped): it may or may not have been handed over."""
    where = item["folder"] or "Needs attention"
    lines = [
        f"  [{item['id']}] {item['subject'][:40]:<40}  in doubt (put in {where})",
        f"             sending began {_when(item['handed_over'], zone)}; whether the server took it is not known",
    ]
    if item["with"]:
        together = ", ".join(f"[{other['id']}] {other['subject'][:30]}" for other in item["with"])
        lines.append(f"             in the same e-mail: {together}")
    return lines
