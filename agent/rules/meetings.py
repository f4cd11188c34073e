"""One proposal round with one mentor, as a pure state machine: state and an event in, state and actions out.

The daemon keeps a :class:`Round` (in the ledger), feeds it what happened — ``mark_sent`` once SMTP took a
REQUEST, ``apply_reply`` for a parsed iTIP reply, ``expire`` on a timer — and carries out the returned
actions. Nothing here reads the clock or the network; ``now`` and an ``is_free(start, end)`` check come in.

Each offer has its own UID (the "sequential" strategy offers the next slot as a new invitation; the
"holds" strategy sends them all at once). A CANCEL is only ever produced for an offer whose REQUEST SMTP
already accepted: an offer withdrawn before that is marked ``cancelled`` and its CANCEL is produced by
``mark_sent`` if the REQUEST turns out to have left after all.

Why one module: every transition (sent, a reply, a counter, expiry, a withdrawal) reads and writes the same
:class:`Round` through the same few private steps (``_withdraw``, ``_advance``, ``_when``); split by event, each part
would import the others' internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from agent.rules.addresses import author, normal_address
from agent.rules.authenticity import auth_problem
from agent.rules.durations import format_duration
from agent.rules.invites import ItipObject, Party, describe_slot, make_uid
from agent.rules.localtime import after, instant, wall
from agent.rules.policy import MeetingRules
from agent.rules.slots import Slot
from agent.rules.windows import WeeklySchedule

Status = Literal["planned", "sent", "accepted", "declined", "cancelled", "expired"]
IsFree = Callable[[datetime, datetime], bool]


@dataclass(frozen=True)
class Offer:
    uid: str
    slot: Slot
    sequence: int = 0
    status: Status = "planned"
    ever_sent: bool = False  # SMTP accepted a REQUEST with this UID at least once
    sent_at: datetime | None = None
    partstat: str = "NEEDS-ACTION"
    answered: datetime | None = None  # the newest DTSTAMP of her answers applied: an older one comes late


@dataclass(frozen=True)
class Round:
    round_id: str
    domain: str  # for UIDs: the student's mail domain
    mentor: Party  # the address invited; replies must come from it
    student: Party
    rules: MeetingRules
    zone: tzinfo  # the mentor's
    student_zone: tzinfo
    offers: tuple[Offer, ...] = ()
    pending: tuple[Slot, ...] = ()  # sequential: slots not offered yet, in order

    @property
    def outcome(self) -> Literal["agreed", "open", "closed"]:
        if any(o.status == "accepted" for o in self.offers):
            return "agreed"
        if any(o.status in ("planned", "sent") for o in self.offers):
            return "open"
        return "closed"

    def offer(self, uid: str) -> Offer | None:
        return next((o for o in self.offers if o.uid == uid), None)


# -- actions the daemon executes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SendInvite:
    uid: str
    sequence: int
    slot: Slot
    alternatives: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class SendCancel:
    uid: str
    sequence: int
    slot: Slot


@dataclass(frozen=True)
class SendStudentCopy:
    uid: str
    sequence: int
    slot: Slot


@dataclass(frozen=True)
class NotifyStudent:
    text: str


@dataclass(frozen=True)
class RecordMeeting:
    uid: str
    slot: Slot


@dataclass(frozen=True)
class Ignored:
    """A reply that changed nothing, and why (for the log, or to file the mail under Needs attention).
    ``unjudged``: not judged as an answer at all (who sent it, an invitation not known to have left): the same mail
    may count later (an address added to her policy), so it is not marked read."""

    reason: str
    unjudged: bool = False


Action = SendInvite | SendCancel | SendStudentCopy | NotifyStudent | RecordMeeting | Ignored
Result = tuple[Round, tuple[Action, ...]]


def _with(state: Round, offer: Offer) -> Round:
    return replace(state, offers=tuple(offer if o.uid == offer.uid else o for o in state.offers))


def _when(state: Round, slot: Slot) -> str:
    return f"{describe_slot(slot, state.student_zone)} (for {state.mentor.name}: {describe_slot(slot, state.zone)})"


def _new_offer(state: Round, slot: Slot) -> tuple[Round, SendInvite]:
    uid = make_uid(f"{state.round_id}-{len(state.offers)}", state.domain)
    offer = Offer(uid=uid, slot=slot)
    alternatives = state.pending if state.rules.strategy == "sequential" else ()
    return replace(state, offers=(*state.offers, offer)), SendInvite(uid, 0, slot, alternatives)


def start_round(
    rules: MeetingRules,
    zone: tzinfo,
    *,
    mentor: Party,
    student: Party,
    student_zone: tzinfo,
    slots: list[Slot],
    round_id: str,
    domain: str,
) -> Result:
    """A new round over ``slots`` (from ``find_slots``): all at once ("holds") or the first one ("sequential")."""
    if not slots:
        state = Round(round_id, domain, mentor, student, rules, zone, student_zone)
        return state, (NotifyStudent(f"No free meeting time with {mentor.name} within the agreed windows."),)
    chosen = slots[: rules.proposals]
    state = Round(round_id, domain, mentor, student, rules, zone, student_zone)
    actions: list[Action] = []
    if rules.strategy == "holds":
        for slot in chosen:
            state, invite = _new_offer(state, slot)
            actions.append(invite)
    else:
        state = replace(state, pending=tuple(chosen[1:]))
        state, invite = _new_offer(state, chosen[0])
        actions.append(invite)
    return state, tuple(actions)


def mark_sent(state: Round, uid: str, now: datetime) -> Result:
    """SMTP accepted the REQUEST for ``uid``. If the offer was withdrawn meanwhile, its CANCEL may go now."""
    offer = state.offer(uid)
    if offer is None:
        return state, (Ignored(f"{uid} is not an offer of this round"),)
    if offer.status == "planned":
        return _with(state, replace(offer, status="sent", ever_sent=True, sent_at=now)), ()
    if offer.status == "cancelled" and not offer.ever_sent:
        cancelled = replace(offer, ever_sent=True, sequence=offer.sequence + 1)
        return _with(state, cancelled), (SendCancel(uid, cancelled.sequence, offer.slot),)
    return state, ()


def _withdraw(state: Round, offer: Offer, status: Status = "cancelled") -> tuple[Round, list[Action]]:
    if not offer.ever_sent:
        return _with(state, replace(offer, status=status)), []
    withdrawn = replace(offer, status=status, sequence=offer.sequence + 1)
    return _with(state, withdrawn), [SendCancel(offer.uid, withdrawn.sequence, offer.slot)]


def _advance(state: Round, now: datetime, is_free: IsFree | None) -> tuple[Round, list[Action]]:
    """After a decline or timeout: offer the next slot (sequential), or tell the student the round ended."""
    if state.outcome != "closed":
        return state, []
    if state.rules.strategy == "sequential":
        while state.pending and len(state.offers) < state.rules.proposals:
            slot, rest = state.pending[0], state.pending[1:]
            state = replace(state, pending=rest)
            if slot.utc_start < after(now, state.rules.min_notice):
                continue
            if is_free is not None and not is_free(slot.start, slot.end):
                continue
            state, invite = _new_offer(state, slot)
            return state, [invite, NotifyStudent(f"Offered {state.mentor.name} the next time: {_when(state, slot)}.")]
    return replace(state, pending=()), [
        NotifyStudent(
            f"No meeting agreed with {state.mentor.name}: every offered time was declined or went unanswered. "
            "Propose new times when you are ready."
        )
    ]


def _authentic(
    state: Round, reply: ItipObject, from_address: str, auth_results: str | None, addresses: tuple[str, ...] = ()
) -> str | None:
    """Why ``reply`` must not be applied, or None. She may answer from, and as, any of ``addresses``."""
    invited = normal_address(state.mentor.address)  # one address however it is spelled (case, IDNA)
    hers = {invited, *(normal_address(address) for address in addresses)}
    sender = author(from_address)  # one clean address in From, else nobody
    attendees = {normal_address(address) for address, _ in reply.attendees}
    offer = state.offer(reply.uid)
    if reply.method not in ("REPLY", "COUNTER"):
        return f"{reply.method} is not an answer to an invitation"
    if offer is None:
        return f"UID {reply.uid} is not one we sent"
    if not offer.ever_sent and offer.status != "cancelled":  # withdrawn unconfirmed: in doubt, it may have gone
        return f"UID {reply.uid} was never sent"
    if reply.method == "REPLY" and len(reply.attendees) != 1:
        return f"a REPLY must name exactly one attendee, this one names {len(reply.attendees)}"
    if not hers & attendees:
        return "the replying attendee was not invited"
    if reply.method == "REPLY" and normal_address(reply.attendee or "") not in hers:
        return "the replying attendee was not invited"
    if sender not in hers:
        return f"sent from {sender or 'no address'}, not from the invited {invited}"
    if (problem := auth_problem(auth_results, sender)) is not None:
        return problem
    if reply.organizer is not None and normal_address(reply.organizer) != normal_address(state.student.address):
        return f"organizer {reply.organizer} is not the student"
    return None


def _in_windows(state: Round, start: datetime, end: datetime) -> bool:
    schedule = WeeklySchedule.of(state.rules.windows, state.zone)
    return any(opens <= start and end <= closes for opens, closes in schedule.intervals(start, end))


def _counter(state: Round, offer: Offer, reply: ItipObject, now: datetime, is_free: IsFree | None) -> Result:
    assert reply.start is not None and reply.end is not None  # parse_itip guarantees it for COUNTER
    start, end = instant(reply.start), instant(reply.end)
    proposed = Slot(wall(start, state.zone), wall(end, state.zone))
    if offer.status not in ("sent", "accepted"):
        return state, (
            NotifyStudent(
                f"{state.mentor.name} proposed {_when(state, proposed)} for an offer already "
                f"{_STATUS_WORD[offer.status]}; nothing was changed."
            ),
        )
    fits = start > instant(now) and _in_windows(state, start, end)
    if not fits or (is_free is not None and not is_free(proposed.start, proposed.end)):
        reason = "is outside the agreed meeting windows" if not fits else "clashes with your calendar"
        return state, (
            NotifyStudent(
                f"{state.mentor.name} proposed another time, {_when(state, proposed)}, "
                f"which {reason}. Please answer yourself."
            ),
        )
    moved = replace(offer, slot=proposed, sequence=offer.sequence + 1, status="planned", partstat="NEEDS-ACTION")
    return _with(state, moved), (
        SendInvite(offer.uid, moved.sequence, proposed),
        NotifyStudent(f"{state.mentor.name} proposed {_when(state, proposed)}; the invitation was updated."),
    )


def _accept(state: Round, offer: Offer) -> Result:
    if state.outcome == "agreed" and offer.ever_sent:  # one withdrawn unconfirmed (in doubt): she is told below
        state, withdrawn = _withdraw(state, offer)
        return state, (
            *withdrawn,
            NotifyStudent(
                f"{state.mentor.name} also accepted {_when(state, offer.slot)}, but another time was already "
                "agreed; that one was cancelled."
            ),
        )
    if offer.status != "sent":
        return state, (
            NotifyStudent(
                f"{state.mentor.name} accepted {_when(state, offer.slot)}, "
                f"an offer already withdrawn ({offer.status}). Please confirm with them yourself."
            ),
        )
    state = _with(state, replace(offer, status="accepted", partstat="ACCEPTED"))
    actions: list[Action] = [RecordMeeting(offer.uid, offer.slot)]
    for other in state.offers:
        if other.uid != offer.uid and other.status in ("planned", "sent"):
            state, withdrawn = _withdraw(state, other)
            actions += withdrawn
    state = replace(state, pending=())
    actions += [
        SendStudentCopy(offer.uid, offer.sequence, offer.slot),
        NotifyStudent(f"{state.mentor.name} accepted: {_when(state, offer.slot)}."),
    ]
    return state, tuple(actions)


def apply_reply(
    state: Round,
    reply: ItipObject,
    from_address: str,
    auth_results: str | None,
    now: datetime,
    *,
    is_free: IsFree | None = None,
    addresses: tuple[str, ...] = (),
) -> Result:
    """Apply one parsed reply (from any of her ``addresses``); one failing a check changes nothing: ``Ignored``."""
    problem = _authentic(state, reply, from_address, auth_results, addresses)
    offer = state.offer(reply.uid)
    if problem is not None or offer is None:
        return state, (Ignored(problem or "unknown offer", unjudged=True),)
    if reply.sequence < offer.sequence:
        return state, (_older_version(state, offer, reply),)
    stamp = usable_stamp(reply.stamp, now)
    if (overtaken := _overtaken(state, offer, reply, stamp)) is not None:
        return state, (overtaken,)
    applied, actions = _apply(state, offer, reply, now, is_free)
    in_force = applied.offer(reply.uid)
    # An answer an older one comes after: one applied, or the same again (she said it again later); not one that
    # changed nothing (a counter outside the windows, "tentative" for a withdrawn offer)
    same = reply.method == "REPLY" and offer.partstat == reply.partstat
    if applied == state and not same:
        return applied, actions
    if stamp is None:  # the answer in force has no time to compare with: the next ones go by arrival
        return (applied if same or in_force is None else _with(applied, replace(in_force, answered=None))), actions
    return _stamped(applied, reply.uid, stamp), actions


class Belated(NotifyStudent):
    """A notice of an answer that changed nothing because a later one stands (by DTSTAMP or SEQUENCE): the daemon
    tells each such answer once, however often it is delivered."""


_SAID = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentative"}
_STATUS_WORD = {
    "planned": "planned",
    "sent": "open",
    "accepted": "agreed",
    "declined": "declined",
    "cancelled": "withdrawn",
    "expired": "withdrawn, unanswered in time",
}
_NOW_STATUS = {  # where an offer stands, of its time
    "planned": "it now offers {when}, and waits for their answer to that",
    "sent": "it now offers {when}, and waits for their answer to that",
    "accepted": "{when} is agreed",
    "declined": "they declined {when}",
    "cancelled": "{when} was withdrawn",
    "expired": "{when} was withdrawn, unanswered in time",
}
# DTSTAMPs that cannot be when she wrote an answer: before this, or ahead of the agent's clock by more than a clock can
# be wrong by (.NET's empty date is year 1; a phone set to 2099 would otherwise outrank every later answer)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_AHEAD = timedelta(minutes=10)


def usable_stamp(stamp: datetime | None, now: datetime) -> datetime | None:
    """``stamp`` (a DTSTAMP), or None when no clock can have written it (before 2000, or ahead of ``now`` by more
    than a clock is wrong by): such an answer goes by arrival."""
    if stamp is None or stamp < _EARLIEST or stamp > after(now, _AHEAD):
        return None
    return stamp


def _said(state: Round, reply: ItipObject) -> str:
    if reply.method == "COUNTER" and reply.start is not None and reply.end is not None:
        proposed = Slot(wall(instant(reply.start), state.zone), wall(instant(reply.end), state.zone))
        return f"proposed another time, {_when(state, proposed)}"
    return f"“{_SAID.get(reply.partstat or '', 'answered')}”"


def _older_version(state: Round, offer: Offer, reply: ItipObject) -> Action:
    """An authentic answer to an invitation changed since (a counter moved it, or it was withdrawn): it changes
    nothing, and is told when it is at odds with where the offer stands (a decline of a withdrawn offer is not)."""
    accepting = reply.method == "COUNTER" or reply.partstat in ("ACCEPTED", "TENTATIVE")
    declining = reply.method == "REPLY" and reply.partstat == "DECLINED"
    at_odds = (accepting and offer.status != "accepted") or (
        declining and offer.status in ("planned", "sent", "accepted")
    )
    if not at_odds:
        return Ignored(f"an answer to SEQUENCE {reply.sequence}, older than {offer.sequence}, that changes nothing")
    then = ""
    if reply.method == "REPLY" and reply.start is not None and reply.end is not None:
        answered = Slot(wall(instant(reply.start), state.zone), wall(instant(reply.end), state.zone))
        if answered != offer.slot:
            then = f" (it said {_when(state, answered)})"
    now_stands = _NOW_STATUS[offer.status].format(when=_when(state, offer.slot))
    return Belated(
        f"{state.mentor.name} answered {_said(state, reply)} to an earlier version of the invitation{then}, which "
        f"has changed since: {now_stands}. Nothing was changed; confirm with them what they meant."
    )


def _overtaken(state: Round, offer: Offer, reply: ItipObject, stamp: datetime | None) -> Action | None:
    """A reply written before the newest one applied (by DTSTAMP, RFC 5546 §2.1.5) that arrives after it: a copy
    delayed on the way, or sent by a device that was offline. The later answer stands; a different one is told."""
    if stamp is None or offer.answered is None or stamp >= offer.answered:
        return None
    if reply.method == "REPLY" and reply.partstat == offer.partstat:
        return Ignored("a late copy of the answer in force")
    return Belated(
        f"By the times their calendar wrote on them, {state.mentor.name}'s answer {_said(state, reply)} for "
        f"{_when(state, offer.slot)} (written {_written(state, stamp)}) is older than the answer already applied "
        f"(written {_written(state, offer.answered)}), so it changed nothing: the later answer stands. If that is not "
        "what they meant, confirm with them."
    )


def _written(state: Round, stamp: datetime) -> str:
    local = stamp.astimezone(state.student_zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname() or ''}".rstrip()


def _stamped(state: Round, uid: str, stamp: datetime) -> Round:
    """``state`` with ``stamp`` kept as the newest applied answer's, when it is newer."""
    offer = state.offer(uid)
    if offer is None or (offer.answered is not None and offer.answered >= stamp):
        return state
    return _with(state, replace(offer, answered=stamp))


def _apply(state: Round, offer: Offer, reply: ItipObject, now: datetime, is_free: IsFree | None) -> Result:
    if reply.method == "COUNTER":
        return _counter(state, offer, reply, now, is_free)
    partstat = reply.partstat or "NEEDS-ACTION"
    if partstat == "ACCEPTED":
        if offer.status == "accepted":
            return state, (Ignored("already accepted"),)
        if offer.status == "sent" and offer.slot.utc_start <= instant(now):  # no meeting stands at a time gone by
            return state, (
                NotifyStudent(
                    f"{state.mentor.name} accepted {_when(state, offer.slot)}, but only after that time had begun: "
                    "no meeting was recorded. Confirm with them yourself, or propose another time."
                ),
            )
        return _accept(state, offer)
    if partstat == "DECLINED":
        if offer.status == "accepted":
            state = _with(state, replace(offer, status="declined", partstat=partstat))
            return state, (
                NotifyStudent(
                    f"{state.mentor.name} declined the agreed meeting, "
                    f"{_when(state, offer.slot)}. Remove it from your calendar."
                ),
            )
        if offer.status == "declined" and offer.partstat == "TENTATIVE":  # her final answer after a "tentative"
            return _with(state, replace(offer, partstat=partstat)), (
                NotifyStudent(f"{state.mentor.name} declined {_when(state, offer.slot)}."),
            )
        if offer.status != "sent":
            return state, (Ignored(f"declined an offer that is already {offer.status}"),)
        state = _with(state, replace(offer, status="declined", partstat=partstat))
        state, actions = _advance(state, now, is_free)
        return state, (NotifyStudent(f"{state.mentor.name} declined {_when(state, offer.slot)}."), *actions)
    if partstat == "TENTATIVE":
        if offer.status == "accepted":  # a late copy of an earlier answer, or she is less sure now: told, unchanged
            return state, (
                NotifyStudent(
                    f"{state.mentor.name} answered “tentative” for {_when(state, offer.slot)}, after accepting it: "
                    "the meeting stands as agreed. Confirm with them if you are unsure."
                ),
            )
        if offer.status != "sent":
            return state, (
                NotifyStudent(
                    f"{state.mentor.name} answered “tentative” for {_when(state, offer.slot)}, an offer already "
                    f"{offer.status}: nothing was changed. Confirm with them if you are unsure."
                ),
            )
        state = _with(state, replace(offer, partstat=partstat))
        return state, (
            NotifyStudent(
                f"{state.mentor.name} tentatively accepted {_when(state, offer.slot)}; "
                "still waiting for a final answer."
            ),
        )
    return state, (Ignored(f"PARTSTAT {partstat} changes nothing"),)


def send_by(state: Round, offer: Offer) -> datetime:
    """The last instant at which ``offer``'s REQUEST may still leave: its start less ``min_notice`` (UTC)."""
    return after(offer.slot.utc_start, -state.rules.min_notice)


def withdraw_late(state: Round, uid: str, now: datetime, *, is_free: IsFree | None = None) -> Result:
    """The REQUEST for ``uid`` has not left and cannot leave by :func:`send_by` (the pacing holds it later, or the
    moment passed): never sent late, the offer is withdrawn (the student told); a next time is offered when the
    round does that (sequential)."""
    offer = state.offer(uid)
    if offer is None or offer.status != "planned":
        return state, ()
    state, notice = _late(state, offer)
    state, more = _advance(state, now, is_free)
    return state, (notice, *more)


def _late(state: Round, offer: Offer) -> tuple[Round, NotifyStudent]:
    state, _ = _withdraw(state, offer)  # never sent: no CANCEL (mark_sent makes one if it left after all)
    return state, NotifyStudent(
        f"The invitation to {state.mentor.name} for {_when(state, offer.slot)} could not leave "
        f"{format_duration(state.rules.min_notice)} or more before the meeting (the notice agreed for meetings): "
        "the e-mail pace held it until later. Rather than arrive late, it was not sent and the offer is withdrawn."
    )


def expire(state: Round, now: datetime, *, is_free: IsFree | None = None) -> Result:
    """Offers unanswered for ``reply_timeout`` since they were sent count as declined and are withdrawn; an
    offer whose REQUEST has not left by its start less ``min_notice`` is withdrawn unsent (:func:`withdraw_late`)."""
    timeout: timedelta = state.rules.reply_timeout
    actions: list[Action] = []
    for offer in state.offers:
        if offer.status == "planned" and send_by(state, offer) < instant(now):
            state, notice = _late(state, offer)
            actions.append(notice)
            continue
        if offer.status == "sent" and offer.sent_at is not None and after(offer.sent_at, timeout) <= instant(now):
            state, withdrawn = _withdraw(state, offer, "expired")
            actions += [
                *withdrawn,
                NotifyStudent(
                    f"No answer from {state.mentor.name} about {_when(state, offer.slot)}; the offer was withdrawn."
                ),
            ]
    if actions:
        state, more = _advance(state, now, is_free)
        actions += more
    return state, tuple(actions)


def cancel_round(state: Round) -> Result:
    """The student calls the round off: withdraw every open offer."""
    actions: list[Action] = []
    for offer in state.offers:
        if offer.status in ("planned", "sent"):
            state, withdrawn = _withdraw(state, offer)
            actions += withdrawn
    return replace(state, pending=()), tuple(actions)
