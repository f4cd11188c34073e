"""Property tests for the pacing engine, checked against an oracle written independently of it.

Every input time, window edge, gap and follow-up delay sits on a 15-minute grid (and every zone used here has
offsets in whole quarter hours), so every instant at which a rule can change its answer is on the UTC
15-minute grid. "Earliest" can then be checked exhaustively: no grid point between the moment a message
could first have gone and the moment it went would have been allowed by the state known at that point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from agent.rules.pacing import Engine, History, Queued, Reply, SentItem
from agent.rules.policy import Policy
from agent.rules.simulate import Event, Outcome, simulate
from agent.rules.windows import WeeklySchedule, WeeklyWindow

QUARTER = timedelta(minutes=15)
ZONES = [
    "America/Chicago",
    "Europe/London",
    "Australia/Lord_Howe",  # half-hour DST shift
    "America/Santiago",  # DST changes at midnight
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with DST
    "UTC",
]
# Days around DST changes in 2026 (northern and southern hemisphere).
ANCHORS = [
    datetime(2026, 3, 6, tzinfo=UTC),
    datetime(2026, 3, 27, tzinfo=UTC),
    datetime(2026, 4, 2, tzinfo=UTC),
    datetime(2026, 9, 3, tzinfo=UTC),
    datetime(2026, 10, 1, tzinfo=UTC),
    datetime(2026, 10, 23, tzinfo=UTC),
    datetime(2026, 10, 30, tzinfo=UTC),
]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    end: time

    @property
    def spec(self) -> str:
        return f"{','.join(DAYS[d] for d in sorted(self.days))} {self.start:%H:%M}-{self.end:%H:%M}"


@st.composite
def windows(draw: st.DrawFn) -> Window:
    # Kept between 05:00 and 22:00 local, away from the hours in which clocks jump, so a wall-clock test of
    # "inside the window" is exact.
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1, max_size=7)))
    start = draw(st.integers(5 * 4, 20 * 4))
    length = draw(st.integers(1, 8 * 4))
    end = min(start + length, 22 * 4)
    return Window(days, time(start // 4, start % 4 * 15), time(end // 4, end % 4 * 15))


def _apart(drawn: list[Window]) -> list[Window]:
    """The drawn windows without those that overlap an earlier one: a policy may not write an hour twice."""
    kept: list[Window] = []
    for window in drawn:
        if not any(
            window.days & other.days and window.start < other.end and other.start < window.end for other in kept
        ):
            kept.append(window)
    return kept


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, list[Event]]:
    zone = draw(st.sampled_from(ZONES))
    per_day = draw(st.integers(1, 3))
    policy = Policy.model_validate(
        {
            "mentor": {"name": "Dr. Test", "addresses": ["t@example.org"], "timezone": zone},
            "email": {
                "max_per_day": per_day,
                "max_per_week": draw(st.integers(per_day, 8)),  # a day's cap above the week's is refused
                "min_gap": f"{draw(st.integers(0, 32)) * 15}m",
                "send_windows": [w.spec for w in _apart(draw(st.lists(windows(), min_size=1, max_size=3)))],
                "max_unanswered": draw(st.integers(1, 3)),
                "follow_up_after": f"{draw(st.integers(1, 4 * 24 * 4)) * 15}m",
                "over_limit": draw(st.sampled_from(["delay", "batch"])),
            },
        }
    )
    start = draw(st.sampled_from(ANCHORS))
    offsets = sorted(draw(st.lists(st.integers(0, 7 * 24 * 4), min_size=1, max_size=8)))
    events = [
        Event(at=start + offset * QUARTER, type="send", id=f"m{index}", subject=f"s{index}")
        for index, offset in enumerate(offsets)
    ]
    for _ in range(draw(st.integers(0, 3))):
        to = draw(st.integers(0, len(events) - 1))
        at = start + draw(st.integers(0, 9 * 24 * 4)) * QUARTER
        events.append(Event(at=at, type="reply", to=f"m{to}"))
    events.sort(key=lambda e: e.at)
    return policy, events


@dataclass
class Item:
    at: datetime
    ids: frozenset[str]
    follow_up: bool


class Oracle:
    """The rules, written again from the policy text, judging one instant against what was known then."""

    def __init__(self, policy: Policy, events: list[Event]) -> None:
        self.policy = policy
        self.zone = ZoneInfo(policy.mentor.timezone.key)
        self.replies = [e for e in events if e.type == "reply"]
        self.items: list[Item] = []

    def in_window(self, t: datetime) -> bool:
        local = t.astimezone(self.zone)
        for spec in self.policy.email.send_windows:
            if (
                local.weekday() in spec.days
                and spec.start <= local.time()
                and (spec.end is None or local.time() < spec.end)
            ):
                return True
        return False

    def unanswered(self, t: datetime, before: list[Item]) -> list[Item]:
        answered = -1
        for reply in self.replies:
            if reply.at > t:
                continue
            for index, item in enumerate(before):
                # What happens at one instant is taken before what goes then (as simulate and the minute-by-minute
                # reference do): a reply dated the instant a message went does not answer it.
                if reply.to in item.ids and item.at < reply.at:
                    answered = max(answered, index)
        return before[answered + 1 :]

    def allowed(self, t: datetime) -> tuple[bool, bool]:
        """Whether a new item could go at ``t``, and whether it would be the follow-up."""
        rules = self.policy.email
        before = [item for item in self.items if item.at <= t]
        local = t.astimezone(self.zone)
        same_day = [i for i in before if i.at.astimezone(self.zone).date() == local.date()]
        same_week = [i for i in before if i.at.astimezone(self.zone).isocalendar()[:2] == local.isocalendar()[:2]]
        if len(same_day) >= rules.max_per_day or len(same_week) >= rules.max_per_week:
            return False, False
        if before and t - before[-1].at < rules.min_gap:
            return False, False
        if not self.in_window(t):
            return False, False
        waiting = self.unanswered(t, before)
        if len(waiting) < rules.max_unanswered:
            return True, False
        if any(i.follow_up for i in waiting) or t < waiting[-1].at + rules.follow_up_after:
            return False, False
        return True, True


def grid(start: datetime, end: datetime) -> list[datetime]:
    first = datetime.fromtimestamp(-(-start.timestamp() // 900) * 900, UTC)
    points = [start] if start != first else []
    moment = first
    while moment < end:
        points.append(moment)
        moment += QUARTER
    return points


def items_of(outcomes: list[Outcome]) -> list[tuple[datetime, list[Outcome]]]:
    sent: dict[tuple[datetime, str], list[Outcome]] = {}
    for o in outcomes:
        if o.sent_at is not None:  # in UTC: two times of one zone compare and subtract by their wall readings
            sent.setdefault((o.sent_at.astimezone(UTC), o.digest or o.id), []).append(o)
    return [(at, members) for (at, _), members in sorted(sent.items(), key=lambda kv: kv[0][0])]


@given(scenarios())
def test_every_send_keeps_every_rule_and_is_the_earliest(scenario: tuple[Policy, list[Event]]) -> None:
    policy, events = scenario
    outcomes = simulate(policy, events)
    oracle = Oracle(policy, events)
    previous: datetime | None = None
    for at, members in items_of(outcomes):
        ok, follow_up = oracle.allowed(at)
        assert ok, f"{[m.id for m in members]} went at {at.isoformat()}, which the rules forbid"
        # Earliest: from when it could first have gone (it had arrived, and everything before it had gone),
        # no grid point was allowed by what was known at that point.
        start = max(m.dropped for m in members) if len(members) == 1 else min(m.dropped for m in members)
        if previous is not None:
            start = max(start, previous)
        for point in grid(start, at):
            assert not oracle.allowed(point)[0], (
                f"{[m.id for m in members]} went at {at.isoformat()} but could have gone at {point.isoformat()}"
            )
        oracle.items.append(Item(at, frozenset(m.id for m in members), follow_up))
        previous = at


@given(scenarios())
def test_first_in_first_out_and_digests_count_once(scenario: tuple[Policy, list[Event]]) -> None:
    policy, events = scenario
    outcomes = simulate(policy, events)
    by_time = sorted((o for o in outcomes if o.sent_at), key=lambda o: (o.dropped, o.id))
    times = [o.sent_at.astimezone(UTC) for o in by_time if o.sent_at]
    assert times == sorted(times), "a later message overtook an earlier one"
    held_from = [o.dropped for o in outcomes if o.sent_at is None]
    if held_from:
        assert all(o.dropped <= min(held_from) for o in outcomes if o.sent_at), "sent one while an older waits"
    if policy.email.over_limit == "delay":
        assert all(o.digest is None for o in outcomes)
    for _, members in items_of(outcomes):
        assert len({m.digest for m in members}) == 1
        assert (len(members) > 1) == (members[0].digest is not None)


@given(scenarios())
def test_every_message_has_a_reason(scenario: tuple[Policy, list[Event]]) -> None:
    policy, events = scenario
    for outcome in simulate(policy, events):
        assert outcome.reason
        if outcome.sent_at is None:
            assert "held" in outcome.reason


@given(
    zone=st.sampled_from(ZONES),
    spans=st.lists(
        st.tuples(st.sets(st.integers(0, 6), min_size=1), st.integers(0, 95), st.integers(1, 96)),
        min_size=1,
        max_size=3,
    ),
    anchor=st.sampled_from(ANCHORS),
    offset=st.integers(0, 9 * 24 * 60),
)
def test_next_open_is_the_start_of_the_first_interval_at_or_after_the_moment(
    zone: str, spans: list[tuple[set[int], int, int]], anchor: datetime, offset: int
) -> None:
    """next_open answers day by day; intervals() merges: both must agree, whole days and DST nights included."""
    specs = []
    for days, start, length in spans:
        end = start + length
        closing = "24:00" if end >= 96 else f"{end // 4:02d}:{end % 4 * 15:02d}"
        specs.append(f"{','.join(DAYS[d] for d in sorted(days))} {start // 4:02d}:{start % 4 * 15:02d}-{closing}")
    schedule = WeeklySchedule.of([WeeklyWindow.parse(spec) for spec in specs], ZoneInfo(zone))
    moment = anchor + timedelta(minutes=offset)
    within = timedelta(days=15)
    first = next(iter(schedule.intervals(moment, moment + within)), None)
    expected = max(first[0], moment) if first is not None else None
    assert schedule.next_open(moment, within=within) == expected


def _daemon_with_splits(policy: Policy, events: list[Event], splits: list[int]) -> list[SentItem]:
    """The daemon's loop on the virtual clock: the engine decides the first release from scratch; when it is due,
    the release goes as ``splits[i]`` e-mails (a digest split by ``[digest] max_bytes``, originals alone), of which
    only :meth:`Engine.room` go; the rest wait in the queue. Returns every e-mail the mentor received."""
    arrivals = [e for e in events if e.type == "send"]
    replies = [Reply(e.at, e.to or "") for e in events if e.type == "reply"]
    sent: list[SentItem] = []
    queue: list[Queued] = []
    now = arrivals[0].at
    for step in range(200):
        queue += [
            Queued(e.id or "", e.at, e.subject) for e in arrivals if e.at <= now and e.id not in _seen(queue, sent)
        ]
        history = History(tuple(sent), tuple(r for r in replies if r.at <= now))
        head = Engine(policy, history).next_group(queue, now)
        later = [e.at for e in (*arrivals, *[Event(at=r.at, type="reply", to=r.to) for r in replies]) if e.at > now]
        if not head or head[0].at is None or (later and min(later) < head[0].at):
            if not later:
                break
            now = min(later)
            continue
        now = head[0].at
        ids = [d.id for d in head]
        count = max(1, min(len(ids), splits[step % len(splits)]))
        parts = [ids[index::count] for index in range(count)]
        fit = Engine(policy, history).room(now, count, follow_up=head[0].follow_up)
        for index, part in enumerate(parts[:fit]):
            sent.append(SentItem(now, tuple(part), head[0].follow_up and index == 0))
        gone = {ident for part in parts[:fit] for ident in part}
        queue = [q for q in queue if q.id not in gone]
    return sent


def _seen(queue: list[Queued], sent: list[SentItem]) -> set[str]:
    return {q.id for q in queue} | {ident for item in sent for ident in item.ids}


@given(scenarios(), st.lists(st.integers(1, 4), min_size=1, max_size=5))
def test_split_digests_keep_the_day_limit_and_the_gap(scenario: tuple[Policy, list[Event]], splits: list[int]) -> None:
    """Issue 20: every e-mail the mentor receives counts, the parts of a split digest included: never more than
    max_per_day on one of her days (max_per_week in a week), consecutive e-mails min_gap apart, all in a window."""
    policy, events = scenario
    rules = policy.email
    oracle = Oracle(policy, events)
    sent = _daemon_with_splits(policy, events, splits)
    zone = oracle.zone
    days: dict[object, int] = {}
    weeks: dict[object, int] = {}
    for item in sent:
        local = item.at.astimezone(zone)
        days[local.date()] = days.get(local.date(), 0) + 1
        weeks[local.isocalendar()[:2]] = weeks.get(local.isocalendar()[:2], 0) + 1
        assert oracle.in_window(item.at), f"{item.ids} went at {item.at.isoformat()}, outside her windows"
    assert max(days.values(), default=0) <= rules.max_per_day, days
    assert max(weeks.values(), default=0) <= rules.max_per_week, weeks
    for before, after in pairwise(sent):
        assert after.at - before.at >= rules.min_gap, f"{before.ids} then {after.ids}: closer than min_gap"
