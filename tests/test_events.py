"""The event hub (agent.reconcile.events): nobody listens by default, subscribers get events in order, a failing one
does not stop the publisher."""

from __future__ import annotations

import logging

import pytest

from agent.reconcile import events


def test_no_subscribers_by_default() -> None:
    assert events._subscribers == []
    events.publish(events.Notice("nobody hears this"))  # and nothing happens


def test_subscribers_receive_in_order_until_they_stop() -> None:
    first: list[events.Event] = []
    second: list[events.Event] = []
    stop = events.subscribe(first.append)
    with events.subscribed(second.append):
        events.publish(events.Cancelled("<a@x>", "taken out of Scheduled"))
    events.publish(events.Filed("<a@x>", "Sent"))
    stop()
    stop()  # twice is harmless
    events.publish(events.Notice("late"))
    assert first == [events.Cancelled("<a@x>", "taken out of Scheduled"), events.Filed("<a@x>", "Sent")]
    assert second == [events.Cancelled("<a@x>", "taken out of Scheduled")]
    assert events._subscribers == []


def test_a_failing_subscriber_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[events.Event] = []

    def broken(event: events.Event) -> None:
        raise RuntimeError("bug in a listener")

    with events.subscribed(broken), events.subscribed(heard.append), caplog.at_level(logging.ERROR):
        events.publish(events.Notice("still delivered"))
    assert heard == [events.Notice("still delivered")]
    assert "an event subscriber failed on Notice" in caplog.text


def test_events_are_frozen() -> None:
    notice = events.Notice("x")
    with pytest.raises(AttributeError):
        notice.title = "y"  # type: ignore[misc]
