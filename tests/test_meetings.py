"""The offer state machine: accept, decline, timeout, counter, and replies that must change nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from agent.cli.meetings import register
from agent.rules.invites import ItipObject, Party, parse_itip
from agent.rules.meetings import (
    Action,
    Ignored,
    NotifyStudent,
    RecordMeeting,
    Round,
    SendCancel,
    SendInvite,
    SendStudentCopy,
    apply_reply,
    cancel_round,
    expire,
    mark_sent,
    send_by,
    start_round,
    withdraw_late,
)
from agent.rules.policy import MeetingRules
from agent.rules.slots import find_slots
from tests.agent_process import parse as parse_message

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
MENTOR = Party("Dr. Ana Rivera", "arivera@hospital.example.org")
STUDENT = Party("Jürgen Müller", "juergen@uni.example")
FROM = "Ana Rivera <ARivera@Hospital.example.org>"


def rules(**changes: Any) -> MeetingRules:
    data: dict[str, Any] = {
        "windows": ["Tue 16:00-17:00", "Thu 07:00-08:00"],
        "proposals": 3,
        "strategy": "sequential",
        "reply_timeout": "3d",
    }
    data.update(changes)
    return MeetingRules.model_validate(data)


def begin(**changes: Any) -> tuple[Round, tuple[Action, ...]]:
    policy = rules(**changes)
    slots = find_slots(policy, CHICAGO, NOW, busy=[])
    return start_round(
        policy,
        CHICAGO,
        mentor=MENTOR,
        student=STUDENT,
        student_zone=BERLIN,
        slots=slots,
        round_id="r1",
        domain="uni.example",
    )


def sent_all(state: Round) -> Round:
    for offer in state.offers:
        state, _ = mark_sent(state, offer.uid, NOW)
    return state


def reply(
    uid: str,
    partstat: str = "ACCEPTED",
    *,
    sequence: int = 0,
    attendee: str = MENTOR.address,
    method: str = "REPLY",
    organizer: str | None = STUDENT.address,
    **extra: Any,
) -> ItipObject:
    return ItipObject(
        method=method, uid=uid, sequence=sequence, organizer=organizer, attendees=((attendee, partstat),), **extra
    )


def kinds(actions: tuple[Action, ...]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_sequential_offers_one_slot_naming_the_others() -> None:
    state, actions = begin()
    (invite,) = actions
    assert isinstance(invite, SendInvite)
    assert invite.uid == "r1-0@uni.example" and invite.sequence == 0
    assert len(invite.alternatives) == 2 and state.pending == invite.alternatives
    assert state.outcome == "open" and state.offers[0].status == "planned"


def test_accept_records_copies_and_notifies() -> None:
    state = sent_all(begin()[0])
    uid = state.offers[0].uid
    state, actions = apply_reply(state, reply(uid), FROM, "mx.example; dkim=pass; dmarc=pass", NOW)
    assert kinds(actions) == ["RecordMeeting", "SendStudentCopy", "NotifyStudent"]
    assert actions[0] == RecordMeeting(uid, state.offers[0].slot)
    assert actions[1] == SendStudentCopy(uid, 0, state.offers[0].slot)
    assert state.outcome == "agreed" and state.pending == ()
    assert apply_reply(state, reply(uid), FROM, None, NOW)[1] == (Ignored("already accepted"),)


def test_holds_cancel_the_other_offers_only_after_they_were_sent() -> None:
    state, actions = begin(strategy="holds")
    assert kinds(actions) == ["SendInvite"] * 3
    first, second, third = (a.uid for a in actions if isinstance(a, SendInvite))
    state, _ = mark_sent(state, first, NOW)
    state, _ = mark_sent(state, second, NOW)
    state, actions = apply_reply(state, reply(first), FROM, None, NOW)
    cancels = [a for a in actions if isinstance(a, SendCancel)]
    assert cancels == [SendCancel(second, 1, state.offers[1].slot)]  # the third never left: no CANCEL yet
    assert [o.status for o in state.offers] == ["accepted", "cancelled", "cancelled"]
    state, actions = mark_sent(state, third, NOW)  # it did leave after all
    assert actions == (SendCancel(third, 1, state.offers[2].slot),)
    assert mark_sent(state, third, NOW)[1] == ()


def test_decline_offers_the_next_slot_until_the_budget_ends() -> None:
    state = sent_all(begin(proposals=2)[0])
    first = state.offers[0]
    state, actions = apply_reply(state, reply(first.uid, "DECLINED"), FROM, None, NOW)
    invite = next(a for a in actions if isinstance(a, SendInvite))
    assert invite.uid == "r1-1@uni.example" and invite.uid != first.uid
    assert not any(isinstance(a, SendCancel) for a in actions)
    state = sent_all(state)
    state, actions = apply_reply(state, reply(invite.uid, "DECLINED"), FROM, None, NOW)
    assert kinds(actions) == ["NotifyStudent", "NotifyStudent"]
    assert "No meeting agreed" in actions[-1].text  # type: ignore[union-attr]
    assert state.outcome == "closed"


def test_next_slot_is_skipped_when_no_longer_free() -> None:
    state = sent_all(begin()[0])
    taken = state.pending[0]
    state, actions = apply_reply(
        state,
        reply(state.offers[0].uid, "DECLINED"),
        FROM,
        None,
        NOW,
        is_free=lambda start, end: not taken.overlaps(start, end),
    )
    invite = next(a for a in actions if isinstance(a, SendInvite))
    assert invite.slot != taken


def test_timeout_withdraws_and_offers_the_next() -> None:
    state = sent_all(begin()[0])
    assert expire(state, NOW + timedelta(days=2))[1] == ()
    state, actions = expire(state, NOW + timedelta(days=3))
    assert kinds(actions)[:3] == ["SendCancel", "NotifyStudent", "SendInvite"]
    assert state.offers[0].status == "expired" and state.offers[0].sequence == 1
    # a late acceptance of the withdrawn offer is passed to the student, not applied
    late, actions = apply_reply(state, reply(state.offers[0].uid, sequence=1), FROM, None, NOW)
    assert late == state and kinds(actions) == ["NotifyStudent"]


def test_an_invitation_not_sent_by_start_less_min_notice_is_withdrawn_never_sent_late() -> None:
    """Issue 20: an offer whose REQUEST has not left (held by the e-mail pace) by its start less min_notice
    is withdrawn, unsent (no CANCEL for what never left), the student told; the next time is offered."""
    state, _ = begin()
    offer = state.offers[0]
    deadline = send_by(state, offer)
    assert deadline == offer.slot.utc_start - state.rules.min_notice
    assert expire(state, deadline)[1] == (), "at the deadline itself it may still leave"
    state, actions = expire(state, deadline + timedelta(minutes=1))
    assert state.offers[0].status == "cancelled" and not state.offers[0].ever_sent
    assert kinds(actions) == ["NotifyStudent", "SendInvite", "NotifyStudent"]
    assert "withdrawn" in str(actions[0]) and "not sent" in str(actions[0])
    assert isinstance(actions[1], SendInvite) and actions[1].slot.utc_start > offer.slot.utc_start
    # It left after all (SMTP took it in the same moment): its CANCEL follows, as for any withdrawn offer.
    _, after_all = mark_sent(state, offer.uid, deadline)
    assert kinds(after_all) == ["SendCancel"]


def test_withdraw_late_is_the_same_when_the_pace_puts_the_send_after_the_deadline() -> None:
    state, _ = begin(strategy="holds")
    late, actions = withdraw_late(state, state.offers[1].uid, NOW)
    assert [o.status for o in late.offers] == ["planned", "cancelled", "planned"]
    assert kinds(actions) == ["NotifyStudent"], "the other offers stand: the round is still open"
    assert withdraw_late(late, state.offers[1].uid, NOW)[1] == (), "once"


def test_tentative_keeps_waiting() -> None:
    state = sent_all(begin()[0])
    after, actions = apply_reply(state, reply(state.offers[0].uid, "TENTATIVE"), FROM, None, NOW)
    assert kinds(actions) == ["NotifyStudent"] and after.offers[0].status == "sent"


def test_counter_inside_windows_and_free_updates_the_invitation() -> None:
    state = sent_all(begin()[0])
    offer = state.offers[0]
    start = datetime(2026, 3, 17, 16, 30, tzinfo=CHICAGO)  # a Tuesday window
    counter = reply(
        offer.uid,
        "NEEDS-ACTION",
        method="COUNTER",
        start=start.astimezone(UTC),
        end=(start + timedelta(minutes=30)).astimezone(UTC),
    )
    after, actions = apply_reply(state, counter, FROM, None, NOW, is_free=lambda s, e: True)
    invite = actions[0]
    assert isinstance(invite, SendInvite)
    assert (invite.uid, invite.sequence, invite.slot.start) == (offer.uid, 1, start)
    assert after.offers[0].status == "planned"
    # a clash or a time outside the windows goes to the student instead
    clash = apply_reply(state, counter, FROM, None, NOW, is_free=lambda s, e: False)
    assert clash[0] == state and kinds(clash[1]) == ["NotifyStudent"]
    outside = reply(
        offer.uid,
        method="COUNTER",
        start=datetime(2026, 3, 17, 20, 0, tzinfo=UTC),
        end=datetime(2026, 3, 17, 20, 30, tzinfo=UTC),
    )
    result = apply_reply(state, outside, FROM, None, NOW)
    assert result[0] == state and "outside the agreed meeting windows" in result[1][0].text  # type: ignore[union-attr]


SPOOFS: dict[str, tuple[ItipObject | None, str, str | None]] = {
    "other sender": (None, "mallory@evil.example", None),
    "sender lookalike": (None, "arivera@hospital.example.org.evil.example", None),
    "dkim fail": (None, FROM, "mx.uni.example; dkim=fail (bad signature); dmarc=pass"),
    "dmarc fail": (None, FROM, "mx.uni.example; spf=pass; DMARC=FAIL header.from=hospital.example.org"),
    "uninvited attendee": (reply("r1-0@uni.example", attendee="mallory@evil.example"), "mallory@evil.example", None),
    "unknown uid": (reply("other@uni.example"), FROM, None),
    "two attendees": (
        ItipObject("REPLY", "r1-0@uni.example", 1, None, ((MENTOR.address, "ACCEPTED"), ("x@y.example", "ACCEPTED"))),
        FROM,
        None,
    ),
    "not a reply": (reply("r1-0@uni.example", method="REQUEST"), FROM, None),
    "foreign organizer": (reply("r1-0@uni.example", sequence=1, organizer="x@y.example"), FROM, None),
}


@pytest.mark.parametrize("name", sorted(SPOOFS))
def test_spoofed_or_stale_replies_change_nothing(name: str) -> None:
    state = sent_all(begin()[0])
    state = replace(state, offers=(replace(state.offers[0], sequence=1),))
    given_reply, sender, auth = SPOOFS[name]
    after, actions = apply_reply(state, given_reply or reply("r1-0@uni.example", sequence=1), sender, auth, NOW)
    assert after == state
    assert len(actions) == 1 and isinstance(actions[0], Ignored)


def test_reply_to_an_offer_never_sent_changes_nothing() -> None:
    state, _ = begin()
    after, actions = apply_reply(state, reply("r1-0@uni.example"), FROM, None, NOW)
    assert after == state and isinstance(actions[0], Ignored)


def test_cancel_round_withdraws_only_what_left() -> None:
    state, _ = begin(strategy="holds")
    state, _ = mark_sent(state, state.offers[0].uid, NOW)
    state, actions = cancel_round(state)
    assert kinds(actions) == ["SendCancel"] and state.outcome == "closed"


def test_empty_round_tells_the_student() -> None:
    state, actions = start_round(
        rules(),
        CHICAGO,
        mentor=MENTOR,
        student=STUDENT,
        student_zone=BERLIN,
        slots=[],
        round_id="r",
        domain="uni.example",
    )
    assert state.outcome == "closed" and isinstance(actions[0], NotifyStudent)


# -- property: a CANCEL never precedes its REQUEST, whatever happens in whatever order ---------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["sent", "ACCEPTED", "DECLINED", "TENTATIVE", "expire", "spoof", "cancel"]),
        st.integers(0, 3),
        st.integers(0, 8),
    ),
    max_size=25,
)


@given(st.sampled_from(["sequential", "holds"]), EVENTS)
def test_cancel_only_after_smtp_accepted_the_request(strategy: str, events: list[tuple[str, int, int]]) -> None:
    state, actions = begin(strategy=strategy)
    requested: set[str] = set()
    in_flight = {a.uid for a in actions if isinstance(a, SendInvite)}
    clock = NOW
    for kind, index, days in events:
        clock += timedelta(days=days)
        uids = [o.uid for o in state.offers]
        uid = uids[index % len(uids)]
        if kind == "sent":
            if uid not in in_flight:
                continue
            requested.add(uid)
            state, actions = mark_sent(state, uid, clock)
        elif kind == "expire":
            state, actions = expire(state, clock)
        elif kind == "cancel":
            state, actions = cancel_round(state)
        elif kind == "spoof":
            before = state
            state, actions = apply_reply(state, reply(uid), "mallory@evil.example", None, clock)
            assert state == before
        else:
            offer = state.offer(uid)
            assert offer is not None
            state, actions = apply_reply(state, reply(uid, kind, sequence=offer.sequence), FROM, None, clock)
        for action in actions:
            if isinstance(action, SendCancel):
                assert action.uid in requested, "CANCEL before its REQUEST left"
            if isinstance(action, SendInvite):
                in_flight.add(action.uid)
        assert sum(o.status == "accepted" for o in state.offers) <= 1
        assert len(state.offers) <= state.rules.proposals


# -- answers that come in another order than she wrote them (DTSTAMP, RFC 5546 §2.1.5) ---------------------

WROTE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # the day before NOW


def stamped(uid: str, partstat: str, minutes: int, **extra: Any) -> ItipObject:
    return reply(uid, partstat, stamp=WROTE + timedelta(minutes=minutes), **extra)


def test_an_earlier_decline_that_arrives_after_her_acceptance_changes_nothing_and_is_told() -> None:
    state = sent_all(begin()[0])
    uid = state.offers[0].uid
    state, _ = apply_reply(state, stamped(uid, "ACCEPTED", 60), FROM, None, NOW)
    after, actions = apply_reply(state, stamped(uid, "DECLINED", 0), FROM, None, NOW)
    assert after == state and after.outcome == "agreed"
    (told,) = actions
    assert isinstance(told, NotifyStudent)
    assert "answer “declined”" in told.text and "is older than the answer already applied" in told.text
    assert "later answer stands" in told.text
    assert "(written Sunday 1 March 2026, 10:00 CET)" in told.text  # when she wrote it, for the student (Berlin)
    assert "(written Sunday 1 March 2026, 11:00 CET)" in told.text
    # a late copy of the answer in force says nothing new
    assert apply_reply(state, stamped(uid, "ACCEPTED", 30), FROM, None, NOW) == (
        state,
        (Ignored("a late copy of the answer in force"),),
    )
    # her later decline still declines the agreed meeting
    later, actions = apply_reply(state, stamped(uid, "DECLINED", 120), FROM, None, NOW)
    assert later.offers[0].status == "declined" and "declined the agreed meeting" in actions[0].text  # type: ignore[union-attr]


def test_an_earlier_counter_that_arrives_after_her_acceptance_moves_nothing() -> None:
    state = sent_all(begin()[0])
    offer = state.offers[0]
    state, _ = apply_reply(state, stamped(offer.uid, "ACCEPTED", 60), FROM, None, NOW)
    start = datetime(2026, 3, 17, 16, 30, tzinfo=CHICAGO)
    counter = stamped(
        offer.uid,
        "NEEDS-ACTION",
        0,
        method="COUNTER",
        start=start.astimezone(UTC),
        end=(start + timedelta(minutes=30)).astimezone(UTC),
    )
    after, actions = apply_reply(state, counter, FROM, None, NOW, is_free=lambda s, e: True)
    assert after == state and kinds(actions) == ["Belated"]
    assert "proposed another time, Tuesday 17 March 2026, 22:30–23:00 CET" in actions[0].text  # type: ignore[union-attr]


def test_answers_without_dtstamp_or_with_the_same_one_go_by_arrival_as_before() -> None:
    state = sent_all(begin()[0])
    uid = state.offers[0].uid
    state, _ = apply_reply(state, reply(uid), FROM, None, NOW)
    after, actions = apply_reply(state, reply(uid, "DECLINED"), FROM, None, NOW)
    assert after.offers[0].status == "declined" and "declined the agreed meeting" in actions[0].text  # type: ignore[union-attr]
    state = sent_all(begin()[0])
    state, _ = apply_reply(state, stamped(uid, "ACCEPTED", 0), FROM, None, NOW)
    after, _ = apply_reply(state, stamped(uid, "DECLINED", 0), FROM, None, NOW)  # the same second: arrival decides
    assert after.offers[0].status == "declined"


def test_the_newest_answer_is_kept_with_the_round_in_the_store() -> None:
    from agent.store.rounds import round_from_json, round_to_json

    state = sent_all(begin()[0])
    uid = state.offers[0].uid
    state, _ = apply_reply(state, stamped(uid, "ACCEPTED", 60), FROM, None, NOW)
    data = round_to_json(state)
    assert round_from_json(data) == state
    after, actions = apply_reply(round_from_json(data), stamped(uid, "DECLINED", 0), FROM, None, NOW)
    assert after.outcome == "agreed" and kinds(actions) == ["Belated"]
    for offer in data["offers"]:  # a round stored before answers were ordered
        del offer["answered"]
    assert round_from_json(data).offers[0].answered is None


def test_dtstamp_is_read_and_a_broken_one_does_not_lose_the_answer() -> None:
    def itip(stamp_line: str) -> bytes:
        return (
            "Content-Type: text/calendar; method=REPLY\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REPLY\r\n"
            f"BEGIN:VEVENT\r\nUID:r1-0@uni.example\r\n{stamp_line}DTSTART:20260310T210000Z\r\n"
            f"ATTENDEE;PARTSTAT=DECLINED:mailto:{MENTOR.address}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()

    (read,) = parse_itip(itip("DTSTAMP:20260303T100000Z\r\n"))
    assert read.stamp == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    for broken in ("DTSTAMP:yesterday\r\n", "DTSTAMP;VALUE=DATE:20260303\r\n", "DTSTAMP:20260303T100000\r\n", ""):
        (unordered,) = parse_itip(itip(broken))
        assert unordered.partstat == "DECLINED" and unordered.stamp is None, broken


def test_a_stamp_no_clock_can_have_written_does_not_order_her_answers() -> None:
    """Year 1 (.NET's empty date), year 9999, or a phone's clock set years ahead: such a DTSTAMP neither outranks
    her real later answer nor is one to compare with (formatting year 1 in her zone raised OverflowError)."""
    for bad in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC), NOW + timedelta(days=9)):
        state = sent_all(begin()[0])
        uid = state.offers[0].uid
        state, _ = apply_reply(state, reply(uid, stamp=bad), FROM, None, NOW)  # accepted, its stamp not kept
        assert state.outcome == "agreed" and state.offers[0].answered is None, bad
        later, actions = apply_reply(state, stamped(uid, "DECLINED", 60), FROM, None, NOW)
        assert later.offers[0].status == "declined" and "declined the agreed meeting" in actions[0].text, bad  # type: ignore[union-attr]
        state, _ = apply_reply(state, stamped(uid, "ACCEPTED", 60), FROM, None, NOW)
        after, actions = apply_reply(state, reply(uid, "DECLINED", stamp=bad), FROM, None, NOW)
        assert after.offers[0].status == "declined", "unordered: it goes by arrival"


def test_her_answer_to_an_invitation_changed_since_is_told_when_it_is_at_odds() -> None:
    """The SEQUENCE check dropped her answer to an earlier version without a word: her decline of the time she
    counter-proposed, her acceptance of an offer withdrawn since (it expired, or another was agreed)."""
    state = sent_all(begin()[0])
    offer = state.offers[0]
    start = datetime(2026, 3, 17, 16, 30, tzinfo=CHICAGO)
    counter = reply(offer.uid, method="COUNTER", start=start.astimezone(UTC), end=(start + timedelta(minutes=30)))
    moved, _ = apply_reply(state, counter, FROM, None, NOW, is_free=lambda s, e: True)
    assert moved.offers[0].sequence == 1
    slot = offer.slot
    declined = reply(offer.uid, "DECLINED", sequence=0, start=slot.utc_start, end=slot.end.astimezone(UTC))
    after, actions = apply_reply(moved, declined, FROM, None, NOW)
    assert after == moved and kinds(actions) == ["Belated"]
    told = " ".join(actions[0].text.split())  # type: ignore[union-attr]
    assert "answered “declined” to an earlier version of the invitation (it said Thursday 5 March 2026" in told
    assert "it now offers Tuesday 17 March 2026, 22:30–23:00 CET" in told and "waits for their answer" in told
    # holds: B agreed (A withdrawn, SEQUENCE 1), then her acceptance of A arrives: told, nothing changed
    state, _ = begin(strategy="holds")
    state = sent_all(state)
    first, second = state.offers[0].uid, state.offers[1].uid
    agreed, _ = apply_reply(state, reply(second), FROM, None, NOW)
    after, actions = apply_reply(agreed, reply(first, sequence=0), FROM, None, NOW)
    assert after == agreed and kinds(actions) == ["Belated"] and "was withdrawn" in actions[0].text  # type: ignore[union-attr]
    # a decline of an offer withdrawn since says nothing new
    assert kinds(apply_reply(agreed, reply(first, "DECLINED", sequence=0), FROM, None, NOW)[1]) == ["Ignored"]


def test_an_answer_applied_without_a_usable_stamp_leaves_none_to_compare_with() -> None:
    """Accepted (stamped), then a decline with no stamp that counts, applied by arrival: an acceptance written before
    the first must not be told as "older than the answer already applied … the later answer stands" (the answer in
    force is the decline, of unknown time): it goes by arrival too."""
    for unusable in (None, datetime(1, 1, 1, tzinfo=UTC), NOW + timedelta(days=3)):
        state = sent_all(begin()[0])
        uid = state.offers[0].uid
        state, _ = apply_reply(state, stamped(uid, "ACCEPTED", 60), FROM, None, NOW)
        state, _ = apply_reply(state, reply(uid, "DECLINED", stamp=unusable), FROM, None, NOW)
        assert state.offers[0].status == "declined" and state.offers[0].answered is None
        after, actions = apply_reply(state, stamped(uid, "ACCEPTED", 30), FROM, None, NOW)
        assert after.offers[0].status == "declined" and "already withdrawn (declined)" in actions[0].text  # type: ignore[union-attr]


def test_a_counter_that_changed_nothing_does_not_outrank_her_earlier_acceptance() -> None:
    state = sent_all(begin()[0])
    offer = state.offers[0]
    outside = stamped(
        offer.uid,
        "NEEDS-ACTION",
        60,
        method="COUNTER",
        start=datetime(2026, 3, 17, 20, 0, tzinfo=UTC),
        end=datetime(2026, 3, 17, 20, 30, tzinfo=UTC),
    )
    state, actions = apply_reply(state, outside, FROM, None, NOW)
    assert "outside the agreed meeting windows" in actions[0].text and state.offers[0].answered is None  # type: ignore[union-attr]
    state, _ = apply_reply(state, stamped(offer.uid, "ACCEPTED", 0), FROM, None, NOW)
    assert state.outcome == "agreed"


def test_tentative_for_an_offer_already_closed_changes_nothing_and_says_so() -> None:
    state = sent_all(begin(strategy="holds", proposals=1)[0])
    uid = state.offers[0].uid
    declined, _ = apply_reply(state, reply(uid, "DECLINED"), FROM, None, NOW)
    after, actions = apply_reply(declined, reply(uid, "TENTATIVE"), FROM, None, NOW)
    assert after == declined and "an offer already declined: nothing was changed" in actions[0].text  # type: ignore[union-attr]


ORDERS = st.permutations(range(3))


@given(
    st.lists(st.sampled_from(["ACCEPTED", "DECLINED", "TENTATIVE"]), min_size=3, max_size=3),
    st.lists(st.integers(0, 5), min_size=3, max_size=3, unique=True),
    ORDERS,
)
def test_her_newest_answer_stands_or_the_student_is_told(
    partstats: list[str], minutes: list[int], order: list[int]
) -> None:
    """Three answers to one offer, written in one order and arriving in any: the offer ends with her newest answer,
    or the student was told of an answer that was not applied as it came."""
    state = sent_all(begin(strategy="holds", proposals=1)[0])
    uid = state.offers[0].uid
    told = False
    for index in order:
        state, actions = apply_reply(state, stamped(uid, partstats[index], minutes[index]), FROM, None, NOW)
        told = told or any(
            isinstance(action, NotifyStudent)
            and any(
                words in action.text for words in ("is older than", "withdrawn", "after accepting", "already declined")
            )
            for action in actions
        )
    newest = partstats[max(range(3), key=lambda index: minutes[index])]
    assert state.offers[0].partstat == newest or told, (partstats, minutes, order, state.offers[0])
    assert state.offers[0].answered in {WROTE + timedelta(minutes=m) for m in minutes}, "an applied answer's time"


# -- the commands ------------------------------------------------------------------------------------------

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def run(*args: str) -> Result:
    group = click.Group("mentor-agent")
    register(group)
    return CliRunner().invoke(group, list(args))


def test_slots_command_json_and_table() -> None:
    result = run("slots", str(POLICIES / "rivera.toml"), "--now", "2026-03-02T09:00-06:00", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0] == {"start": "2026-03-05T07:00:00-06:00", "end": "2026-03-05T07:30:00-06:00"}
    result = run(
        "slots",
        str(POLICIES / "rivera.toml"),
        "--now",
        "2026-03-02T09:00-06:00",
        "--count",
        "1",
        "--busy",
        str(Path(__file__).parent / "ics" / "student-busy.ics"),
    )
    assert result.exit_code == 0 and "Thursday 5 March 2026, 07:00–07:30 CST" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--now", "2026-03-02T09:00"), "no UTC offset"),
        (("--now", "yesterday"), "not an ISO-8601 time"),
        (("--busy", "/nonexistent.ics"), "cannot read"),
    ],
)
def test_slots_command_bad_input_is_a_clear_error(args: tuple[str, ...], message: str) -> None:
    result = run("slots", str(POLICIES / "rivera.toml"), *args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_propose_dry_run_writes_parseable_invites(tmp_path: Path) -> None:
    result = run(
        "propose",
        str(POLICIES / "okafor.toml"),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--now",
        "2026-03-02T09:00+00:00",
        "--student-name",
        "Jürgen Müller",
        "--student-address",
        "juergen@uni.example",
        "--student-tz",
        "Europe/Berlin",
        "--topic",
        "CV",
    )
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2  # okafor: "holds", two proposals
    parsed = [parse_itip(f.read_bytes())[0] for f in files]
    assert {p.method for p in parsed} == {"REQUEST"} and len({p.uid for p in parsed}) == 2
    assert all(p.attendee == "c.okafor@nhs.example.uk" for p in parsed)


def test_a_dry_run_writes_the_students_address_as_the_daemon_does(tmp_path: Path) -> None:
    """``--student-address`` in any spelling (case, a Unicode domain, a root dot) is the one address the daemon
    would use (normal_address): the ORGANIZER and the Message-ID's domain in ASCII, as what it sends."""
    result = run(
        "propose",
        str(POLICIES / "okafor.toml"),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--now",
        "2026-03-02T09:00+00:00",
        "--student-address",
        " Juergen@UNI-Bücher.Example. ",
        "--student-tz",
        "Europe/Berlin",
    )
    assert result.exit_code == 0, result.output
    for written in sorted(tmp_path.glob("*.eml")):
        (parsed,) = parse_itip(written.read_bytes())
        assert parsed.organizer == "juergen@xn--uni-bcher-u9a.example", parsed.organizer
        assert str(parse_message(written.read_bytes())["Message-ID"]).endswith("@xn--uni-bcher-u9a.example>")


def test_her_answer_from_her_domain_spelled_in_unicode_is_hers() -> None:
    """The policy keeps her address in ASCII (A-labels); her mail program may write From and ATTENDEE in
    Unicode, in any case, or percent-encoded in the mailto: URI: one address (normal_address)."""
    from agent.rules.invites.read import parse_itip as read_itip
    from tests.test_invites import gmail_reply, reply_ics

    state = replace(sent_all(begin()[0]), mentor=Party("Dr. Ana Rivera", "arivera@xn--hospitl-bxa.example.org"))
    uid = state.offers[0].uid
    for attendee in ("arivera@hospitäl.example.org", "ARivera@HOSPITÄL.example.org."):
        answer = reply(uid, attendee=attendee)
        _, actions = apply_reply(state, answer, "Ana Rivera <ARIVERA@Hospitäl.example.org>", None, NOW)
        assert kinds(actions) == ["RecordMeeting", "SendStudentCopy", "NotifyStudent"], actions
    ics = reply_ics().replace("ARivera@Hospital.example.org", "ARivera@hospit%C3%A4l.example.org")
    (parsed,) = read_itip(gmail_reply(ics))
    assert parsed.attendee == "arivera@xn--hospitl-bxa.example.org"
