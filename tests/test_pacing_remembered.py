"""Engine.earliest remembers each rule's answer at an instant within one call (a backlog's plan asked every rule
about fourteen times a message, five of them again at the same instant): the plans must be the ones it made when it
asked each time."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from agent.rules.pacing import Engine, History, Queued, Reply, SentItem
from agent.rules.policy import Policy
from agent.rules.simulate import Event
from tests.test_pacing_properties import scenarios


class Asking(Engine):
    """The engine as it was: every rule asked again at every step."""

    def _asked(self, rule: str, t: datetime, asked: dict[tuple[str, datetime], datetime | None]) -> datetime | None:
        return self._next_ok(rule, t)


@given(scenarios(), st.integers(0, 8), st.booleans())
def test_remembered_answers_make_the_same_plan(scenario: tuple[Policy, list[Event]], gone: int, grouped: bool) -> None:
    policy, events = scenario
    sends = [e for e in events if e.type == "send"]
    sent, waiting = sends[:gone], sends[gone:]
    now = max(e.at for e in events)
    history = History(
        sent=tuple(SentItem(e.at, (e.id,), follow_up=index % 3 == 2) for index, e in enumerate(sent)),
        replies=tuple(Reply(e.at, e.to) for e in events if e.type == "reply"),
    )
    queue = [
        Queued(e.id, e.at, e.subject, standalone=index % 4 == 3, group="g" if grouped else e.id)
        for index, e in enumerate(waiting)
    ]
    for moment in (sends[0].at, now):
        assert Engine(policy, history).plan(queue, moment) == Asking(policy, history).plan(queue, moment)
        assert Engine(policy, history).earliest(moment, now) == Asking(policy, history).earliest(moment, now)
