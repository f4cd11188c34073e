"""Small builders shared by the tests."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from agent.rules.envelope import Envelope
from agent.rules.policy import Policy
from agent.rules.simulate import Event, read_events
from agent.store.ledger import NEW, Row


def policy(email: dict[str, Any] | None = None, timezone: str = "America/Chicago", **meetings: Any) -> Policy:
    return Policy.model_validate(
        {
            "mentor": {
                "name": "Dr. Ana Rivera",
                "addresses": ["arivera@hospital.example.org"],
                "timezone": timezone,
                "pronoun": "she",
            },
            "email": email or {},
            "meetings": meetings,
        }
    )


def events(*items: dict[str, Any]) -> list[Event]:
    return read_events([json.dumps(item) for item in items])


def send(at: str, id: str, **extra: Any) -> dict[str, Any]:
    return {"at": at, "type": "send", "id": id, "subject": f"about {id}", **extra}


def reply(at: str, to: str) -> dict[str, Any]:
    return {"at": at, "type": "reply", "to": to}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def ledger_row(envelope: Envelope, **fields: Any) -> Row:
    """A ledger row for ``envelope`` as intake writes one (to Dr. Rivera, new, not yet decided); ``fields`` differ."""
    row = Row(
        key=envelope.key,
        message_id=envelope.message_id or "",
        mentor="rivera",
        subject=envelope.subject,
        sender=envelope.sender,
        recipients=envelope.recipients,
        arrived=datetime.now(UTC),
        state=NEW,
        folder="Mentor Outbox",
        uid=None,
        due=None,
        digest=None,
        reason="",
        standalone=False,
        group_key=envelope.group_key,
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )
    return replace(row, **fields)
