"""The answer times of ``status``, read from the ledger: what the mentor received and answered, and when the
student wrote to her (see :mod:`agent.rules.answer_times` for how they are paired)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agent.rules.answer_times import PERIOD, Answered, Asked, mentor_waits, student_waits, summarize, wording
from agent.rules.localtime import after
from agent.rules.policy import LoadedPolicy
from agent.store.ledger import ATTENTION, CANCELLED, SENT_FOLDER, Ledger
from agent.store.rounds import MeetingStore


def written_to(ledger: Ledger, mentor: str, since: datetime, addresses: Sequence[str] = ()) -> list[datetime]:
    """When the student wrote to the mentor: each message the agent took in (when it first saw it; not the
    meeting invitations it wrote itself) and each one found in Sent that was sent without the agent."""
    ours = MeetingStore(ledger).invite_ids()  # invitations and cancellations: the agent wrote those
    moments = [
        datetime.fromisoformat(at)
        for (at, message_id) in ledger.db.execute(
            "SELECT arrived, message_id FROM messages WHERE mentor = ? AND arrived >= ? AND state NOT IN (?, ?)",
            (mentor, since.isoformat(), CANCELLED, ATTENTION),
        )
        if message_id not in ours
    ]
    # Found in Sent: by her addresses (one message to two mentors went to each of them)
    moments += ledger.items_between(mentor, since, datetime.max.replace(tzinfo=UTC), addresses, source=SENT_FOLDER)
    return moments


def answer_times(ledger: Ledger, loaded: LoadedPolicy, now: datetime) -> dict[str, Any]:
    """Both ways, as data for ``status --json`` with the sentence ``status`` prints for each."""
    since = after(now, -PERIOD)
    addresses = loaded.policy.mentor.addresses
    history = ledger.history(loaded.id, since, addresses, in_doubt=False)
    terms = loaded.policy.agreement
    agreed = terms.agreed_on is not None
    items = [Asked(item.at, item.ids) for item in history.sent if not item.bounced]  # she never got those
    replies = [Answered(reply.at, reply.to) for reply in history.replies]
    mentor = summarize(mentor_waits(items, replies), now, terms.mentor_answers_within)
    student = summarize(
        student_waits([r.at for r in replies], written_to(ledger, loaded.id, since, addresses)),
        now,
        terms.student_answers_within,
    )
    return {
        "mentor": mentor.as_json() | {"text": wording(loaded.name, mentor, agreed=agreed)},
        "student": student.as_json() | {"text": wording("you", student, agreed=agreed)},
    }
